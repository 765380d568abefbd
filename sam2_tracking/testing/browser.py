"""Debian's Chromium driven by Playwright, for the browser tests and the browser benchmarks (frames, preview)."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from typing import Any

from sam2_tracking.testing import MissingToolError

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync", "--disable-quic"]


def launch_chromium(playwright: Any) -> Any:
    """Debian's Chromium (never a browser downloaded by `playwright install`); MissingToolError when it is not there."""
    executable = shutil.which("chromium")
    if executable is None:
        raise MissingToolError("chromium is not installed: bash tests/run_all.sh installs it (Debian packages chromium and "
                          "chromium-driver)")
    return playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)


@contextlib.contextmanager
def chromium_browser() -> Iterator[Any]:
    """A Debian Chromium driven by Playwright for the length of the block."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            yield browser
        finally:
            browser.close()


def preview_click(page: Any, fx: float, fy: float, negative: bool = False) -> dict:
    """Click on the viewer's canvas at a fraction of its size (shift: a negative point) and wait for the seed
    preview's answer to that click; returns the answer as the page recorded it (window.sam2Preview.answers)."""
    before = page.evaluate("window.sam2Preview.answers.length")
    box = page.locator("#frame-viewer canvas.sv-frame").bounding_box()
    if negative:
        page.keyboard.down("Shift")
    page.mouse.click(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
    if negative:
        page.keyboard.up("Shift")
    page.wait_for_function(f"window.sam2Preview.answers.length > {before}", timeout=120_000)
    return page.evaluate("window.sam2Preview.answers[window.sam2Preview.answers.length - 1]")
