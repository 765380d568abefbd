"""Frame viewer latency in a real browser: how long from asking for a frame to the canvas painted with its overlays.

    python -m benchmarks.frames [--video PATH] [--random 40] [--steps 40]

Runs the real app (`python app.py`, no embedded consumer) on a temporary data folder holding one video with three
tracks that carry a mask on every frame, opens it in Debian's Chromium (Playwright), and measures inside the page:
  p50_ms / p95_ms   a random frame (window.sam2Viewer.seek) until it is painted with the 3 tracks' overlays, once the
                    app has packed the video's frames as JPEG (web/frame_pack.py; pack_s says how long that took)
  cold_p50_ms / cold_p95_ms   the same on first opening the video, while the packing runs (frames decoded on demand)
  step_p95_ms       a right-arrow key press until the next frame is painted with its overlays (stepping forward)
Without --video it makes a 10 s 1080p H.264 clip (30 fps, a keyframe every 30 frames) with ffmpeg.
Prints one JSON object. Run it under `flock /tmp/bench.lock` so measurements do not overlap.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


SEEK_JS = """async (f) => new Promise((resolve) => {
  const viewer = window.sam2Viewer, t0 = performance.now();
  const done = (d) => { if (d.frame === f && d.masks) { viewer.off('painted', done); resolve(performance.now() - t0); } };
  viewer.on('painted', done);
  viewer.seek(f);
})"""

ARM_STEP_JS = """() => {
  const viewer = window.sam2Viewer, target = viewer.state().frame + 1;
  window.__stepMs = null;
  const done = (d) => {
    if (d.frame === target && d.masks && d.ms !== null) { viewer.off('painted', done); window.__stepMs = d.ms; }
  };
  viewer.on('painted', done);
}"""


def make_clip(path: Path, seconds: int = 10) -> None:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size=1920x1080:rate=30:duration={seconds}", "-c:v", "libx264", "-preset", "veryfast",
                    "-g", "30", "-pix_fmt", "yuv420p", str(path)], check=True)


def add_tracks(store, dataset, count: int = 3) -> None:
    """Three tracks with a mask (an ellipse that moves) on every frame, saved as people's keyframes."""
    import numpy as np

    from sam2_tracking.store import CreateTrack, UpsertKeyframe

    h, w = dataset.height, dataset.width
    yy, xx = np.mgrid[0:h, 0:w]
    revision = store.get_revision(dataset.dataset_id)
    saved = store.save_edits(dataset.dataset_id, revision,
                             [CreateTrack(label=f"object {i}", placeholder_id=-(i + 1)) for i in range(count)])
    track_ids = [saved.track_ids[-(i + 1)] for i in range(count)]
    revision = int(saved)
    for frame_idx in range(dataset.frame_count):
        edits = []
        for i, track_id in enumerate(track_ids):
            cx = (0.2 + 0.3 * i) * w + 40 * np.sin(frame_idx / 10 + i)
            cy = 0.5 * h + 60 * np.cos(frame_idx / 12 + i)
            mask = ((xx - cx) / (w * 0.1)) ** 2 + ((yy - cy) / (h * 0.15)) ** 2 <= 1
            edits.append(UpsertKeyframe(track_id=track_id, frame_idx=frame_idx, mask=mask))
        revision = int(store.save_edits(dataset.dataset_id, revision, edits))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path)
    parser.add_argument("--random", type=int, default=40, help="random frames to time")
    parser.add_argument("--steps", type=int, default=40, help="arrow-key steps to time")
    args = parser.parse_args()

    from queues.config import get_store
    from sam2_tracking.library import add_video
    from sam2_tracking.settings import Settings
    from sam2_tracking.testing.app_server import AppServer
    from sam2_tracking.testing.browser import chromium_browser
    from web.frame_pack import packed_frames

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        video = args.video
        if video is None:
            video = tmp / "clip_1080p.mp4"
            make_clip(video)
        data_dir = tmp / "data"
        store = get_store(Settings(data_dir=data_dir, model_dir=tmp / "models", sample_video=False))
        dataset = add_video(store, video, name=video.name)
        started = time.perf_counter()
        add_tracks(store, store.get_dataset(dataset.dataset_id))
        setup_s = time.perf_counter() - started
        server = AppServer(data_dir, tmp / "models", SAM2T_EMBED_CONSUMERS="none", SAM2T_SAMPLE_VIDEO="0")
        try:
            with chromium_browser() as browser:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                opened = time.perf_counter()
                page.goto(server.url)
                page.locator('#frame-viewer .sv-root[data-painted-frame="0"]').wait_for(timeout=60_000)
                page.wait_for_timeout(1000)  # let the first prefetch settle
                rng = random.Random(0)
                frames = [rng.randrange(dataset.frame_count) for _ in range(args.random)]
                cold_ms = [page.evaluate(SEEK_JS, f) for f in frames]
                deadline = time.monotonic() + 600
                while packed_frames(data_dir / "viewer-frames", dataset.dataset_id, dataset.path) < dataset.frame_count:
                    if time.monotonic() > deadline:
                        raise SystemExit("the app did not pack the video's frames within 10 minutes")
                    time.sleep(0.2)
                pack_s = time.perf_counter() - opened
                frames = [rng.randrange(dataset.frame_count) for _ in range(args.random)]
                seek_ms = [page.evaluate(SEEK_JS, f) for f in frames]
                page.evaluate(SEEK_JS, 0)
                page.wait_for_timeout(500)
                step_ms = []
                for _ in range(args.steps):
                    page.evaluate(ARM_STEP_JS)
                    page.keyboard.press("ArrowRight")
                    page.wait_for_function("window.__stepMs !== null", timeout=30_000)
                    step_ms.append(page.evaluate("window.__stepMs"))
        finally:
            server.stop()
    print(json.dumps({
        "video": str(args.video) if args.video else "generated 1920x1080 H.264, 30 fps, GOP 30, 300 frames",
        "width": dataset.width, "height": dataset.height, "frames": dataset.frame_count, "tracks": 3,
        "random_frames": len(seek_ms), "p50_ms": round(percentile(seek_ms, 50), 1),
        "p95_ms": round(percentile(seek_ms, 95), 1), "max_ms": round(max(seek_ms), 1),
        "cold_p50_ms": round(percentile(cold_ms, 50), 1), "cold_p95_ms": round(percentile(cold_ms, 95), 1),
        "pack_s": round(pack_s, 1),
        "steps": len(step_ms), "step_p50_ms": round(percentile(step_ms, 50), 1),
        "step_p95_ms": round(percentile(step_ms, 95), 1), "setup_s": round(setup_s, 1),
        "cpu_count": os.cpu_count(),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
