"""Load: annotators track at once through the running app while another imports a large DIVE file with "replace".

    flock /tmp/bench.lock python benchmarks/load.py --clients 4 --jobs-per-client 2 --frames 100

Starts, over a fresh data folder: `python app.py` with logins (an admin and one annotator per client, no embedded
consumer) and two `python -m queues.consumer cpu` processes. The model is the test model (random-weight SAM2.1 Tiny
at image size 256) downloaded through the real path over loopback HTTP. Each client is a gradio_client session
logged in as its own annotator: it opens its own video (`/open_dataset`), starts one job per track (`/track`),
follows them by id (`/follow_job`) and meanwhile fetches random frames from the viewer's JPEG route
(GET /viewer/frame/...), timing each fetch. Once jobs run, one more annotator imports a DIVE JSON file of many
tracks with "replace" onto another video (`/import_annotations`): a long store write in the middle of the jobs.

Prints one JSON object: jobs, jobs_completed, frames_expected, frames_written, frame_fetch_p95_ms, errors (API
calls that raised, jobs that did not end done, a failed import), and details (import size and time, resumes, the
first error messages). Target: jobs_completed == jobs, frames_written == frames_expected, errors == 0.

It relies on these api_names of the UI, which must stay stable: /open_dataset, /track, /follow_job,
/import_annotations (parameters are matched by label and component, not position).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

PASSWORD = "load-test-pw"
MODEL = "bench"


class Errors:
    """Every failure the clients see, counted, with the first few messages kept for the report."""

    def __init__(self) -> None:
        self.count = 0
        self.messages: list[str] = []
        self._lock = threading.Lock()

    def add(self, where: str, exc: BaseException | str) -> None:
        with self._lock:
            self.count += 1
            if len(self.messages) < 10:
                self.messages.append(f"{where}: {exc}"[:300])


def call(client, api_name: str, values: dict, viewer=None):
    """Call `api_name` with arguments matched to its parameters by component (the viewer's Html) or label words,
    so a reordering of the UI's inputs does not break the benchmark."""
    info = client.view_api(print_info=False, return_format="dict")["named_endpoints"][api_name]
    args = []
    for param in info["parameters"]:
        if param.get("component") == "Html":
            args.append(viewer if viewer is not None else param.get("parameter_default"))
            continue
        label = (param.get("label") or "").lower()
        for words, value in values.items():
            if words in label:
                args.append(value)
                break
        else:
            args.append(param.get("parameter_default"))
    return client.predict(*args, api_name=api_name)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def prepare(work: Path, clients: int, jobs_per_client: int, frames: int, import_tracks: int):
    """Data folder, model, videos, seeded tracks and the DIVE file; returns (settings, store, plan)."""
    from benchmarks._common import model_dir
    from benchmarks.job import write_clip
    from queues.config import get_store
    from sam2_tracking.annotation_set import AnnotationSet, Feature, TrackData
    from sam2_tracking.formats.dive import write_dive_json
    from sam2_tracking.library import add_video
    from sam2_tracking.models.catalogue import custom_model_entry, download_model
    from sam2_tracking.settings import Settings
    from sam2_tracking.store import CreateTrack, UpsertKeyframe
    from sam2_tracking.testing.loopback_server import LoopbackServer
    from sam2_tracking.types import Box

    settings = Settings(data_dir=work / "data", model_dir=work / "models", queue_names=("cpu",),
                        embedded_consumers=())
    server = LoopbackServer(model_dir(256))
    try:
        download_model(custom_model_entry(MODEL, server.url + "/config.yaml", server.url + "/checkpoint.pt"),
                       settings.model_dir)
    finally:
        server.close()
    store = get_store(settings)
    store.upsert_model(MODEL, "loopback", "loopback", is_default=False, status="ready")
    store.set_setting("sam2_enabled", True)
    store.set_setting("tracking_enabled", True)
    clip = work / "clip.mp4"
    box = write_clip(clip, frames)
    plan = {"clients": []}
    for client_idx in range(clients):
        dataset = add_video(store, clip, name=f"client-{client_idx}.mp4")
        edits = []
        for track_idx in range(jobs_per_client):
            edits += [CreateTrack(f"object {track_idx}", placeholder_id=-1 - track_idx),
                      UpsertKeyframe(-1 - track_idx, 0, box=Box(*box))]
        saved = store.save_edits(dataset.dataset_id, store.get_revision(dataset.dataset_id), edits)
        plan["clients"].append({"user": f"annotator{client_idx}", "dataset_id": dataset.dataset_id,
                                "track_ids": [saved.track_ids[-1 - i] for i in range(jobs_per_client)]})
    target = add_video(store, clip, name="import-target.mp4")
    store.save_edits(target.dataset_id, 0, [CreateTrack("old", placeholder_id=-1), UpsertKeyframe(-1, 0, box=Box(*box))])
    tracks = tuple(
        TrackData(i + 1, (("fish", 1.0),),
                  tuple(Feature(i + 1, f, box=Box(10 + i % 50, 10, 60 + i % 50, 60), keyframe=f == 0)
                        for f in range(frames)), {})
        for i in range(import_tracks))
    dive_path = write_dive_json(AnnotationSet(tracks, target.width, target.height, target.frame_count, target.fps,
                                              target.name), work / "large.dive.json")
    plan["import"] = {"user": "importer", "dataset_id": target.dataset_id, "path": str(dive_path),
                      "bytes": dive_path.stat().st_size, "features": import_tracks * frames}
    return settings, store, plan


def client_session(url: str, user: str):
    from gradio_client import Client

    return Client(url, auth=(user, PASSWORD), verbose=False, analytics_enabled=False, download_files=False)


def run_client(url: str, store, spec: dict, frames: int, errors: Errors, fetch_ms: list[float],
               job_ids: list[int], started: threading.Event, deadline: float) -> None:
    import httpx

    try:
        client = client_session(url, spec["user"])
        viewer, _status = call(client, "/open_dataset", {"video": spec["dataset_id"]})
        mine = []
        for track_id in spec["track_ids"]:
            viewer = {**viewer, "active": track_id, "selected": [track_id], "frame_idx": 0}
            result = call(client, "/track", {"model": MODEL, "queue": "cpu", "frames to track": frames,
                                             "direction": "forward", "commit every": "10",
                                             "progress preview": 10}, viewer=viewer)
            viewer, job_id = result[0], int(result[-1])
            mine.append(job_id)
            job_ids.append(job_id)
        started.set()
    except Exception as exc:  # the client's failure is the benchmark's finding: count it, keep the others going
        errors.add(f"{spec['user']} start", exc)
        started.set()
        return
    cookies = getattr(client, "cookies", None) or {}
    rng = random.Random(spec["dataset_id"])
    with httpx.Client(base_url=url, cookies=cookies, timeout=30) as http:
        while time.monotonic() < deadline:
            for job_id in mine:
                try:
                    call(client, "/follow_job", {"job": job_id})
                except Exception as exc:
                    errors.add(f"{spec['user']} follow {job_id}", exc)
            for _ in range(5):
                t0 = time.perf_counter()
                try:
                    response = http.get(f"viewer/frame/{spec['dataset_id']}/{rng.randrange(frames)}.jpg")
                    response.raise_for_status()
                    fetch_ms.append(1000 * (time.perf_counter() - t0))
                except Exception as exc:
                    errors.add(f"{spec['user']} frame fetch", exc)
            if all(store.get_job(job_id).finished for job_id in mine):
                return
            time.sleep(0.5)
    errors.add(spec["user"], "jobs still unfinished at the deadline")


def run_import(url: str, spec: dict, errors: Errors, result: dict, jobs_started: threading.Event) -> None:
    from gradio_client import handle_file

    try:
        client = client_session(url, spec["user"])
        viewer, _status = call(client, "/open_dataset", {"video": spec["dataset_id"]})
        jobs_started.wait(timeout=600)  # import while jobs run (a client that failed to start sets it too)
        t0 = time.perf_counter()
        _viewer, message = call(client, "/import_annotations", {"import dive": handle_file(spec["path"]),
                                                                "replace": True}, viewer=viewer)
        result["import_s"] = round(time.perf_counter() - t0, 2)
        result["import_message"] = str(message)[:200]
    except Exception as exc:
        errors.add("import", exc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--jobs-per-client", type=int, default=2)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--import-tracks", type=int, default=1500, help="tracks in the imported DIVE file")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds before unfinished jobs count as errors")
    args = parser.parse_args()

    from sam2_tracking.testing.app_server import AppServer
    from sam2_tracking.testing.queue_harness import stop_processes
    from sam2_tracking.testing.wait import wait_for

    work = Path(tempfile.mkdtemp(prefix="sam2-load-"))
    consumers: list[subprocess.Popen] = []
    app = None
    try:
        settings, store, plan = prepare(work, args.clients, args.jobs_per_client, args.frames, args.import_tracks)
        users = [c["user"] for c in plan["clients"]] + [plan["import"]["user"]]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SAM2T_")}
        env.update(SAM2T_DATA_DIR=str(settings.data_dir), SAM2T_MODEL_DIR=str(settings.model_dir),
                   SAM2T_QUEUES="cpu", SAM2T_EMBED_CONSUMERS="none", PYTHONPATH=str(REPO_ROOT),
                   OMP_NUM_THREADS="1", TQDM_DISABLE="1")
        for idx in range(2):
            log = open(work / f"consumer-{idx}.log", "w")  # noqa: SIM115 - lives as long as the process
            consumers.append(subprocess.Popen([sys.executable, "-m", "queues.consumer", "cpu", "--device", "cpu"],
                                              cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
        app = AppServer(settings.data_dir, settings.model_dir, SAM2T_QUEUES="cpu", SAM2T_EMBED_CONSUMERS="none",
                        SAM2T_ADMIN_PASSWORD=PASSWORD + "-admin",
                        SAM2T_ANNOTATORS=",".join(f"{u}:{PASSWORD}" for u in users))
        wait_for(lambda: len(store.list_workers(queue="cpu")) == 2, 180, "both consumers' first heartbeat")

        errors, fetch_ms, job_ids, import_result = Errors(), [], [], {}
        jobs_started = threading.Event()
        deadline = time.monotonic() + args.timeout
        t0 = time.perf_counter()
        threads = [threading.Thread(target=run_client, args=(app.url, store, spec, args.frames, errors, fetch_ms,
                                                             job_ids, jobs_started, deadline))
                   for spec in plan["clients"]]
        threads.append(threading.Thread(target=run_import, args=(app.url, plan["import"], errors, import_result,
                                                                 jobs_started)))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall_s = time.perf_counter() - t0

        jobs = [store.get_job(job_id) for job_id in job_ids]
        for job in jobs:
            if job.status != "done":
                errors.add(f"job {job.job_id}", f"ended {job.status}: {job.error}")
        print(json.dumps({
            "jobs": args.clients * args.jobs_per_client,
            "jobs_completed": sum(job.status == "done" for job in jobs),
            "frames_expected": args.clients * args.jobs_per_client * args.frames,
            "frames_written": sum(len(store.job_frames_written(job.job_id)) for job in jobs),
            "frame_fetch_p95_ms": None if not fetch_ms else round(percentile(fetch_ms, 95), 1),
            "errors": errors.count,
            "frame_fetches": len(fetch_ms),
            "frame_fetch_p50_ms": None if not fetch_ms else round(percentile(fetch_ms, 50), 1),
            "jobs_resumed": sum(job.resumed_count for job in jobs),
            "import_bytes": plan["import"]["bytes"],
            "import_features": plan["import"]["features"],
            **import_result,
            "wall_s": round(wall_s, 1),
            "error_messages": errors.messages,
        }))
        return 0
    finally:
        if app is not None:
            app.stop()
        stop_processes(consumers, timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
