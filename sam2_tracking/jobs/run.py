"""The one job run: plan -> feed -> track -> commit -> finish, for every runner (a queue consumer, the CLI, and later
the in-request runner of a Space). A runner says who it is and how it runs jobs (JobRunner); `run_job` does the rest.

- Leases: the run claims the job for runner.worker_id; a worker that loses it (its heartbeat went stale and another
  took the job over) stops quietly at its next frame or commit and leaves the job alone.
- Every stop keeps every tracked frame: a cancel by the owner, an admin stop, "SAM2 off" (all a cancel request on the
  job) and a local stop (the CLI's Ctrl-C) make the tracker hand over the frames tracked since the last batch; they
  are committed, with their resume point, before the job ends cancelled. Only a killed process falls back to its
  last commit, and the next run resumes from there exactly.
- Exact resume: after each commit the tracker's ResumePoint (what SAM2 still reads) is saved next to the job; a run
  that finds one continues from it, one without tracks from the seeds again, skipping committed frames. Either way
  no frame is written twice and every mask equals an uninterrupted run's.
- Notifications: one per notify-percent of the job's frames, each with an overlay preview, written as soon as the
  frame is tracked (not at the batch's commit).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sam2_tracking.jobs.plan import job_frames, notification_frames
from sam2_tracking.jobs.seeds import seeds_from_json
from sam2_tracking.jobs.writer import JobWriter, overlay_jpeg, preview_jpeg
from sam2_tracking.states import JobState, Lease
from sam2_tracking.types import FrameMask, JobSpec, ObjectSeeds, TrackingProgress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobRunner:
    """Who runs a job and how. model_dir / spec.model_name is the model folder (an absolute model_name, as the CLI
    gives, is used as it is); video_path(dataset) the local file of the dataset's video."""

    worker_id: str
    model_dir: Path
    resume_dir: Path
    video_path: Callable[[object], Path]
    device: str | None = None
    compile_model: bool = False
    feeder_threads: int | None = None
    stale_after_s: float = 60.0
    on_progress: Callable[[TrackingProgress], None] | None = None  # after every frame, in the model's thread
    stop_requested: Callable[[], bool] | None = None  # a local stop (the CLI's Ctrl-C), besides a cancel request
    keep_resume_on_stop: bool = False  # keep the saved state of a stopped job, so running it again continues it
    max_checkpoint_bytes: int | None = None  # the checkpoint cap (SAM2T_MAX_CHECKPOINT_BYTES); None: the default

    def resume_point_path(self, job_id: int) -> Path:
        return resume_point_file(self.resume_dir, job_id)


def resume_point_file(resume_dir: Path, job_id: int) -> Path:
    """Where a job's tracking state is saved after each commit (removed when the job ends)."""
    return Path(resume_dir) / f"job-{int(job_id)}.pt"


def run_job(store, job_id: int, runner: JobRunner) -> JobState:
    """Run job `job_id` to its end; return its final state. Failures are recorded on the job, then re-raised."""
    from sam2_tracking.engine.tracker import TrackingCancelled
    from sam2_tracking.store.jobs import LeaseLost

    job = store.get_job(job_id)
    if job.finished:
        return JobState(job.status)
    if job.cancel_requested and store.cancel_if_queued(job_id):
        return JobState.CANCELLED
    if not store.claim_job(job_id, runner.worker_id, stale_after_s=runner.stale_after_s):
        log.info("job %s is held by another worker; skipping", job_id)
        return JobState(store.get_job(job_id).status)
    resume_path = runner.resume_point_path(job_id)
    try:
        _JobRun(store, store.get_job(job_id), runner).run()
    except LeaseLost as exc:
        log.warning("job %s: this worker lost it to another (%s); stopping without touching it", job_id, exc)
        return JobState(store.get_job(job_id).status)
    except TrackingCancelled:
        if store.finish_job(job_id, runner.worker_id, JobState.CANCELLED) and not runner.keep_resume_on_stop:
            resume_path.unlink(missing_ok=True)
        return JobState.CANCELLED
    except Exception as exc:
        # The person reads this message in the UI: keep the exception's own words, which our modules write for them.
        message = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        if not store.finish_job(job_id, runner.worker_id, JobState.FAILED, error=message):
            log.warning("job %s: stopped after losing it to another worker (%s)", job_id, message)
            return JobState(store.get_job(job_id).status)
        resume_path.unlink(missing_ok=True)
        log.exception("job %s failed", job_id)
        raise
    if not store.finish_job(job_id, runner.worker_id, JobState.DONE, eta_s=0.0):
        log.warning("job %s: finished its frames after losing it to another worker; leaving it", job_id)
        return JobState(store.get_job(job_id).status)
    resume_path.unlink(missing_ok=True)
    return JobState.DONE


