"""The whole product in a real browser: Debian's Chromium driven by Playwright against `python app.py`.

An admin turns SAM2 and tracking on; an annotator opens the sample clip, sees its seeded track, presses the track
button, and watches the job finish through the embedded CPU consumer with the random-weight test model.
"""

from __future__ import annotations

import os
import shutil

import pytest

from queues.runner import get_store
from sam2_tracking.settings import Settings
from tests.support.app_server import AppServer
from tests.support.queue_harness import TEST_MODEL_NAME

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync", "--disable-quic"]


@pytest.fixture(scope="module")
def browser():
    executable = shutil.which("chromium")
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; tests/run_all.sh installs it")
        pytest.skip("chromium is not installed (bash tests/run_all.sh installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def app(tmp_path_factory, model_server):
    from sam2_tracking.models import custom_model_entry, download_model

    root = tmp_path_factory.mktemp("ui")
    data_dir, model_dir = root / "data", root / "models"
    entry = custom_model_entry(TEST_MODEL_NAME, model_server.url + "/config.yaml", model_server.url + "/checkpoint.pt")
    download_model(entry, model_dir)
    store = get_store(Settings(data_dir=data_dir, model_dir=model_dir))
    store.upsert_model(TEST_MODEL_NAME, entry.config, entry.checkpoint_url, is_default=False, status="ready")
    server = AppServer(data_dir, model_dir)
    yield server, store
    server.stop()


def test_admin_enables_tracking_and_annotator_tracks_the_sample(browser, app, tmp_path):
    server, store = app
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(server.url)
    page.get_by_role("tab", name="Annotate").wait_for()
    page.get_by_role("tab", name="Admin").wait_for()
    page.locator("#frame-image img").wait_for(timeout=30_000)
    assert "track #1" in page.locator("#annotate-status").inner_text()
    assert not page.locator("#track-button").is_visible()  # tracking is off until the admin turns it on

    page.get_by_role("tab", name="Admin").click()
    page.get_by_label("Enable SAM2 support").check()
    page.get_by_text("SAM2 support is on.").wait_for()
    page.get_by_label("Enable SAM2 mask tracking (shows the track button to every annotator)").check()
    page.get_by_text("Every annotator now sees the track button.").wait_for()
    assert store.get_setting("tracking_enabled") is True

    page.get_by_role("tab", name="Annotate").click()
    page.locator("#track-button").wait_for(state="visible", timeout=10_000)
    model = page.locator("#track-model input")
    model.click()
    page.get_by_role("option", name=TEST_MODEL_NAME).click()
    frames = page.get_by_label("Frames to track (0 = to the end)")
    frames.fill("6")
    frames.press("Tab")
    page.locator("#track-button").click()
    page.locator("#job-progress").get_by_text("done, 6/6 frames").wait_for(timeout=180_000)

    job = store.list_jobs()[0]
    assert job.status == "done" and job.frames_done == 6
    assert [f.frame_idx for f in store.get_features(job.spec.track_ids[0])] == list(range(6))
    page.screenshot(path=str(tmp_path / "annotate-after-tracking.png"), full_page=True)
    if os.environ.get("SAM2T_SCREENSHOT_DIR"):
        page.screenshot(path=os.path.join(os.environ["SAM2T_SCREENSHOT_DIR"], "annotate.png"), full_page=True)
    page.close()


def test_track_button_refuses_unsaved_edits(browser, app):
    server, store = app
    store.set_setting("sam2_enabled", True)
    store.set_setting("tracking_enabled", True)
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(server.url)
    image = page.locator("#frame-image img")
    image.wait_for(timeout=30_000)
    box = image.bounding_box()
    # Two clicks draw a box: an unsaved edit.
    page.mouse.click(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.2)
    page.get_by_text("First corner set").wait_for()
    page.wait_for_timeout(500)  # let the redrawn frame settle so the second click lands on it
    page.mouse.click(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.5)
    page.locator("#annotate-status").get_by_text("unsaved edits").wait_for()
    jobs_before = len(store.list_jobs())
    page.locator("#track-button").click()
    page.get_by_text("Save your edits first").first.wait_for()
    assert len(store.list_jobs()) == jobs_before
    page.locator("#save-button").click()
    page.locator("#annotate-status").get_by_text("all edits saved").wait_for()
    features = store.get_frame_features(store.list_datasets()[0].dataset_id, 0)
    assert any(f.keyframe and f.box is not None and f.box.x1 > 100 for f in features)
    page.close()
