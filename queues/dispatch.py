"""The app side of the queues: validate and enqueue jobs, cancel them, start model downloads, report workers.

Everything here runs in the UI process and never imports torch: specs are checked against the store and the
video's recorded size, and the work itself happens in a consumer.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from queues import tasks
from queues.config import STALE_AFTER_S, UnknownQueueError
from queues.heartbeat import worker_is_dead
from sam2_tracking.jobs.seeds import seeds_to_json
from sam2_tracking.settings import Settings
from sam2_tracking.states import JobState, ModelState
from sam2_tracking.types import JobSpec, SeedError

log = logging.getLogger(__name__)


class JobSpecError(ValueError):
    """A tracking request that cannot run; the message names the problem. Nothing was queued."""


@dataclass(frozen=True)
class Enqueued:
    job_id: int
    warning: str | None  # e.g. no worker is listening on the queue: the job will wait


def no_worker_warning(store, queue: str) -> str | None:
    if store.list_workers(queue=queue, max_age_s=STALE_AFTER_S):
        return None
    return f"no worker is listening on {queue}: the job will wait until a consumer for {queue} starts"


def validate_job_spec(settings: Settings, store, spec: JobSpec):
    """Check every part of spec; return (dataset, seeds snapshot as JSON to store with the job).
    Raises JobSpecError."""
    from sam2_tracking.store import NotFound

    if spec.queue not in settings.queue_names:
        raise JobSpecError(f"unknown queue {spec.queue!r}: this server offers {', '.join(settings.queue_names)}")
    try:
        dataset = store.get_dataset(spec.dataset_id)
    except NotFound:
        raise JobSpecError(f"unknown dataset {spec.dataset_id}") from None
    try:
        model = store.get_model(spec.model_name)
    except NotFound:
        raise JobSpecError(f"unknown model {spec.model_name!r}: an admin adds models in the Admin tab") from None
    if not model.usable:
        raise JobSpecError(f"model {spec.model_name!r} is not downloaded (status: {model.status}); ask an admin")
    if not (0 <= spec.start_frame_idx < dataset.frame_count):
        raise JobSpecError(
            f"start frame {spec.start_frame_idx} is outside the video (frames 0 to {dataset.frame_count - 1})"
        )
    seeds_by_track = {}
    for track_id in spec.track_ids:
        try:
            track = store.get_track(track_id)
        except NotFound:
            raise JobSpecError(f"unknown track {track_id}") from None
        if track.dataset_id != spec.dataset_id:
            raise JobSpecError(f"track {track_id} belongs to dataset {track.dataset_id}, not {spec.dataset_id}")
        seeds = store.keyframe_seeds(track_id)
        if not any(seed.frame_idx == spec.start_frame_idx for seed in seeds):
            raise JobSpecError(
                f"track {track_id} has no saved box, mask or clicks on frame {spec.start_frame_idx}: "
                "draw one there and save before tracking"
            )
        for seed in seeds:
            try:
                seed.check_fits(dataset.width, dataset.height, dataset.frame_count)
            except SeedError as exc:
                raise JobSpecError(f"track {track_id}: {exc}") from None
        seeds_by_track[track_id] = seeds
    return dataset, seeds_to_json(seeds_by_track)


def enqueue_tracking_job(settings: Settings, store, spec: JobSpec, owner: str | None = None) -> Enqueued:
    """Validate spec, record the job (started by `owner`, see queues.jobs_api.Caller) and put it on its queue."""
    from sam2_tracking.jobs.plan import job_frames

    dataset, seeds_json = validate_job_spec(settings, store, spec)
    spec = dataclasses.replace(spec, extra={**spec.extra, "seeds": seeds_json})
    job = store.create_job(spec, frames_total=len(job_frames(spec, dataset.frame_count)), owner=owner)
    task_id = send_tracking_task(settings, job.job_id, spec.queue)
    store.update_job(job.job_id, huey_task_id=task_id)
    return Enqueued(job.job_id, no_worker_warning(store, spec.queue))


def send_tracking_task(settings: Settings, job_id: int, queue: str) -> str:
    return tasks.send(settings, queue, "track", job_id)


def cancel_job(settings: Settings, store, job_id: int, reason: str | None = None) -> str:
    """Cancel a job: a queued one is cancelled and revoked at once, a running one stops within a frame and keeps
    its committed batches. `reason` (when someone other than the owner stops it) is kept as the job's message.
    Returns the job's status after the request. No permission check here: see queues.jobs_api."""
    job = store.get_job(job_id)
    if job.finished:
        return job.status
    store.request_cancel(job_id)
    if reason:
        store.update_job(job_id, message=reason)
    if store.cancel_if_queued(job_id) and job.huey_task_id:
        try:
            tasks.huey_for(settings, job.queue).revoke_by_id(job.huey_task_id)
        except UnknownQueueError:
            pass  # the queue left the settings; the cancelled status alone keeps workers off the job
    return store.get_job(job_id).status