class _JobRun:
    """State of one run of one job: counters for progress and notifications, the open video, the model."""

    def __init__(self, store, job, runner: JobRunner) -> None:
        self.store = store
        self.job = job
        self.runner = runner
        self.spec: JobSpec = job.spec
        self.run_started = time.monotonic()
        self.frames_at_start = 0
        self.latest_progress: TrackingProgress | None = None
        # Notification frames -> their position in the job's processing order (the frames tracked when it is reached),
        # and those that have had their notification (in this run or, before a resume, in an earlier one).
        self.notify_positions: dict[int, int] = {}
        self.notified: set[int] = set()
        self.committed: set[int] = set()

    def run(self) -> None:
        from sam2_tracking.engine.video import open_video
        from sam2_tracking.models.catalogue import load_predictor

        dataset = self.store.get_dataset(self.spec.dataset_id)
        self.committed = self.store.job_frames_written(self.job.job_id)
        all_frames = job_frames(self.spec, dataset.frame_count)
        self.frames_total = len(all_frames)
        self.frames_done = len([idx for idx in all_frames if idx in self.committed])
        self.frames_at_start = self.frames_done
        if self.frames_done == self.frames_total:
            return
        # Known up front, so the feeder keeps those frames for the previews instead of decoding them again.
        notify = notification_frames(self.spec, dataset.frame_count)
        self.notify_positions = {idx: pos for pos, idx in enumerate(all_frames, 1) if idx in notify}
        self.notified = self._notified_before()
        device = self.runner.device
        cap = {} if self.runner.max_checkpoint_bytes is None else {"max_checkpoint_bytes": self.runner.max_checkpoint_bytes}
        predictor = load_predictor(self.runner.model_dir / self.spec.model_name, device=device, **cap)
        if self.runner.compile_model:
            from sam2_tracking.engine.compiled import compiled_predictor

            predictor = compiled_predictor(predictor)
        resume = self._resume_point(str(predictor.device), all_frames)
        with open_video(self.runner.video_path(dataset)) as frames:
            if (frames.frame_count, frames.width, frames.height) != (
                dataset.frame_count, dataset.width, dataset.height
            ):
                raise ValueError(
                    f"the video file {dataset.path} changed since it was added "
                    f"({dataset.frame_count} frames {dataset.width}x{dataset.height} then, "
                    f"{frames.frame_count} frames {frames.width}x{frames.height} now): add it again"
                )
            self.frames = frames
            self.writer = JobWriter(f"job-{self.job.job_id}-writer", self.commit, self.render_preview,
                                    self.write_progress)
            preview_frames = {idx for idx in notify if idx not in self.committed and idx not in self.notified}
            try:
                try:
                    batches = self._track(predictor, frames, preview_frames, resume)
                except ValueError as exc:
                    if resume is None:
                        raise
                    # A saved state that does not fit this job (checked before any work): track from the seeds.
                    log.warning("job %s: its saved tracking state does not fit it (%s); tracking again",
                                self.job.job_id, exc)
                    batches = self._track(predictor, frames, preview_frames, None)
                try:
                    for batch in batches:
                        self.writer.put_batch(batch)
                        del batch  # the writer holds the only reference: memory does not grow with the batch size
                finally:
                    batches.close()  # stops the feeder's threads now, also when the writer failed
            finally:
                self.writer.close()

    def _track(self, predictor, frames, preview_frames: set[int], resume):
        from sam2_tracking.engine.tracker import track_objects

        return track_objects(
            predictor, frames, self._objects(), start_frame_idx=self.spec.start_frame_idx,
            num_frames=self.spec.num_frames, direction=self.spec.direction, batch_size=self.spec.batch_size,
            on_progress=self._on_progress, should_cancel=self._should_stop,
            feeder_threads=self.runner.feeder_threads, preview_frames=preview_frames,
            on_preview=lambda idx, rgb, results: self.writer.put_preview(idx, rgb, results), resume=resume,
        )

    def _objects(self) -> list[ObjectSeeds]:
        seeds_by_track = seeds_from_json(self.spec.extra["seeds"])
        return [ObjectSeeds(track_id, tuple(seeds_by_track[track_id])) for track_id in self.spec.track_ids]

    def _notified_before(self) -> set[int]:
        """Notification frames an earlier run of this job already notified: the committed ones, and those tracked
        but not committed before it stopped. A run notifies in processing order, so those are exactly the frames up
        to the latest notification's; none gets a second notification after a resume."""
        done = {idx for idx in self.notify_positions if idx in self.committed}
        latest = self.job.notification
        if latest is not None and latest.frame_idx in self.notify_positions:
            reached = self.notify_positions[latest.frame_idx]
            done.update(idx for idx, pos in self.notify_positions.items() if pos <= reached)
        return done

    def _resume_point(self, device: str, all_frames: list[int]):
        """The saved tracking state of this job, when there is one every frame up to which is committed; else None
        (tracking restarts from the seeds and skips the committed frames)."""
        from sam2_tracking.engine.resume import load_resume_point

        path = self.runner.resume_point_path(self.job.job_id)
        if not self.committed or not path.exists():
            return None
        try:
            point = load_resume_point(path, device)
        except ValueError as exc:
            log.warning("job %s: ignoring its saved tracking state (%s); tracking again from the seeds",
                        self.job.job_id, exc)
            return None
        if point.frames_done > len(all_frames) or not set(all_frames[: point.frames_done]) <= self.committed:
            log.warning("job %s: its saved tracking state is ahead of its committed frames; tracking again",
                        self.job.job_id)
            return None
        log.info("job %s: resuming from its saved tracking state after frame %s (%s frames done)", self.job.job_id,
                 point.frame_idx, point.frames_done)
        return point

    # -- called in the model's thread
    def _on_progress(self, progress: TrackingProgress) -> None:
        self.latest_progress = progress  # written by the writer thread, at most every PROGRESS_WRITE_INTERVAL_S
        if self.runner.on_progress is not None:
            self.runner.on_progress(progress)

    def _should_stop(self) -> bool:
        from sam2_tracking.store.jobs import LeaseLost

        lease = self.store.job_lease(self.job.job_id, self.runner.worker_id)
        if lease == Lease.LOST:
            raise LeaseLost(f"job {self.job.job_id} is no longer held by {self.runner.worker_id}")
        stop = self.runner.stop_requested
        return lease == Lease.CANCEL or (stop is not None and stop())

    # -- called in the writer thread
    def commit(self, batch) -> None:
        from sam2_tracking.engine.resume import save_resume_point

        fresh = [result for result in batch if result.frame_idx not in self.committed]
        if fresh:
            self.store.write_job_batch(self.job.job_id, fresh, worker=self.runner.worker_id)
            new_frames = list(dict.fromkeys(r.frame_idx for r in fresh))  # unique, in processing order
            self.committed.update(new_frames)
            self._after_commit(new_frames)
        if batch.resume_point is not None:
            # After the commit, so a saved point never runs ahead of the committed frames.
            save_resume_point(batch.resume_point, self.runner.resume_point_path(self.job.job_id))

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

    def _notify(self, frame_idx: int, jpeg: bytes) -> None:
        """One store write per notification frame, so the count is exact. frames_done in the notification is the
        frames tracked when the frame was reached (its position in the job's order); the job's own frames_done stays
        the committed count, which moves once per batch."""
        from sam2_tracking.store import JobNotification
        from sam2_tracking.store.jobs import LeaseLost

        position = self.notify_positions[frame_idx]
        # Written outside a batch commit (which checks the lease itself): a worker that lost the job stops here
        # instead of counting a notification on the new holder's run.
        if self.store.job_lease(self.job.job_id, self.runner.worker_id) == Lease.LOST:
            raise LeaseLost(f"job {self.job.job_id} is no longer held by {self.runner.worker_id}")
        self.notified.add(frame_idx)
        self.store.update_job(self.job.job_id, notification=JobNotification(
            frame_idx=frame_idx,
            frames_done=position,
            percent=round(100.0 * position / self.frames_total, 1),
            frames_total=self.frames_total,
            preview_jpeg=jpeg,
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
            self._notify(frame_idx, preview_jpeg(rgb, results))

    def _preview_from_store(self, frame_idx: int) -> bytes:
        # Only for a notification frame the tracker handed no frame for (a safety net: see _after_commit).
        rgb = self.frames.read(frame_idx)
        features = [self.store.get_features(track_id, frame_idx, frame_idx + 1) for track_id in self.spec.track_ids]
        layers = [(f[0].track_id, f[0].mask, f[0].box) for f in features if f and f[0].present]
        return overlay_jpeg(rgb, layers)
