"""Runs one tracking job inside a consumer: the queue's JobRunner (this worker's id, device, model and resume folders)
handed to the one job run, sam2_tracking.jobs.run. Called by the Huey task in queues.tasks."""

from __future__ import annotations

from pathlib import Path

from queues.config import STALE_AFTER_S
from queues.identity import WorkerIdentity, model_device
from sam2_tracking.jobs.run import JobRunner, resume_point_file, run_job
from sam2_tracking.settings import Settings
from sam2_tracking.states import JobState


def resume_dir(settings: Settings) -> Path:
    """Where this installation's consumers save their jobs' tracking states."""
    return settings.data_dir / "resume"


def resume_point_path(settings: Settings, job_id: int) -> Path:
    """Where a consumer saves a job's tracking state after each commit (removed when the job ends)."""
    return resume_point_file(resume_dir(settings), job_id)


def queue_runner(settings: Settings, worker: WorkerIdentity) -> JobRunner:
    """How this process's consumer runs jobs: from the settings' model folder, with resume points in the data folder,
    videos fetched from the app when this worker has no copy (remote_video)."""
    from sam2_tracking.engine.remote_video import local_video_path

    return JobRunner(
        worker_id=worker.worker_id,
        model_dir=settings.model_dir,
        resume_dir=resume_dir(settings),
        video_path=lambda dataset: local_video_path(settings, dataset),
        device=model_device(worker.device),
        compile_model=worker.compile_model,
        feeder_threads=worker.feeder_threads,
        stale_after_s=STALE_AFTER_S,
        max_checkpoint_bytes=settings.max_checkpoint_bytes,
    )


def run_tracking_job(settings: Settings, job_id: int, worker: WorkerIdentity) -> JobState:
    """Run job `job_id` to its end on this worker; return its final state."""
    from queues.config import get_store

    worker.current_job_id = job_id
    try:
        return run_job(get_store(settings), job_id, queue_runner(settings, worker))
    finally:
        worker.current_job_id = None
