"""Runs one tracking job inside a consumer: spec and seeds from the store, the streaming tracker, batch commits,
progress, notifications with previews, cancel and resume. Called by the Huey task in queues.tasks.
"""

from __future__ import annotations

import io
import logging
import queue
import threading
import time
from pathlib import Path

import numpy as np

# get_store is also imported from here by app.py and tests written before config.py held it.
from queues.config import STALE_AFTER_S, get_store
from queues.identity import WorkerIdentity, model_device
from sam2_tracking.jobs.plan import job_frames, notification_frames
from sam2_tracking.jobs.seeds import seeds_from_json
from sam2_tracking.settings import Settings
from sam2_tracking.store.jobs import LeaseLost
from sam2_tracking.types import Direction, FrameMask, JobSpec, ObjectSeeds, TrackingProgress

log = logging.getLogger(__name__)

PROGRESS_WRITE_INTERVAL_S = 0.5
PREVIEW_MAX_WIDTH = 640
# Items (batches of RLE results, preview frames) waiting for the writer thread; bounds what the model can run ahead.
WRITER_QUEUE_ITEMS = 4


def resume_point_path(settings: Settings, job_id: int) -> Path:
    """Where a job's tracking state is saved after each commit (removed when the job ends)."""
    return settings.data_dir / "resume" / f"job-{int(job_id)}.pt"


def discard_resume_point(settings: Settings, job_id: int) -> None:
    resume_point_path(settings, job_id).unlink(missing_ok=True)


def run_tracking_job(settings: Settings, job_id: int, worker: WorkerIdentity) -> str:
    """Run job `job_id` to its end; return its final status. Failures are recorded on the job, then re-raised.

    A worker that loses the job to another (its heartbeat went stale and a live consumer re-queued the job) stops
    quietly at its next frame or commit and leaves the job alone: the job is the new holder's now.
    """
    from sam2_tracking.engine.tracker import TrackingCancelled

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
        if store.finish_job(job_id, worker.worker_id, "cancelled"):
            discard_resume_point(settings, job_id)
        return "cancelled"
    except Exception as exc:
        # The person reads this message in the UI: keep the exception's own words, which our modules write for them.
        message = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        if not store.finish_job(job_id, worker.worker_id, "failed", error=message):
            log.warning("job %s: stopped after losing it to another worker (%s)", job_id, message)
            return store.get_job(job_id).status
        discard_resume_point(settings, job_id)
        log.exception("job %s failed", job_id)
        raise
    finally:
        worker.current_job_id = None
    if not store.finish_job(job_id, worker.worker_id, "done", eta_s=0.0):
        log.warning("job %s: finished its frames after losing it to another worker; leaving it", job_id)
        return store.get_job(job_id).status
    discard_resume_point(settings, job_id)
    return "done"


