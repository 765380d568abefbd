"""The several-machines layout on loopback, as docker-compose.yml runs it: a real PostgreSQL (the store), a real
redis-server (the queues), the app (`python app.py`, no embedded consumer, serving videos to the worker token) and
two consumers (`cpu`, and `gpu` running on the CPU) that share no disk with the app or each other. A tracking job on
each queue gives masks equal, RLE for RLE, to the same job on the embedded default (SQLite store and queue in one
data folder).

One host stands in for several machines: each consumer starts in its own empty folder with its own data and model
folders, and the dataset's path is relative to the app's working folder, so a consumer cannot open the video where
the app has it and must fetch it from the app over HTTP, exactly as on another machine. The model is made ready
through the Admin download (on the cpu queue's consumer); the gpu consumer fetches it itself when its job needs it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sam2_tracking.settings import Settings
from sam2_tracking.testing.queue_harness import REPO_ROOT, stop_processes
from sam2_tracking.testing.redis_server import running_redis
from sam2_tracking.testing.wait import wait_for

pytestmark = pytest.mark.topology

TOKEN = "topology-worker-token-0123456789"
MODEL = "topology_test_model"
FRAMES, WIDTH, HEIGHT = 6, 640, 360
SEED_BOX = (240.0, 120.0, 400.0, 260.0)
VIDEO = Path("videos") / "clip.mp4"  # relative to the app's working folder: not on the consumers' "machines"


def _write_clip(path: Path) -> None:
    """A short 640x360 clip: a bright square moving over a dark gradient."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for i in range(FRAMES):
            rgb = np.stack([(xx * 80 // WIDTH), (yy * 80 // HEIGHT), np.full_like(xx, 40)], axis=-1).astype(np.uint8)
            x0, y0 = 250 + 8 * i, 130 + 4 * i
            rgb[y0:y0 + 120, x0:x0 + 130] = (230, 200, 40)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _add_seeded_clip(store, path: str, video_file: Path) -> tuple[int, list[int]]:
    """The clip as a dataset pointing at `path`, with two tracks seeded by the same box on frame 0."""
    from sam2_tracking.engine.video import probe_video
    from sam2_tracking.store import CreateTrack, UpsertKeyframe
    from sam2_tracking.types import Box

    info = probe_video(video_file)
    assert (info.frame_count, info.width, info.height) == (FRAMES, WIDTH, HEIGHT)
    dataset = store.add_dataset("clip.mp4", path, info.kind, info.frame_count, info.fps, info.width, info.height)
    edits = []
    for number in (1, 2):
        edits += [CreateTrack(label="square", placeholder_id=-number),
                  UpsertKeyframe(track_id=-number, frame_idx=0, box=Box(*SEED_BOX))]
    store.save_edits(dataset.dataset_id, store.get_revision(dataset.dataset_id), edits)
    return dataset.dataset_id, [t.track_id for t in store.list_tracks(dataset.dataset_id)]


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAM2T_")}
    # Two cores for five processes here: one torch thread per consumer keeps them from thrashing.
    env.update(PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1", SAM2T_SAMPLE_VIDEO="0",
               SAM2T_EMBED_CONSUMERS="none", **values)
    return env


def _start_consumer(root: Path, queue: str, env: dict[str, str], *args: str) -> subprocess.Popen:
    """`python -m queues.consumer QUEUE` in its own folder (its "machine"), logging to root/consumer.log."""
    root.mkdir(parents=True)
    log = open(root / "consumer.log", "w")  # noqa: SIM115 - the process holds it; closed with the test's tmp folder
    return subprocess.Popen([sys.executable, "-m", "queues.consumer", queue, *args], cwd=root, env=env, stdout=log,
                            stderr=subprocess.STDOUT)


def _admin_makes_model_ready(settings: Settings, store, model_server) -> None:
    """What the admin does in the Admin tab: SAM2 on, a custom model added (downloaded by the model queue's
    consumer), mask tracking on once it is ready."""
    import gradio as gr

    from ui import admin

    request = gr.Request(username=settings.admin_user)
    admin.set_sam2_enabled(settings, store, True, request)
    admin.add_custom_model(settings, store, MODEL, model_server.url + "/config.yaml",
                           model_server.url + "/checkpoint.pt", request)
    record = wait_for(lambda: (m := store.get_model(MODEL)).status in ("ready", "failed") and m, 120,
                      f"the Admin download of {MODEL}")
    assert record.status == "ready", record.error
    admin.set_tracking_enabled(settings, store, True, request)


def _enqueue(settings: Settings, store, dataset_id: int, track_id: int, queue: str) -> int:
    """A tracking job through the function the Annotate tab calls."""
    from queues.dispatch import enqueue_tracking_job
    from sam2_tracking.types import JobSpec

    spec = JobSpec(dataset_id=dataset_id, track_ids=(track_id,), start_frame_idx=0, model_name=MODEL, queue=queue,
                   num_frames=FRAMES, batch_size=10, notify_percent=50)
    return enqueue_tracking_job(settings, store, spec, owner="annotator").job_id


def _wait_done(store, job_id: int, logs) -> None:
    job = wait_for(lambda: (j := store.get_job(job_id)).finished and j, 120, f"job {job_id} to finish ({logs()})",
                   0.2)
    assert job.status == "done", f"{job.error}\n{logs()}"
    assert job.frames_done == FRAMES


def _masks(store, track_id: int) -> list[tuple]:
    """Every frame's result as stored: frame, presence, box and the RLE itself (size and counts)."""
    rows = []
    for feature in store.get_features(track_id):
        rle = feature.rle
        rows.append((feature.frame_idx, feature.present, feature.box, feature.score,
                     None if rle is None else (tuple(rle["size"]), rle["counts"])))
    return rows


@pytest.mark.postgres
@pytest.mark.redis
def test_jobs_on_postgres_redis_and_consumers_without_a_shared_disk_equal_the_embedded_default(
        postgres_url, model_server, tmp_path):
    from queues.config import forget_instances, get_store

    _write_clip(tmp_path / "app" / VIDEO)
    video_sha = hashlib.sha256((tmp_path / "app" / VIDEO).read_bytes()).hexdigest()
    processes: list[subprocess.Popen] = []
    app = None
    with running_redis(tmp_path) as redis_url:
        try:
            # --- the several-machines layout -------------------------------------------------------------------
            shared = dict(SAM2T_DATABASE_URL=postgres_url, SAM2T_QUEUE_URL=redis_url, SAM2T_QUEUES="cpu,gpu",
                          SAM2T_WORKER_TOKEN=TOKEN)
            # The test process plays the person at the browser: the same settings as the app's handlers.
            settings = Settings(data_dir=tmp_path / "app" / "data", model_dir=tmp_path / "app" / "models",
                                database_url=postgres_url, queue_url=redis_url, queue_names=("cpu", "gpu"),
                                embedded_consumers=(), admin_password="admin-pw", worker_token=TOKEN)
            store = get_store(settings)
            dataset_id, (track_cpu, track_gpu) = _add_seeded_clip(store, str(VIDEO), tmp_path / "app" / VIDEO)

            # --- the embedded default, for comparison: SQLite store and queue in one data folder ---------------
            embedded = Settings(data_dir=tmp_path / "embedded" / "data", model_dir=tmp_path / "embedded" / "models",
                                queue_names=("cpu",), embedded_consumers=(), admin_password="admin-pw")
            embedded_store = get_store(embedded)
            embedded_dataset, (embedded_track, _) = _add_seeded_clip(
                embedded_store, str((tmp_path / "app" / VIDEO).resolve()), tmp_path / "app" / VIDEO)

            # Consumers first (their torch import overlaps the app's start), each on its own "machine", told the
            # app's address (its port is chosen now) and the worker token.
            from sam2_tracking.testing.app_server import AppServer, free_port

            app_port = free_port()
            consumer_env = {}
            for queue in ("cpu", "gpu"):
                root = tmp_path / f"consumer-{queue}"
                consumer_env[queue] = _env(**shared, SAM2T_DATA_DIR=str(root / "data"),
                                           SAM2T_MODEL_DIR=str(root / "models"),
                                           SAM2T_APP_URL=f"http://127.0.0.1:{app_port}")
            processes.append(_start_consumer(tmp_path / "consumer-cpu", "cpu", consumer_env["cpu"]))
            processes.append(_start_consumer(tmp_path / "consumer-gpu", "gpu", consumer_env["gpu"],
                                             "--device", "cpu"))
            processes.append(_start_consumer(tmp_path / "embedded-consumer", "cpu", _env(
                SAM2T_DATA_DIR=str(embedded.data_dir), SAM2T_MODEL_DIR=str(embedded.model_dir), SAM2T_QUEUES="cpu")))

            def logs() -> str:
                return "\n".join(f"--- {p}\n{p.read_text()[-2500:]}" for p in sorted(tmp_path.glob("*/consumer.log")))

            app = AppServer(settings.data_dir, settings.model_dir, cwd=tmp_path / "app", port=app_port, **shared,
                            SAM2T_ADMIN_PASSWORD="admin-pw", SAM2T_EMBED_CONSUMERS="none", SAM2T_SAMPLE_VIDEO="0")
            for check_store, queue, process in ((store, "cpu", processes[0]), (store, "gpu", processes[1]),
                                                (embedded_store, "cpu", processes[2])):
                wait_for(lambda s=check_store, q=queue, p=process: any(w.pid == p.pid for w in s.list_workers(queue=q)),
                         90, f"the {queue} consumer's first heartbeat ({logs()})", 0.2)

            _admin_makes_model_ready(settings, store, model_server)
            _admin_makes_model_ready(embedded, embedded_store, model_server)
            assert (tmp_path / "consumer-cpu" / "models" / MODEL).exists()  # the Admin download went to the cpu queue
            assert not (tmp_path / "consumer-gpu" / "models" / MODEL).exists()

            jobs = [_enqueue(settings, store, dataset_id, track_cpu, "cpu"),
                    _enqueue(settings, store, dataset_id, track_gpu, "gpu")]
            embedded_job = _enqueue(embedded, embedded_store, embedded_dataset, embedded_track, "cpu")
            for job_id in jobs:
                _wait_done(store, job_id, logs)
            _wait_done(embedded_store, embedded_job, logs)

            expected = _masks(embedded_store, embedded_track)
            assert len(expected) == FRAMES and all(row[4] is not None for row in expected)
            masks = [feature.mask for feature in embedded_store.get_features(embedded_track)]
            assert all(mask.any() for mask in masks)  # random weights, but real masks: equality means something
            assert _masks(store, track_cpu) == expected
            assert _masks(store, track_gpu) == expected
            assert {store.get_job(j).worker.split(":")[2] for j in jobs} == {"cpu", "gpu"}

            # No shared disk: each consumer fetched the video from the app and holds its own model.
            for queue in ("cpu", "gpu"):
                data = tmp_path / f"consumer-{queue}" / "data"
                assert (data / "video-cache" / f"{video_sha}.mp4").is_file(), queue
                assert (tmp_path / f"consumer-{queue}" / "models" / MODEL).exists(), queue
            gpu_log = (tmp_path / "consumer-gpu" / "consumer.log").read_text()
            assert f"model {MODEL} is not in" in gpu_log and "fetched into" in gpu_log  # by the job, not by an admin
            rows = wait_for(lambda: (ws := store.list_workers()) and all(w.models == (MODEL,) for w in ws) and ws, 30,
                            "both consumers' heartbeats to report the model")
            assert sorted(w.queue for w in rows) == ["cpu", "gpu"]
            from ui.admin import WORKER_COLUMNS, status_tables

            workers_table = status_tables(settings, store)[1]
            models_column = WORKER_COLUMNS.index("models")
            assert [row[models_column] for row in workers_table] == [f"{MODEL} ✓", f"{MODEL} ✓"]
        finally:
            stop_processes(processes)
            if app is not None:
                app.stop()
            forget_instances()

