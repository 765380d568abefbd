"""The Annotate tab's poll: what one page's timer tick shows of its followed job, its My jobs table and the tracking
controls, with at most one store read of its own per tick.

    update = poll_job_panel(store, shared, caller, job_id, seen, viewer)

Everything everyone sees alike (the SAM2 toggles, the models, the live workers, the videos, the admin's list of
everyone's jobs) comes from SharedReads (ui/shared_reads.py: read once a second for the whole process). The page's
own read is one of:
- the caller's newest jobs (the My jobs table; the followed job is normally among them): store.list_jobs(owner=...);
  the admin's list is everyone's, so it comes from SharedReads and costs the page nothing;
- the video's tracks, on the tick after the followed job committed frames of the video on screen (or ended): the
  viewer reloads masks and timeline. That tick leaves the table and the panel as they are;
- the followed job by id, on the tick after it was not among the newest (an old job followed by its number); that
  tick leaves the table as it is.
`seen` (a JobSeen, kept per page in a gr.State) carries what the page was last sent and which read the next tick
does. Nothing here writes.
"""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass

import numpy as np

from queues import jobs_api
from sam2_tracking.states import JobState
from sam2_tracking.store import NotFound
from ui.admin import tracking_on
from ui.viewer import value_for
from ui.viewer_value import JobOverlay, ViewerValue
from ui.views import job_summary, my_jobs_rows

JOBS_SHOWN = 30


@dataclass(frozen=True)
class JobPanel:
    text: str
    fraction: float | None  # the bar: frames tracked / frames to track; None hides it


@dataclass(frozen=True)
class JobSeen:
    """What a page was last sent about the job it follows, and what its next tick reads."""

    job_id: int
    dataset_id: int | None = None
    done: int | None = None  # committed frames when the viewer last heard of them
    preview_frame_idx: int | None = None
    finished: bool = False
    overlay: JobOverlay | None = None  # the job's span for the viewer's timeline (None once finished)
    reload_viewer: bool = False  # next tick: reload the viewer's tracks and masks
    read_alone: bool = False  # next tick: read the job by id (it is not among the newest)


@dataclass(frozen=True)
class PollUpdate:
    """A tick's changes; None leaves that part of the page as it is."""

    tracking_visible: bool
    model_choices: list[str]
    jobs_rows: list[list] | None = None
    panel: JobPanel | None = None
    preview: np.ndarray | None = None  # only when a newer progress frame came
    viewer: ViewerValue | None = None  # a progress reload (poll=True: the page keeps the person's frame and seeds)
    seen: JobSeen | None = None


def usable_models(store) -> list[str]:
    return [m.name for m in store.list_models() if m.usable]


def poll_job_panel(store, shared, caller: jobs_api.Caller, job_id: int | None, seen: JobSeen | None,
                   viewer: ViewerValue) -> PollUpdate:
    """One tick of one page: store for the page's own read (at most one), shared (a SharedReads) for the rest."""
    controls = {"tracking_visible": tracking_on(shared), "model_choices": usable_models(shared)}
    if job_id is None:
        seen = None
    elif seen is None or seen.job_id != job_id:
        seen = JobSeen(job_id)
    if seen is not None and seen.reload_viewer:
        seen = dataclasses.replace(seen, reload_viewer=False)
        if viewer.dataset_id is not None and viewer.dataset_id == seen.dataset_id:
            reloaded = _reloaded(store, shared, viewer, seen.overlay)
            if reloaded is not None:
                return PollUpdate(**controls, viewer=reloaded, seen=seen)
    if seen is not None and seen.read_alone:
        job, refusal = _job_alone(store, caller, seen.job_id)
        if job is None:
            return PollUpdate(**controls, panel=JobPanel(refusal, None), seen=dataclasses.replace(
                seen, read_alone=False, finished=True))
        return PollUpdate(**controls, **_follow(shared, job, seen, viewer))
    jobs = (shared.list_jobs(limit=JOBS_SHOWN) if caller.is_admin
            else store.list_jobs(owner=caller.user, limit=JOBS_SHOWN))
    rows = my_jobs_rows([jobs_api.job_view(shared, job) for job in jobs])
    if seen is None:
        return PollUpdate(**controls, jobs_rows=rows)
    job = next((j for j in jobs if j.job_id == seen.job_id), None)
    if job is None:
        # An old job followed by number: a finished one shows what it showed; otherwise read it next tick.
        return PollUpdate(**controls, jobs_rows=rows, seen=seen if seen.finished else dataclasses.replace(
            seen, read_alone=True))
    return PollUpdate(**controls, jobs_rows=rows, **_follow(shared, job, seen, viewer))