def enqueue_model_download(settings: Settings, store, name: str, queue: str, force: bool = False) -> str | None:
    """Ask a consumer of `queue` to download model `name` into its model store; returns the no-worker warning.
    A forced re-download of a usable model marks it "updating": jobs keep using the version on disk meanwhile."""
    record = store.get_model(name)  # raises NotFound for a name the catalogue does not list
    status = ModelState.UPDATING if force and record.usable else ModelState.QUEUED
    store.update_model(name, status=status, progress_bytes=0, total_bytes=None, error=None)
    tasks.send(settings, queue, "download_model", name, force)
    return no_worker_warning(store, queue)


def live_workers_by_queue(settings: Settings, store) -> dict[str, list]:
    workers = store.list_workers(max_age_s=STALE_AFTER_S)
    return {queue: [w for w in workers if w.queue == queue] for queue in settings.queue_names}


def enqueue_model_removal(settings: Settings, store, name: str, queue: str) -> str | None:
    """Ask a consumer of `queue` to delete model `name` from its model store (the store it downloads into)."""
    record = store.get_model(name)
    waiting = [job for job in store.list_jobs(statuses=[JobState.QUEUED, JobState.RUNNING], limit=None)
               if job.spec.model_name == name]
    running = [job.job_id for job in waiting if job.status == JobState.RUNNING]
    if running:
        raise ValueError(f"model {name!r} is used by running job(s) {', '.join(map(str, running))}: cancel them "
                         "(Admin jobs table) or wait, then remove")
    # A queued job on the model would fail once it is gone, and may belong to someone no longer around to cancel
    # it: cancel it here, telling its owner why, rather than let it block the removal.
    for job in waiting:
        cancel_job(settings, store, job.job_id, reason=f"cancelled: an admin removed the model {name!r}")
    store.update_model(name, status=ModelState.REMOVING if record.status != ModelState.ABSENT else record.status)
    tasks.send(settings, queue, "remove_model", name)
    return no_worker_warning(store, queue)


def requeue_dead_workers_jobs(settings: Settings, store, queue: str) -> list[int]:
    """Put running jobs of `queue` whose worker is dead back on the queue; return their ids. The consumers'
    heartbeat calls this for each queue it serves."""
    live = {w.worker_id: w for w in store.list_workers(queue=queue, max_age_s=STALE_AFTER_S)}
    requeued = []
    for job in store.list_jobs(statuses=[JobState.RUNNING], limit=None):
        if job.queue != queue or not worker_is_dead(job.worker, live):
            continue
        # The store flips running -> queued only if the job still names that worker, so two consumers that both
        # notice the dead worker re-queue the job once.
        if store.requeue_job(job.job_id, expected_worker=job.worker):
            log.warning("job %s: worker %s stopped; re-queued to resume from its last committed frame",
                        job.job_id, job.worker)
            send_tracking_task(settings, job.job_id, queue)
            requeued.append(job.job_id)
    return requeued


def stop_jobs(settings: Settings, store, reason: str) -> list[int]:
    """Stop every queued and running tracking job: queued ones are cancelled at once, running ones stop within a
    frame keeping their committed frames. `reason` is the message their owners read. Returns the job ids."""
    stopped = []
    for job in store.list_jobs(statuses=[JobState.QUEUED, JobState.RUNNING], limit=None):
        cancel_job(settings, store, job.job_id, reason=reason)
        stopped.append(job.job_id)
    return stopped
