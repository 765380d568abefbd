"""Jobs that belong to people, not pages: list, follow, cancel and undo a job by id, checked here on the server.

The UI calls these with a Caller it builds from the request (login name and admin flag). Every function checks
that the caller owns the job or is the admin, whatever the page sent; a job from before owners were recorded
(owner NULL) answers to the admin only. Messages are for the person reading them.

    caller = Caller.from_login(request.username, is_admin(settings, request), anonymous_id=browser_id)
    list_my_jobs(store, caller)            -> [JobView]   (the admin: everyone's jobs)
    follow_job(store, caller, job_id)      -> JobView     (status, progress, fps, ETA, latest preview)
    cancel_job_by_id(settings, store, caller, job_id) -> JobView
    undo_job_by_id(store, caller, job_id)  -> (JobView, frames restored)
    list_downloads(store, caller)          -> [DownloadView]  (model downloads/removals in flight; admin only)
    stop_all_jobs(settings, store, caller, reason) -> [job ids]   (admin only; SAM2 turned off)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from queues import dispatch
from sam2_tracking.settings import Settings
from sam2_tracking.states import DOWNLOADING_MODEL_STATES, FINISHED_JOB_STATES, JobState, ModelState

ANONYMOUS = "anonymous"
# A browser-made anonymous id (e.g. a random token kept in localStorage): short and plain, as it is stored and shown.
_ANONYMOUS_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")


class JobAccessError(PermissionError):
    """The caller may not see or act on this job; the message says why."""


@dataclass(frozen=True)
class Caller:
    """Who is asking. user: the login name, or 'anonymous'/'anon:<id>' when logins are off."""

    user: str
    is_admin: bool

    @classmethod
    def from_login(cls, username: str | None, is_admin: bool, anonymous_id: str | None = None) -> Caller:
        """The caller for a request: its login name when logged in; otherwise a stable anonymous id (the browser's
        own token if it sent a well-formed one, else the one shared 'anonymous' user of a server without logins)."""
        if username:
            return cls(str(username)[:200], bool(is_admin))
        if anonymous_id and _ANONYMOUS_ID.fullmatch(anonymous_id):
            return cls(f"anon:{anonymous_id}", bool(is_admin))
        return cls(ANONYMOUS, bool(is_admin))

    def may_access(self, job) -> bool:
        """The one rule for following, cancelling and undoing a job: its owner, or the admin."""
        return self.is_admin or (job.owner is not None and job.owner == self.user)


@dataclass(frozen=True)
class JobView:
    """What a person sees of one job (also what the jobs panel polls)."""

    job_id: int
    owner: str | None
    dataset_id: int
    track_ids: tuple[int, ...]
    queue: str
    model_name: str
    status: str  # queued, running, done, failed, cancelled
    frames_done: int  # committed to the store
    frames_total: int
    percent: float
    fps: float | None
    eta_s: float | None
    current_frame_idx: int | None
    preview_jpeg: bytes | None  # the latest notification's overlay preview
    preview_frame_idx: int | None
    message: str | None  # why it failed or was stopped, or that no worker serves its queue
    cancel_requested: bool
    undone: bool
    created_at: float
    frames_tracked: int = 0  # tracked so far, committed or not (frames_tracked(job))

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_JOB_STATES


@dataclass(frozen=True)
class DownloadView:
    name: str
    status: str  # queued, downloading, updating, removing, failed (see store MODEL_STATUSES)
    progress_bytes: int | None
    total_bytes: int | None
    error: str | None


def frames_tracked(job) -> int:
    """Frames a job has tracked so far, committed or not: a batch commits at once, so between commits the committed
    count stands still while the job moves on. A notification is written as soon as its frame is tracked and counts
    the frames tracked by then; a one-way job's current frame says how far it got."""
    from sam2_tracking.types import Direction

    done = job.frames_done
    if job.status != JobState.RUNNING:
        return done
    if job.notification is not None:
        done = max(done, job.notification.frames_done)
    if job.current_frame_idx is not None and job.spec.direction != Direction.BOTH:
        done = max(done, abs(job.current_frame_idx - job.spec.start_frame_idx) + 1)
    return min(done, job.frames_total)