class _JobRun:
    """State of one run of one job: counters for progress and notifications, the open video, the model.

    The model's thread only tracks: batches (masks already RLE), preview frames and progress go to a writer thread
    that commits, renders previews and saves the resume point, so the model never waits on the store.

    Resume is exact: after each commit the tracker's ResumePoint (what SAM2 still reads) is saved next to the job;
    a run that finds one continues from it, and a run without one tracks from the start again. Either way frames
    already committed are recomputed at most, never written twice, and every mask equals an uninterrupted run's.
    """

    def __init__(self, settings: Settings, store, job, worker: WorkerIdentity) -> None:
        self.settings = settings
        self.store = store
        self.job = job
        self.worker = worker
        self.spec: JobSpec = job.spec
        self.run_started = time.monotonic()
        self.frames_at_start = 0
        self.latest_progress: TrackingProgress | None = None
        # Notification frames -> their position in the job's processing order (the frames tracked when it is reached),
        # and those that have had their notification (in this run or, before a resume, in an earlier one).
        self.notify_positions: dict[int, int] = {}
        self.notified: set[int] = set()

    def run(self) -> None:
        from sam2_tracking.engine.remote_video import local_video_path
        from sam2_tracking.engine.tracker import track_objects
        from sam2_tracking.engine.video import open_video
        from sam2_tracking.models.catalogue import load_predictor

        dataset = self.store.get_dataset(self.spec.dataset_id)
        committed = self.store.job_frames_written(self.job.job_id)
        all_frames = job_frames(self.spec, dataset.frame_count)
        self.frames_total = len(all_frames)
        self.frames_done = len([idx for idx in all_frames if idx in committed])
        self.frames_at_start = self.frames_done
        if self.frames_done == self.frames_total:
            return
        # Known up front, so the feeder keeps those frames for the previews instead of decoding them again.
        notify = notification_frames(self.spec, dataset.frame_count)
        self.notify_positions = {idx: pos for pos, idx in enumerate(all_frames, 1) if idx in notify}
        self.notified = self._notified_before(committed)
        model_path = self.settings.model_dir / self.spec.model_name
        device = model_device(self.worker.device)
        predictor = load_predictor(model_path, device=device)
        if self.worker.compile_model:
            from sam2_tracking.engine.tracker import compiled_predictor

            predictor = compiled_predictor(predictor)
        resume = self._resume_point(device, all_frames, committed)
        with open_video(local_video_path(self.settings, dataset)) as frames:
            if (frames.frame_count, frames.width, frames.height) != (
                dataset.frame_count, dataset.width, dataset.height
            ):
                raise ValueError(
                    f"the video file {dataset.path} changed since it was added "
                    f"({dataset.frame_count} frames {dataset.width}x{dataset.height} then, "
                    f"{frames.frame_count} frames {frames.width}x{frames.height} now): add it again"
                )
            self.frames = frames
            self._writer = writer = _Writer(self, committed)

            def start(resume_point):
                return track_objects(
                    predictor,
                    frames,
                    self._objects(),
                    start_frame_idx=self.spec.start_frame_idx,
                    num_frames=self.spec.num_frames,
                    direction=Direction(self.spec.direction),
                    batch_size=self.spec.batch_size,
                    on_progress=self._on_progress,
                    should_cancel=self._should_cancel,
                    feeder_threads=self.worker.feeder_threads,
                    preview_frames={idx for idx in notify if idx not in committed and idx not in self.notified},
                    on_preview=self._on_preview,
                    resume=resume_point,
                )

            try:
                try:
                    batches = start(resume)
                except ValueError as exc:
                    if resume is None:
                        raise
                    # A saved state that does not fit this job (checked before any work): track from the seeds.
                    log.warning("job %s: its saved tracking state does not fit it (%s); tracking again",
                                self.job.job_id, exc)
                    batches = start(None)
                self._track(batches, writer)
            finally:
                writer.close()

    def _track(self, batches, writer: _Writer) -> None:
        try:
            for batch in batches:
                writer.put(("batch", batch))
                del batch  # the writer holds the only reference: memory does not grow with the batch size
        finally:
            batches.close()  # stops the feeder's threads now, also when the writer failed

    def _objects(self) -> list[ObjectSeeds]:
        seeds_by_track = seeds_from_json(self.spec.extra["seeds"])
        return [ObjectSeeds(track_id, tuple(seeds_by_track[track_id])) for track_id in self.spec.track_ids]

    def _notified_before(self, committed: set[int]) -> set[int]:
        """Notification frames an earlier run of this job already notified: the committed ones, and those tracked
        but not committed before it stopped. A run notifies in processing order, so those are exactly the frames up
        to the latest notification's; none gets a second notification after a resume."""
        done = {idx for idx in self.notify_positions if idx in committed}
        latest = self.job.notification
        if latest is not None and latest.frame_idx in self.notify_positions:
            reached = self.notify_positions[latest.frame_idx]
            done.update(idx for idx, pos in self.notify_positions.items() if pos <= reached)
        return done

    def _resume_point(self, device: str, all_frames: list[int], committed: set[int]):
        """The saved tracking state of this job, when there is one every frame up to which is committed; else None
        (tracking restarts from the seeds and skips the committed frames)."""
        from sam2_tracking.engine.tracker import load_resume_point

        path = resume_point_path(self.settings, self.job.job_id)
        if not committed or not path.exists():
            return None
        try:
            point = load_resume_point(path, device)
        except ValueError as exc:
            log.warning("job %s: ignoring its saved tracking state (%s); tracking again from the seeds", self.job.job_id,
                        exc)
            return None
        if point.frames_done > len(all_frames) or not set(all_frames[: point.frames_done]) <= committed:
            log.warning("job %s: its saved tracking state is ahead of its committed frames; tracking again",
                        self.job.job_id)
            return None
        log.info("job %s: resuming from its saved tracking state after frame %s (%s frames done)", self.job.job_id,
                 point.frame_idx, point.frames_done)
        return point

    # -- called in the model's thread
    def _on_progress(self, progress: TrackingProgress) -> None:
        self.latest_progress = progress  # written by the writer thread, at most every PROGRESS_WRITE_INTERVAL_S

    def _on_preview(self, frame_idx: int, rgb: np.ndarray, results: list[FrameMask]) -> None:
        self._writer.put(("preview", frame_idx, rgb, results))

    def _should_cancel(self) -> bool:
        lease = self.store.job_lease(self.job.job_id, self.worker.worker_id)
        if lease == "lost":
            raise LeaseLost(f"job {self.job.job_id} is no longer held by {self.worker.worker_id}")
        return lease == "cancel"

    # -- called in the writer thread
    def commit(self, batch, committed: set[int]) -> None:
        from sam2_tracking.engine.tracker import save_resume_point

        fresh = [result for result in batch if result.frame_idx not in committed]
        if fresh:
            self.store.write_job_batch(self.job.job_id, fresh, worker=self.worker.worker_id)
            new_frames = list(dict.fromkeys(r.frame_idx for r in fresh))  # unique, in processing order
            committed.update(new_frames)
            self._after_commit(new_frames)
        if batch.resume_point is not None:
            # After the commit, so a saved point never runs ahead of the committed frames.
            save_resume_point(batch.resume_point, resume_point_path(self.settings, self.job.job_id))

    def _after_commit(self, new_frames: list[int]) -> None:
        fields = {"current_frame_idx": new_frames[-1], "heartbeat_at": time.time()}
        self.frames_done += len(new_frames)
        for frame_idx in new_frames:
            if frame_idx in self.notify_positions and frame_idx not in self.notified:
                # The tracker gave no frame for it (render_preview notifies the others as soon as they are tracked):
                # draw it from what was just committed, so no notification is missing.
                self._notify(frame_idx, self._preview_from_store(frame_idx))
        fields["frames_done"] = self.frames_done
        fields.update(self._rate_fields())
        self.store.update_job(self.job.job_id, **fields)

    def _notify(self, frame_idx: int, preview_jpeg: bytes) -> None:
        """One store write per notification frame, so the count is exact. frames_done in the notification is the
        frames tracked when the frame was reached (its position in the job's order); the job's own frames_done stays
        the committed count, which moves once per batch."""
        from sam2_tracking.store import JobNotification

        position = self.notify_positions[frame_idx]
        # Written outside a batch commit (which checks the lease itself): a worker that lost the job stops here
        # instead of counting a notification on the new holder's run.
        if self.store.job_lease(self.job.job_id, self.worker.worker_id) == "lost":
            raise LeaseLost(f"job {self.job.job_id} is no longer held by {self.worker.worker_id}")
        self.notified.add(frame_idx)
        self.store.update_job(self.job.job_id, notification=JobNotification(
            frame_idx=frame_idx,
            frames_done=position,
            percent=round(100.0 * position / self.frames_total, 1),
            frames_total=self.frames_total,
            preview_jpeg=preview_jpeg,
            created_at=time.time(),
        ), heartbeat_at=time.time())

    def write_progress(self) -> None:
        progress, self.latest_progress = self.latest_progress, None
        if progress is not None:
            # Frames processed but not yet committed: shown as the current frame so the UI moves between commits.
            self.store.update_job(self.job.job_id, current_frame_idx=progress.frame_idx, fps=round(progress.fps, 3),
                                  heartbeat_at=time.time())

    def _rate_fields(self) -> dict:
        elapsed = time.monotonic() - self.run_started
        done_here = self.frames_done - self.frames_at_start
        fps = done_here / elapsed if elapsed > 0 and done_here > 0 else 0.0
        eta = (self.frames_total - self.frames_done) / fps if fps > 0 else None
        return {"fps": round(fps, 3), "eta_s": None if eta is None else round(eta, 1)}

    def render_preview(self, frame_idx: int, rgb: np.ndarray, results: list[FrameMask]) -> None:
        # Written now, not at the batch's commit: with batch 100 a short job would show nothing until its end.
        if frame_idx in self.notify_positions and frame_idx not in self.notified:
            self._notify(frame_idx, _preview_jpeg(rgb, results))

    def _preview_from_store(self, frame_idx: int) -> bytes:
        # Only for a notification frame the tracker handed no frame for (a safety net: see _after_commit).
        rgb = self.frames.read(frame_idx)
        features = [self.store.get_features(track_id, frame_idx, frame_idx + 1) for track_id in self.spec.track_ids]
        layers = [(f[0].track_id, f[0].mask, f[0].box) for f in features if f and f[0].present]
        return _overlay_jpeg(rgb, layers)


