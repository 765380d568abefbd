"""Seed previews through the queues: the page asks, a consumer of the chosen queue answers within moments.

Why a queue of its own: a preview is a short request a person waits for, and it must never sit behind a long
tracking job. Each consumer of queue Q also serves the small Huey queue `preview-Q` from one thread of its own in
the same process, so it shares the loaded model (queues load it through the same per-process cache) and the GPU
when Q has one, while the tracking worker keeps running. The page's request waits for the answer (Huey results on
this queue only), bounded by a timeout; a request nobody waits for any more expires unserved.

UI side: request_preview() validates everything against the store first (dataset, frame, prompt inside the frame,
model ready, a live worker on the queue) and raises PreviewError with a message for the person; nothing is saved
either way. Consumer side: serve_preview() is the task; queues.consumer.start_consumer() serves the preview queue
from a thread of its own.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from huey import Huey, RedisHuey, SqliteHuey
from huey.api import TaskWrapper

from queues.config import STALE_AFTER_S, get_store
from sam2_tracking.engine.remote_video import VideoFetchError, local_video_path
from sam2_tracking.settings import Settings

log = logging.getLogger(__name__)

# The first click on a frame may also load the model in the consumer (seconds on a CPU); later ones take moments.
DEFAULT_TIMEOUT_S = 30.0
# The worker polls its (SQLite) queue this often when idle and the page polls for the answer as often: preview
# latency is dominated by these on a CPU-only laptop, and an idle poll is one small read. Redis workers block on the
# queue (BRPOP) instead.
POLL_S = 0.01
IDLE_POLL_MAX_S = 0.05
MAX_CLICKS = 64
# Video frames bigger than this are refused before anything is allocated (8K is 33 Mpx).
MAX_FRAME_PIXELS = 64_000_000


class PreviewError(ValueError):
    """The preview cannot be shown; the message says why and what to do. Nothing was saved."""


@dataclass(frozen=True)
class PreviewAnswer:
    """SAM2's answer for one seed on one frame, as the job would write it on that frame.

    mask: bool (height, width) at video resolution, None when SAM2 scores the object absent (present=False);
    rle: the same mask as COCO compressed RLE (what the browser draws), checked against the video's size.
    encoded: the consumer ran the image encoder for this request (False: the frame's features were cached).
    compute_ms: time in the consumer; wait_ms: time from the request to the answer in this process.
    """

    dataset_id: int
    frame_idx: int
    present: bool
    score: float
    mask: np.ndarray | None
    rle: dict | None
    box: list[float] | None
    encoded: bool
    compute_ms: float
    wait_ms: float


# ---- the queue ------------------------------------------------------------------------------------------------

_hueys: dict[tuple[str, str], tuple[Huey, TaskWrapper]] = {}
_lock = threading.Lock()


def preview_queue_name(queue: str) -> str:
    return f"preview-{queue}"


def preview_huey(settings: Settings, queue: str) -> tuple[Huey, TaskWrapper]:
    """The Huey instance of `queue`'s preview queue and its preview task (one per process and queue)."""
    if queue not in settings.queue_names:
        raise PreviewError(f"unknown queue {queue!r}: this server offers {', '.join(settings.queue_names)}")
    key = (queue, settings.queue_url or str(settings.queue_db_path))
    with _lock:
        found = _hueys.get(key)
        if found is None:
            name = preview_queue_name(queue)
            if settings.queue_url:
                # The page polls for the answer (HEXISTS every POLL_S): huey's BLPOP wait (notify_result) gives up at
                # the connection's read timeout, long before a first click that loads the model is answered.
                huey = RedisHuey(name, url=settings.queue_url, results=True)
            else:
                settings.data_dir.mkdir(parents=True, exist_ok=True)
                # Its own file: high-rate polling of the preview queue never contends with job bookkeeping.
                huey = SqliteHuey(name, filename=str(settings.data_dir / "preview_queue.db"), results=True,
                                  timeout=30)
            found = _hueys[key] = (huey, huey.task(name="preview")(serve_preview))
        return found


# ---- the page's side --------------------------------------------------------------------------------------------

def request_preview(
    settings: Settings,
    store,
    queue: str,
    model_name: str,
    dataset_id: int,
    frame_idx: int,
    box: list[float] | None = None,
    clicks: list[list] | tuple = (),
    mask: np.ndarray | None = None,
    track_id: int | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> PreviewAnswer:
    """Ask a consumer of `queue` for the mask of a box and/or clicks ([x, y, positive]) or a mask on one frame, and
    wait for it. Raises PreviewError (nothing saved, nothing queued when the request itself is wrong)."""
    from huey.exceptions import HueyException, TaskException

    from sam2_tracking.jobs.seeds import seed_to_json
    from sam2_tracking.store import NotFound

    started = time.perf_counter()
    if queue not in settings.queue_names:
        raise PreviewError(f"unknown queue {queue!r}: this server offers {', '.join(settings.queue_names)}")
    try:
        dataset = store.get_dataset(int(dataset_id))
    except (NotFound, TypeError, ValueError, OverflowError):
        raise PreviewError(f"unknown video {dataset_id!r}: open a video first") from None
    seed = _checked_seed(dataset, frame_idx, box, clicks, mask)
    if track_id is not None:
        try:
            track = store.get_track(int(track_id))
        except (NotFound, TypeError, ValueError, OverflowError):
            raise PreviewError(f"unknown track {track_id!r}") from None
        if track.dataset_id != dataset.dataset_id:
            raise PreviewError(f"track {track_id} belongs to another video")
    if not model_name:
        raise PreviewError("choose a model first (an admin downloads models in the Admin tab)")
    try:
        model = store.get_model(model_name)
    except NotFound:
        raise PreviewError(f"unknown model {model_name!r}: an admin adds models in the Admin tab") from None
    if not model.usable:
        raise PreviewError(f"model {model_name!r} is not ready (status: {model.status}); ask an admin to download it")
    if not store.list_workers(queue=queue, max_age_s=STALE_AFTER_S):
        raise PreviewError(f"no worker is listening on {queue}: start `python -m queues.consumer {queue}` (or pick "
                           "another queue) to see previews")
    payload = {
        "dataset_id": dataset.dataset_id, "queue": queue, "model_name": model_name,
        "track_id": None if track_id is None else int(track_id), "seed": seed_to_json(seed),
    }
    huey, preview_task = preview_huey(settings, queue)
    task = preview_task.s(payload)
    # A request nobody waits for any more is dropped unserved by the consumer.
    task.expires = max(1, int(timeout_s))
    handle = huey.enqueue(task)
    try:
        answer = handle.get(blocking=True, timeout=timeout_s, backoff=1.0, max_delay=POLL_S, revoke_on_timeout=True)
    except TaskException as exc:
        raise PreviewError(f"the {queue} worker failed to preview: {exc.metadata.get('error', exc)}") from None
    except HueyException:
        raise PreviewError(f"no preview from the {queue} worker within {timeout_s:.0f} s: it may be loading the model "
                           "or overloaded; try again in a moment") from None
    if "error" in answer:
        raise PreviewError(answer["error"])
    preview_mask = None
    if answer["present"]:
        from sam2_tracking.engine.masks import rle_to_mask

        preview_mask = rle_to_mask(answer["rle"], expected_size=(dataset.height, dataset.width))
    return PreviewAnswer(
        dataset_id=dataset.dataset_id, frame_idx=seed.frame_idx, present=bool(answer["present"]),
        score=float(answer["score"]), mask=preview_mask, rle=answer["rle"] if answer["present"] else None,
        box=answer.get("box"), encoded=bool(answer["encoded"]),
        compute_ms=float(answer["compute_ms"]), wait_ms=(time.perf_counter() - started) * 1000.0,
    )


def _checked_seed(dataset, frame_idx, box, clicks, mask):
    """The prompt as a Seed that fits the video, or PreviewError naming what is wrong."""
    from sam2_tracking.types import Box, Click, Seed, SeedError

    if dataset.width * dataset.height > MAX_FRAME_PIXELS:
        raise PreviewError(f"video frames of {dataset.width}x{dataset.height} are too large to preview")
    try:
        if isinstance(frame_idx, bool) or not float(frame_idx).is_integer():
            raise PreviewError(f"frame {frame_idx!r} is not a frame number")
        frame_idx = int(frame_idx)
        clicks = list(clicks or ())
        if len(clicks) > MAX_CLICKS:
            raise PreviewError(f"{len(clicks)} clicks on one frame: use at most {MAX_CLICKS}")
        seed = Seed(
            frame_idx=frame_idx,
            box=Box(*(float(v) for v in box)) if box is not None else None,
            mask=mask,
            clicks=tuple(Click(float(x), float(y), bool(positive)) for x, y, positive in clicks),
        )
        seed.check_fits(dataset.width, dataset.height, dataset.frame_count)
    except SeedError as exc:
        raise PreviewError(f"{exc}: nothing to preview") from None
    except (TypeError, ValueError, OverflowError) as exc:
        if isinstance(exc, PreviewError):
            raise
        raise PreviewError(f"not a valid prompt for a preview ({exc})") from None
    return seed


# ---- the consumer's side ----------------------------------------------------------------------------------------

class _Worker:
    """What the preview thread keeps between requests: the engine (cached frame states) and open videos."""

    def __init__(self) -> None:
        from sam2_tracking.engine.preview import PreviewEngine

        self.engine = PreviewEngine()
        self.videos: OrderedDict[str, object] = OrderedDict()

    def video(self, path: str):
        from sam2_tracking.engine.video import open_video

        source = self.videos.get(path)
        if source is None:
            source = self.videos[path] = open_video(path)
            while len(self.videos) > 2:
                self.videos.popitem(last=False)[1].close()
        self.videos.move_to_end(path)
        return source


_workers: dict[str, _Worker] = {}


def serve_preview(payload: dict) -> dict:
    """The preview task, run by a consumer's preview thread: {"error": message} or the answer for the page."""
    from queues.identity import identity_for, model_device, served_settings
    from queues.job_model import model_here_or_fetching
    from sam2_tracking.engine.masks import mask_to_rle
    from sam2_tracking.engine.video import VideoError
    from sam2_tracking.jobs.seeds import seed_from_json
    from sam2_tracking.models.catalogue import ModelError, load_predictor
    from sam2_tracking.store import NotFound
    from sam2_tracking.types import SeedError

    settings = served_settings()
    queue = str(payload["queue"])
    store = get_store(settings)
    try:
        dataset = store.get_dataset(int(payload["dataset_id"]))
        model_name = str(payload["model_name"])
        model = store.get_model(model_name)  # a catalogue name, never a path from the queue
        if not model.usable:
            return {"error": f"model {model_name!r} is not ready on this server; ask an admin"}
        seed = seed_from_json(payload["seed"])
        # The queue is shared with other clients: check the prompt here too, before any work.
        seed.check_fits(dataset.width, dataset.height, dataset.frame_count)
        worker = _workers.setdefault(queue, _Worker())
        # A consumer on another machine has no copy of the app's disk: it fetches the video from the app (cached).
        video_path = str(local_video_path(settings, dataset))
        stat = os.stat(video_path)
        frames = worker.video(video_path)
        if (frames.frame_count, frames.width, frames.height) != (dataset.frame_count, dataset.width, dataset.height):
            return {"error": f"the video file {dataset.path} changed since it was added: add it again"}
        # A consumer on another machine may not hold the model yet: it fetches it in the background and says so.
        fetching = model_here_or_fetching(settings, model)
        if fetching is not None:
            return {"error": fetching}
        predictor = load_predictor(settings.model_dir / model_name,
                                   device=model_device(identity_for(queue).device),
                                   max_checkpoint_bytes=settings.max_checkpoint_bytes)
        preview = worker.engine.preview(
            predictor, (dataset.path, stat.st_size, stat.st_mtime_ns), dataset.frame_count, dataset.width,
            dataset.height, seed, lambda: frames.read(seed.frame_idx), obj_id=payload.get("track_id") or 1,
        )
    except NotFound as exc:
        return {"error": f"not found: {exc}"}
    except (SeedError, ModelError, VideoError, VideoFetchError, OSError) as exc:
        return {"error": str(exc)}
    result = preview.result
    return {
        "present": bool(result.present), "score": float(result.score),
        "rle": mask_to_rle(result.mask) if result.present else None,
        "box": result.box.as_list() if result.present and result.box is not None else None,
        "encoded": preview.encoded, "compute_ms": round(preview.compute_ms, 2),
    }