def job_view(store, job) -> JobView:
    note = job.notification
    message = job.error or job.message
    if job.status == JobState.QUEUED and message is None:
        message = dispatch.no_worker_warning(store, job.queue)
    return JobView(
        job_id=job.job_id, owner=job.owner, dataset_id=job.dataset_id, track_ids=tuple(job.spec.track_ids),
        queue=job.queue, model_name=job.spec.model_name, status=job.status, frames_done=job.frames_done,
        frames_total=job.frames_total, percent=round(job.percent, 1), fps=job.fps, eta_s=job.eta_s,
        current_frame_idx=job.current_frame_idx, preview_jpeg=None if note is None else note.preview_jpeg,
        preview_frame_idx=None if note is None else note.frame_idx, message=message,
        cancel_requested=job.cancel_requested, undone=job.undone_at is not None, created_at=job.created_at,
        frames_tracked=frames_tracked(job),
    )


def _owned_job(store, caller: Caller, job_id):
    from sam2_tracking.store import NotFound

    try:
        job_id = int(job_id)
    except (TypeError, ValueError):
        raise JobAccessError(f"{job_id!r} is not a job number") from None
    try:
        job = store.get_job(job_id)
    except NotFound:
        raise JobAccessError(f"job {job_id} does not exist") from None
    if caller.may_access(job):
        return job
    # Same words whether the job exists or not would hide nothing useful here: ids are sequential.
    raise JobAccessError(f"job {job_id} was started by someone else: only its owner or the admin can do this")


def list_my_jobs(store, caller: Caller, statuses=None, limit: int = 50) -> list[JobView]:
    """The caller's jobs, newest first; the admin's list holds everyone's."""
    limit = max(1, min(int(limit), 500))
    jobs = store.list_jobs(statuses=statuses, limit=limit, owner=None if caller.is_admin else caller.user)
    return [job_view(store, job) for job in jobs]


def follow_job(store, caller: Caller, job_id) -> JobView:
    return job_view(store, _owned_job(store, caller, job_id))


def cancel_job_by_id(settings: Settings, store, caller: Caller, job_id) -> JobView:
    """Cancel a queued job at once or stop a running one within a frame (its committed frames stay). The admin may
    cancel anyone's, including a job whose owner is gone."""
    job = _owned_job(store, caller, job_id)
    reason = None if caller.user == job.owner else f"cancelled by {caller.user}"
    dispatch.cancel_job(settings, store, job.job_id, reason=reason)
    return follow_job(store, caller, job.job_id)


def undo_job_by_id(store, caller: Caller, job_id) -> tuple[JobView, int]:
    """Put back what the job replaced; raises JobAccessError, or the store's EditError for a running/undone job."""
    job = _owned_job(store, caller, job_id)
    if not job.finished:
        from sam2_tracking.store import EditError

        raise EditError(f"job {job.job_id} is {job.status}: cancel it or wait for it to end, then undo")
    restored = store.undo_job(job.job_id)
    return follow_job(store, caller, job.job_id), restored


def list_downloads(store, caller: Caller) -> list[DownloadView]:
    """Model downloads and removals that are queued, running or failed: the admin's download jobs."""
    if not caller.is_admin:
        raise JobAccessError("only the admin sees model downloads")
    return [DownloadView(m.name, m.status, m.progress_bytes, m.total_bytes, m.error) for m in store.list_models()
            if m.status in (*DOWNLOADING_MODEL_STATES, ModelState.REMOVING, ModelState.FAILED)]


def stop_all_jobs(settings: Settings, store, caller: Caller, reason: str) -> list[int]:
    """Stop every queued and running tracking job (e.g. the admin turned SAM2 off): queued ones are cancelled at
    once, running ones stop within a frame keeping their committed frames. `reason` is what their owners read."""
    if not caller.is_admin:
        raise JobAccessError("only the admin can stop everyone's jobs")
    return dispatch.stop_jobs(settings, store, reason)
