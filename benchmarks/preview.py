"""Seed preview latency in a real browser: from a click on the viewer to the SAM2 mask arriving in the page.

    python -m benchmarks.preview [--frames 10] [--clicks 4] [--image-size 256]

Runs the real app (`python app.py` with its embedded CPU consumer, which serves the preview queue) on a temporary
data folder with the sample clip and the random-weight SAM2.1 Tiny test model at --image-size, opens it in Debian's
Chromium (Playwright) and clicks on the frame viewer. Measured inside the page by web/static/preview.js, from the
viewer's edit event to the answer's mask handed to the viewer:
  first_click_ms   the first click on a frame (image encoder + prompt encoder + mask decoder + memory encoder)
  next_click_ms    each further click on that frame (the frame's image features are reused)
each as p50 and p95 (and max), and for further clicks where the time goes (SAM2 in the consumer, the app's wait for the
answer, the whole). A warm-up click (loading the model in the consumer) is not counted.
Prints one JSON object. Run it under `flock /tmp/bench.lock` so measurements do not overlap.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MODEL_NAME = "testmodel"

SEEK_JS = """async (f) => new Promise((resolve) => {
  const viewer = window.sam2Viewer;
  const done = (d) => { if (d.frame === f) { viewer.off('painted', done); resolve(true); } };
  viewer.on('painted', done);
  viewer.seek(f);
})"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict:
    return {"n": len(values), "p50": round(percentile(values, 50), 1), "p95": round(percentile(values, 95), 1),
            "max": round(max(values), 1)}


def click_and_wait(page, fx: float, fy: float, negative: bool = False) -> dict:
    """A click on the viewer's canvas and the preview's answer to it; an answer with an error stops the run."""
    from sam2_tracking.testing.browser import preview_click

    answer = preview_click(page, fx, fy, negative)
    if answer.get("error"):
        raise RuntimeError(f"the preview answered with an error: {answer['error']}")
    return answer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10, help="frames to click on (one first click each)")
    parser.add_argument("--clicks", type=int, default=4, help="further clicks per frame")
    parser.add_argument("--image-size", type=int, default=256, help="test model image size")
    args = parser.parse_args()

    from benchmarks._common import model_dir as cached_test_model
    from queues.config import get_store
    from sam2_tracking.models.catalogue import custom_model_entry, download_model
    from sam2_tracking.settings import Settings
    from sam2_tracking.testing.app_server import AppServer
    from sam2_tracking.testing.browser import chromium_browser
    from sam2_tracking.testing.loopback_server import LoopbackServer

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data_dir, model_dir = tmp / "data", tmp / "models"
        # The model goes through the real download path, from a loopback server, as in the tests.
        files = LoopbackServer(cached_test_model(args.image_size))
        try:
            entry = custom_model_entry(MODEL_NAME, files.url + "/config.yaml", files.url + "/checkpoint.pt")
            download_model(entry, model_dir)
        finally:
            files.close()
        store = get_store(Settings(data_dir=data_dir, model_dir=model_dir))
        store.upsert_model(MODEL_NAME, entry.config, entry.checkpoint_url, is_default=False, status="ready")
        store.set_setting("sam2_enabled", True)
        store.set_setting("tracking_enabled", True)
        server = AppServer(data_dir, model_dir)
        first_ms: list[float] = []
        next_ms: list[float] = []
        next_worker_ms: list[float] = []  # SAM2 in the consumer
        next_server_ms: list[float] = []  # the app's wait: queue + consumer + answer
        encoded_on_next = 0
        try:
            with chromium_browser() as browser:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(server.url)
                page.locator('#frame-viewer .sv-root[data-painted-frame="0"]').wait_for(timeout=60_000)
                page.wait_for_function("window.sam2Preview && window.sam2Preview.hooked", timeout=30_000)
                started = time.perf_counter()
                click_and_wait(page, 0.78, 0.5)  # warm-up: the consumer loads the model
                warmup_s = time.perf_counter() - started
                frame_count = page.evaluate("window.sam2Viewer.state().dataset.frame_count")
                for k in range(args.frames):
                    frame = 1 + k * max(1, (frame_count - 2) // max(1, args.frames))
                    page.evaluate(SEEK_JS, frame)
                    first = click_and_wait(page, 0.78, 0.5)
                    assert first["encoded"], "a new frame's first click must run the image encoder"
                    first_ms.append(first["ms"])
                    for c in range(args.clicks):
                        answer = click_and_wait(page, 0.70 + 0.03 * c, 0.40 + 0.05 * c, negative=c % 2 == 1)
                        encoded_on_next += bool(answer["encoded"])
                        next_ms.append(answer["ms"])
                        next_worker_ms.append(answer["compute_ms"])
                        next_server_ms.append(answer["wait_ms"])
        finally:
            server.stop()
    print(json.dumps({
        "model": f"SAM2.1 Tiny architecture, random weights, image_size {args.image_size}",
        "device": "cpu (embedded consumer of app.py)", "video": "assets/sample_shapes.mp4 (640x360)",
        "first_click_ms": summary(first_ms), "next_click_ms": summary(next_ms),
        "next_click_breakdown_p50_ms": {"sam2_in_consumer": round(percentile(next_worker_ms, 50), 1),
                                        "app_wait_for_answer": round(percentile(next_server_ms, 50), 1),
                                        "page_total": round(percentile(next_ms, 50), 1)},
        "next_clicks_that_ran_the_encoder": encoded_on_next, "model_load_warmup_s": round(warmup_s, 1),
        "cpu_count": os.cpu_count(),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
