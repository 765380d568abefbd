"""One tracking job end to end through a real consumer process, against the bare tracker on the same clip.

    python benchmarks/job.py --frames 120 --image-size 256 [--backend sqlite|redis]

Builds the test model (random weights) and a synthetic clip, starts `python -m queues.consumer cpu` over a fresh data
folder (SQLite queues, or a redis-server it starts on loopback), runs a short warm-up job so the consumer has loaded
the model (as a long-running consumer has), then times one job: enqueue, track, commit each batch, notify every 5 %,
batch size 100. The bare tracker runs on the same clip with the same seed in this process. Prints one JSON object:
frames, tracker_fps, job_fps, job_ratio (job/tracker), enqueue_to_start_s, notifications.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))


def write_clip(path: Path, frame_count: int) -> list[int]:
    """An H.264 clip of the sample's moving shapes; returns the red disc's box on frame 0."""
    import av

    sys.path.insert(0, str(REPO_ROOT / "assets"))
    import numpy as np
    from make_samples import HEIGHT, WIDTH, _background, shapes_frame

    background = _background(np.random.default_rng(7))
    box = None
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": "23", "g": "30"}
        for idx in range(frame_count):
            img, boxes = shapes_frame(background, idx)
            box = box or boxes["red disc"]
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return box


def start_redis(workdir: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                                "no", "--dir", str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return process, f"redis://127.0.0.1:{port}/0"


def wait_job(store, job_id: int, timeout_s: float = 1800):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = store.get_job(job_id)
        if job.finished:
            if job.status != "done":
                raise SystemExit(f"job {job_id} ended {job.status}: {job.error}")
            return job
        time.sleep(0.05)
    raise SystemExit(f"job {job_id} did not finish in {timeout_s} s")


def bare_tracker_fps(model_dir: Path, clip: Path, box: list[int], frames: int) -> float:
    from sam2_tracking.engine.tracker import track_objects
    from sam2_tracking.engine.video import open_video
    from sam2_tracking.models.catalogue import load_predictor
    from sam2_tracking.types import Box, ObjectSeeds, Seed

    predictor = load_predictor(model_dir, device="cpu")
    objects = [ObjectSeeds(1, (Seed(0, box=Box(*box)),))]

    def run(count: int) -> float:
        started = time.perf_counter()
        with open_video(clip) as source:
            for _batch in track_objects(predictor, source, objects, 0, num_frames=count, batch_size=100):
                pass
        return time.perf_counter() - started

    run(2)  # warm-up, as the consumer's warm-up job
    return frames / run(frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--backend", choices=["sqlite", "redis"], default="sqlite")
    args = parser.parse_args()

    from queues.config import get_store
    from queues.dispatch import enqueue_tracking_job
    from sam2_tracking.library import add_video
    from sam2_tracking.models.catalogue import custom_model_entry, download_model
    from sam2_tracking.models.testmodel import build_test_model
    from sam2_tracking.settings import Settings
    from sam2_tracking.store import CreateTrack, UpsertKeyframe
    from sam2_tracking.types import Box, JobSpec

    work = Path(tempfile.mkdtemp(prefix="sam2-job-bench-"))
    redis_process = None
    consumer = None
    try:
        queue_url = ""
        if args.backend == "redis":
            redis_process, queue_url = start_redis(work)
        build_test_model(work / "testmodel", image_size=args.image_size)
        settings = Settings(data_dir=work / "data", model_dir=work / "models", queue_url=queue_url,
                            queue_names=("cpu", "gpu"), embedded_consumers=())
        # The real download path over loopback HTTP, as a consumer downloads a model.
        from sam2_tracking.testing.loopback_server import LoopbackServer

        server = LoopbackServer(work / "testmodel")
        try:
            model_dir = download_model(custom_model_entry("bench", server.url + "/config.yaml",
                                                          server.url + "/checkpoint.pt"), settings.model_dir)
        finally:
            server.close()
        store = get_store(settings)
        store.upsert_model("bench", "file", "file", is_default=False, status="ready")
        clip = work / "clip.mp4"
        box = write_clip(clip, args.frames)
        dataset = add_video(store, clip)

        def new_track() -> int:
            saved = store.save_edits(dataset.dataset_id, store.get_revision(dataset.dataset_id),
                                     [CreateTrack("disc", placeholder_id=-1),
                                      UpsertKeyframe(-1, 0, box=Box(*box))])
            return saved.track_ids[-1]

        env = {k: v for k, v in os.environ.items() if not k.startswith("SAM2T_")}
        env.update(SAM2T_DATA_DIR=str(settings.data_dir), SAM2T_MODEL_DIR=str(settings.model_dir),
                   SAM2T_QUEUE_URL=queue_url, SAM2T_EMBED_CONSUMERS="none", PYTHONPATH=str(REPO_ROOT))
        consumer = subprocess.Popen([sys.executable, "-m", "queues.consumer", "cpu", "--device", "cpu"],
                                    cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def spec(track_id: int, frames: int) -> JobSpec:
            return JobSpec(dataset_id=dataset.dataset_id, track_ids=(track_id,), start_frame_idx=0,
                           model_name="bench", queue="cpu", num_frames=frames, batch_size=100, notify_percent=5)

        wait_job(store, enqueue_tracking_job(settings, store, spec(new_track(), 2)).job_id)  # loads the model
        measured_track = new_track()
        enqueued_at = time.time()
        job = wait_job(store, enqueue_tracking_job(settings, store, spec(measured_track, args.frames)).job_id)
        job_fps = job.frames_done / (job.finished_at - job.started_at)
        tracker_fps = bare_tracker_fps(model_dir, clip, box, args.frames)
        print(json.dumps({
            "frames": args.frames,
            "image_size": args.image_size,
            "backend": args.backend,
            "tracker_fps": round(tracker_fps, 3),
            "job_fps": round(job_fps, 3),
            "job_ratio": round(job_fps / tracker_fps, 3),
            "enqueue_to_start_s": round(job.started_at - enqueued_at, 3),
            "notifications": job.notifications_count,
        }))
    finally:
        if consumer is not None:
            consumer.terminate()
            consumer.wait(timeout=30)
        if redis_process is not None:
            redis_process.terminate()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