def job_panel(job, view: jobs_api.JobView) -> JobPanel:
    """The panel's text and bar for a job and its view (jobs_api.job_view)."""
    text = job_summary(job)
    if view.message and view.message not in text:
        text += f" {view.message}."
    # Frames tracked but not committed yet (a batch commits at once): the bar moves between commits.
    done = view.frames_tracked
    if done > view.frames_done:
        text += f" Tracked {done}/{view.frames_total}: saved at the end of each batch."
    return JobPanel(text, min(1.0, done / view.frames_total) if view.frames_total else 0.0)


def job_overlay(job, frame_count: int | None) -> JobOverlay:
    """The job's span and position for the viewer's timeline."""
    from sam2_tracking.jobs.plan import job_frames

    frames = job_frames(job.spec, frame_count) if frame_count else []
    return JobOverlay(job.job_id, job.dataset_id, JobState(job.status), job.spec.start_frame_idx, job.current_frame_idx,
                      (min(frames), max(frames)) if frames else ())


def decode_preview(jpeg: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))


def _follow(shared, job, seen: JobSeen, viewer: ViewerValue) -> dict:
    """The panel's parts for the followed job, and what the next tick does."""
    view = jobs_api.job_view(shared, job)  # a queued job's 'no worker' check reads the shared workers
    try:
        frame_count = shared.get_dataset(job.dataset_id).frame_count
    except NotFound:
        frame_count = None
    preview = None
    if view.preview_jpeg and view.preview_frame_idx != seen.preview_frame_idx:
        preview = decode_preview(view.preview_jpeg)  # sent once per notification, not every tick
    on_screen = viewer.dataset_id == job.dataset_id
    # New frames committed (or the job ended) on the video on screen: the next tick reloads the viewer's masks and
    # timeline, keeping the person's frame, tracks and unsaved seeds.
    reload = on_screen and not seen.finished and (view.frames_done != seen.done or view.finished)
    return {"panel": job_panel(job, view), "preview": preview, "seen": JobSeen(
        job.job_id, job.dataset_id, view.frames_done, view.preview_frame_idx, view.finished,
        None if view.finished else job_overlay(job, frame_count), reload_viewer=reload)}


def _job_alone(store, caller: jobs_api.Caller, job_id: int):
    """(job, None), or (None, why not): the same check as jobs_api (owner or admin), on one read."""
    try:
        job = store.get_job(job_id)
    except NotFound:
        return None, f"Job {job_id} no longer exists (its video may have been removed)."
    if not caller.may_access(job):
        return None, f"Job {job_id} was started by someone else: only its owner or the admin can follow it."
    return job, None


def _reloaded(store, shared, viewer: ViewerValue, overlay: JobOverlay | None) -> ViewerValue | None:
    try:
        dataset = shared.get_dataset(viewer.dataset_id)
        tracks = store.list_tracks(dataset.dataset_id)  # the tick's one read
    except NotFound:
        return None
    value = value_for(dataset, tracks, viewer, keep_pending=True)
    # The shared dataset row may be up to a second old: the page's base revision never goes back (a save the person
    # made a moment ago would otherwise look like someone else's and be refused).
    return dataclasses.replace(value, base_revision=max(viewer.base_revision, dataset.revision), job=overlay,
                               poll=True)
