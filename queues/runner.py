"""Runs one tracking job inside a consumer: spec and seeds from the store, the streaming tracker, batch commits,
progress, notifications with previews, cancel and resume. Called by the Huey task in queues.tasks.
"""

from __future__ import annotations

import io
import logging
import time

import numpy as np

# get_store is also imported from here by app.py and tests written before config.py held it.
from queues.config import STALE_AFTER_S, get_store
from queues.plan import Leg, is_notification_frame, job_frames, plan_legs
from queues.seeds import seeds_from_json
from queues.worker import WorkerIdentity, model_device
from sam2_tracking.settings import Settings
from sam2_tracking.store.jobs import LeaseLost
from sam2_tracking.types import Direction, FrameMask, JobSpec, ObjectSeeds, Seed, TrackingProgress

log = logging.getLogger(__name__)

PROGRESS_WRITE_INTERVAL_S = 0.5
PREVIEW_MAX_WIDTH = 640


def run_tracking_job(settings: Settings, job_id: int, worker: WorkerIdentity) -> str:
    """Run job `job_id` to its end; return its final status. Failures are recorded on the job, then re-raised.

    A worker that loses the job to another (its heartbeat went stale and a live consumer re-queued the job) stops
    quietly at its next frame or commit and leaves the job alone: the job is the new holder's now.
    """
    from sam2_tracking.tracker import TrackingCancelled

    store = get_store(settings)
    job = store.get_job(job_id)
    if job.finished:
        return job.status
    if job.cancel_requested and store.cancel_if_queued(job_id):
        return "cancelled"
    if not store.claim_job(job_id, worker.worker_id, stale_after_s=STALE_AFTER_S):
        log.info("job %s is held by another worker; skipping", job_id)
        return store.get_job(job_id).status
    worker.current_job_id = job_id
    try:
        _JobRun(settings, store, store.get_job(job_id), worker).run()
    except LeaseLost as exc:
        log.warning("job %s: this worker lost it to another (%s); stopping without touching it", job_id, exc)
        return store.get_job(job_id).status
    except TrackingCancelled:
        store.finish_job(job_id, worker.worker_id, "cancelled")
        return "cancelled"
    except Exception as exc:
        # The person reads this message in the UI: keep the exception's own words, which our modules write for them.
        message = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        if not store.finish_job(job_id, worker.worker_id, "failed", error=message):
            log.warning("job %s: stopped after losing it to another worker (%s)", job_id, message)
            return store.get_job(job_id).status
        log.exception("job %s failed", job_id)
        raise
    finally:
        worker.current_job_id = None
    if not store.finish_job(job_id, worker.worker_id, "done", eta_s=0.0):
        log.warning("job %s: finished its frames after losing it to another worker; leaving it", job_id)
        return store.get_job(job_id).status
    return "done"