def _preview_jpeg(rgb: np.ndarray, results: list[FrameMask]) -> bytes:
    return _overlay_jpeg(rgb, [(r.track_id, r.mask_array(), r.box) for r in results if r.present])


def _overlay_jpeg(rgb: np.ndarray, layers: list) -> bytes:
    from PIL import Image

    from sam2_tracking.engine.masks import draw_overlay, resize_for_preview

    overlay = draw_overlay(rgb, layers)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(resize_for_preview(overlay, PREVIEW_MAX_WIDTH))).save(
        buffer, format="JPEG", quality=80
    )
    return buffer.getvalue()


class _Writer:
    """The job's writer thread: commits batches (then saves their resume point), renders previews, writes progress.

    put() blocks while WRITER_QUEUE_ITEMS items wait, and raises the writer's error (a lost lease, a store error) in
    the model's thread; close() lets it finish what was queued (batches tracked before a cancel stay committed) and
    raises its error if it had one.
    """

    def __init__(self, run: _JobRun, committed: set[int]) -> None:
        self.run = run
        self.committed = committed
        self.items: queue.Queue = queue.Queue(maxsize=WRITER_QUEUE_ITEMS)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._loop, name=f"job-{run.job.job_id}-writer", daemon=True)
        self.thread.start()

    def put(self, item: tuple) -> None:
        while True:
            if self.error is not None:
                raise self.error
            try:
                self.items.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        while self.thread.is_alive():
            try:
                self.items.put(None, timeout=0.5)
                break
            except queue.Full:
                continue
        self.thread.join()
        if self.error is not None:
            raise self.error

    def _loop(self) -> None:
        run = self.run
        try:
            while True:
                try:
                    item = self.items.get(timeout=PROGRESS_WRITE_INTERVAL_S)
                except queue.Empty:
                    run.write_progress()
                    continue
                if item is None:
                    return
                if item[0] == "preview":
                    run.render_preview(*item[1:])
                else:
                    run.commit(item[1], self.committed)
                run.write_progress()
        except BaseException as exc:
            self.error = exc
            while True:  # unblock the model's thread; it sees the error at its next put()
                try:
                    self.items.get_nowait()
                except queue.Empty:
                    break