class _JobRun:
    """State of one run of one job: counters for progress and notifications, the open video, the model."""

    def __init__(self, settings: Settings, store, job, worker: WorkerIdentity) -> None:
        self.settings = settings
        self.store = store
        self.job = job
        self.worker = worker
        self.spec: JobSpec = job.spec
        self.last_progress_write = 0.0
        self.run_started = time.monotonic()
        self.frames_at_start = 0

    def run(self) -> None:
        from sam2_tracking.models import load_predictor
        from sam2_tracking.video import open_video

        dataset = self.store.get_dataset(self.spec.dataset_id)
        committed = self.store.job_frames_written(self.job.job_id)
        all_frames = job_frames(self.spec, dataset.frame_count)
        self.frames_total = len(all_frames)
        self.frames_done = len([idx for idx in all_frames if idx in committed])
        self.frames_at_start = self.frames_done
        legs = plan_legs(self.spec, dataset.frame_count, committed)
        model_path = self.settings.model_dir / self.spec.model_name
        predictor = load_predictor(model_path, device=model_device(self.worker.device))
        with open_video(dataset.path) as frames:
            if (frames.frame_count, frames.width, frames.height) != (
                dataset.frame_count, dataset.width, dataset.height
            ):
                raise ValueError(
                    f"the video file {dataset.path} changed since it was added "
                    f"({dataset.frame_count} frames {dataset.width}x{dataset.height} then, "
                    f"{frames.frame_count} frames {frames.width}x{frames.height} now): add it again"
                )
            self.frames = frames
            for leg in legs:
                self._run_leg(predictor, leg, committed)

    def _objects(self, leg: Leg) -> list[ObjectSeeds]:
        seeds_by_track = seeds_from_json(self.spec.extra["seeds"])
        objects = []
        for track_id in self.spec.track_ids:
            seeds = list(seeds_by_track[track_id])
            if leg.resume_frame_idx is not None and all(s.frame_idx != leg.resume_frame_idx for s in seeds):
                # Resume: the last committed mask carries what the dead worker's memory knew about the object.
                feature = self.store.get_features(track_id, leg.resume_frame_idx, leg.resume_frame_idx + 1)
                if feature and feature[0].present and feature[0].mask is not None:
                    seeds.append(Seed(leg.resume_frame_idx, mask=feature[0].mask))
            objects.append(ObjectSeeds(track_id, tuple(seeds)))
        return objects

    def _run_leg(self, predictor, leg: Leg, committed: set[int]) -> None:
        from sam2_tracking.tracker import track_objects

        batches = track_objects(
            predictor,
            self.frames,
            self._objects(leg),
            start_frame_idx=leg.start_frame_idx,
            num_frames=leg.num_frames,
            direction=Direction(leg.direction),
            batch_size=self.spec.batch_size,
            on_progress=self._on_progress,
            should_cancel=self._should_cancel,
        )
        for batch in batches:
            fresh = [result for result in batch if result.frame_idx not in committed]
            if not fresh:
                continue
            self.store.write_job_batch(self.job.job_id, fresh, worker=self.worker.worker_id)
            new_frames = list(dict.fromkeys(r.frame_idx for r in fresh))  # unique, in processing order
            committed.update(new_frames)
            self._after_commit(fresh, new_frames)

    def _after_commit(self, results: list[FrameMask], new_frames: list[int]) -> None:
        from sam2_tracking.store import JobNotification

        fields = {"current_frame_idx": new_frames[-1], "heartbeat_at": time.time()}
        for frame_idx in new_frames:
            self.frames_done += 1
            if is_notification_frame(self.frames_done, self.frames_total, self.spec.notify_percent):
                fields["frames_done"] = self.frames_done
                fields.update(self._rate_fields())
                # One store write per notification, so every notification is counted even within one batch.
                self.store.update_job(self.job.job_id, notification=JobNotification(
                    frame_idx=frame_idx,
                    frames_done=self.frames_done,
                    percent=round(100.0 * self.frames_done / self.frames_total, 1),
                    frames_total=self.frames_total,
                    preview_jpeg=self._preview([r for r in results if r.frame_idx == frame_idx], frame_idx),
                    created_at=time.time(),
                ), **fields)
        fields["frames_done"] = self.frames_done
        fields.update(self._rate_fields())
        self.store.update_job(self.job.job_id, **fields)
        self.last_progress_write = time.monotonic()

    def _rate_fields(self) -> dict:
        elapsed = time.monotonic() - self.run_started
        done_here = self.frames_done - self.frames_at_start
        fps = done_here / elapsed if elapsed > 0 and done_here > 0 else 0.0
        eta = (self.frames_total - self.frames_done) / fps if fps > 0 else None
        return {"fps": round(fps, 3), "eta_s": None if eta is None else round(eta, 1)}

    def _on_progress(self, progress: TrackingProgress) -> None:
        # Frames processed but not yet committed: shown as the current frame so the UI moves between commits.
        now = time.monotonic()
        if now - self.last_progress_write >= PROGRESS_WRITE_INTERVAL_S:
            self.last_progress_write = now
            self.store.update_job(self.job.job_id, current_frame_idx=progress.frame_idx, fps=round(progress.fps, 3),
                                  heartbeat_at=time.time())

    def _should_cancel(self) -> bool:
        lease = self.store.job_lease(self.job.job_id, self.worker.worker_id)
        if lease == "lost":
            raise LeaseLost(f"job {self.job.job_id} is no longer held by {self.worker.worker_id}")
        return lease == "cancel"

    def _preview(self, results: list[FrameMask], frame_idx: int) -> bytes:
        from PIL import Image

        from sam2_tracking.masks import draw_overlay, resize_for_preview

        frame = self.frames.read(frame_idx)
        overlay = draw_overlay(frame, [(r.track_id, r.mask, r.box) for r in results])
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(resize_for_preview(overlay, PREVIEW_MAX_WIDTH))).save(
            buffer, format="JPEG", quality=80
        )
        return buffer.getvalue()
