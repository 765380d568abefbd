"""The Annotate tab's handlers: open a video, create, rename and delete tracks, save seeds, track, follow the job.

Handlers are methods of AnnotateHandlers (plain Python, testable without a browser) working on the viewer's value, a
ViewerValue (ui/viewer_value.py) that ui/annotate_layout.py reads from what the page sent (viewer.read_value) and
hands back as JSON. Its ids and seeds are well-formed by then, but they still come from the browser: every handler
checks its preconditions (the video exists, the tracks are this video's) on the server.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import gradio as gr

from queues import dispatch, jobs_api
from sam2_tracking.settings import Settings
from sam2_tracking.states import JobState
from sam2_tracking.store import CreateTrack, DeleteTrack, NotFound, RevisionConflict, StoreError, UpdateTrack
from sam2_tracking.types import ALLOWED_BATCH_SIZES, Direction, JobSpec
from ui import viewer as vw
from ui.admin import cancelled_text, tracking_on
from ui.auth import is_admin, user_error
from ui.job_poll import JobPanel, job_panel
from ui.viewer_value import ViewerValue


def _whole_number(value, what: str) -> int:
    """A control's value as an int; the API takes any JSON, so text, NaN and infinity get a message, not int()'s."""
    try:
        number = float(value)
        if number.is_integer():
            return int(number)
    except (TypeError, ValueError, OverflowError):
        pass
    raise ValueError(f"{what} must be a whole number, got {str(value)[:40]!r}")


def _direction(value) -> Direction:
    try:
        return Direction(value)
    except ValueError:
        raise ValueError(f"direction must be one of {', '.join(d.value for d in Direction)}, got {str(value)[:40]!r}") from None


class AnnotateHandlers:
    def __init__(self, settings: Settings, store) -> None:
        self.settings = settings
        self.store = store
        self._deleted: dict[str, tuple] = {}

    # ---- reading ------------------------------------------------------------------------------------------------

    def dataset_choices(self) -> list[tuple[str, int]]:
        return [(f"{d.name} ({d.frame_count} frames, {d.width}x{d.height})", d.dataset_id)
                for d in self.store.list_datasets()]

    def model_choices(self) -> list[str]:
        return [m.name for m in self.store.list_models() if m.usable]

    def tracking_visible(self) -> bool:
        return tracking_on(self.store)

    def status_text(self, value: ViewerValue, message: str = "") -> str:
        if value.dataset is None:
            return message or "Open a video to start."
        # Unsaved seeds are counted by the viewer itself (its info line): they change without a server call.
        track = f"track #{value.active}" if value.active is not None else "no track selected"
        return f"{value.dataset.name} | {track}. {message}".strip()

    def _dataset(self, value: ViewerValue):
        if value.dataset is None:
            raise user_error("Open a video first.")
        try:
            return self.store.get_dataset(value.dataset.id)
        except NotFound:
            raise user_error("This video was removed; open another one.") from None

    def _own_track(self, dataset, track_id: int | None) -> int:
        if track_id is None:
            raise user_error("Select a track first (click it in the track list).")
        try:
            track = self.store.get_track(track_id)
        except NotFound:
            raise user_error(f"Track #{track_id} no longer exists.") from None
        if track.dataset_id != dataset.dataset_id:
            raise user_error(f"Track #{track_id} belongs to another video.")
        return track.track_id

    # ---- opening ------------------------------------------------------------------------------------------------

    def open_dataset(self, value: ViewerValue, dataset_id) -> ViewerValue:
        if dataset_id is None:
            return value
        if value.has_unsaved:
            raise user_error("You have unsaved edits: save or discard them before opening another video.")
        try:
            return vw.dataset_value(self.store, int(dataset_id), None, seek=0)
        except (NotFound, ValueError, TypeError):
            raise user_error(f"No video {dataset_id!r}.") from None

    def upload_video(self, file_path: str | None) -> int:
        from sam2_tracking.engine.video import VideoError
        from sam2_tracking.library import add_uploaded_video

        if not file_path:
            raise user_error("Choose a video file (mp4, mov, avi, mkv, webm) or a zip of JPEG/PNG frames.")
        source = Path(file_path)
        try:
            # Header checks against the limits come first (library.add_uploaded_video): nothing is decoded or stored
            # for a file that breaks one.
            return add_uploaded_video(self.store, self.settings, source).dataset_id
        except VideoError as exc:
            raise user_error(f"{source.name} was not added: {exc}") from None

    def refresh(self, value: ViewerValue, keep_pending: bool = True) -> ViewerValue:
        """Re-read tracks and data (after a save, an import or a job's end); the unsaved seeds stay."""
        if value.dataset is None:
            return value
        return vw.dataset_value(self.store, self._dataset(value).dataset_id, value, keep_pending=keep_pending)

    # ---- tracks -------------------------------------------------------------------------------------------------

    def _save(self, value: ViewerValue, edits: list):
        dataset = self._dataset(value)
        try:
            return self.store.save_edits(dataset.dataset_id, value.base_revision, edits)
        except RevisionConflict as exc:
            raise user_error(f"{exc} Discard your edits to reload the saved annotations.") from None
        except StoreError as exc:
            raise user_error(f"Not saved: {exc}") from None

    def create_track(self, value: ViewerValue, label: str) -> tuple[ViewerValue, str]:
        dataset = self._dataset(value)
        label = (label or "").strip()[:200] or "object"
        saved = self._save(value, [CreateTrack(label=label)])
        track_id = saved.track_ids[-1]
        value = vw.dataset_value(self.store, dataset.dataset_id, value, keep_pending=True)
        value = dataclasses.replace(value, active=track_id)
        return value, f"Created track #{track_id} ({label}). Drag a box or click on the object, then save."

    def rename_track(self, value: ViewerValue, label: str) -> tuple[ViewerValue, str]:
        dataset = self._dataset(value)
        track_id = self._own_track(dataset, value.active)
        label = (label or "").strip()[:200]
        if not label:
            raise user_error("Type the new label first.")
        self._save(value, [UpdateTrack(track_id=track_id, label=label)])
        return self.refresh(value), f"Track #{track_id} is now labelled {label!r}."

    def delete_tracks(self, value: ViewerValue) -> tuple[ViewerValue, str, str]:
        """Delete the selected tracks (or the active one); keep what is needed to restore them."""
        dataset = self._dataset(value)
        track_ids = [self._own_track(dataset, t) for t in value.chosen_tracks()]
        if not track_ids:
            raise user_error("Select a track first (click it in the track list).")
        import uuid

        annotations = self.store.export_annotations(dataset.dataset_id)
        kept = dataclasses.replace(annotations, tracks=tuple(t for t in annotations.tracks if t.track_id in track_ids))
        self._save(value, [DeleteTrack(track_id=t) for t in track_ids])
        value = dataclasses.replace(value, selected=(), active=None)
        token = uuid.uuid4().hex
        # Kept in this process for the session's undo; a restart forgets it (the tracks were deleted on purpose).
        self._deleted[token] = (dataset.dataset_id, kept)
        while len(self._deleted) > 50:
            self._deleted.pop(next(iter(self._deleted)))
        names = ", ".join(f"#{t}" for t in track_ids)
        return self.refresh(value), token, f"Deleted track(s) {names}. Press 'Undo delete' to restore them."

    def undo_delete(self, value: ViewerValue, token: str | None) -> tuple[ViewerValue, str]:
        dataset = self._dataset(value)
        entry = self._deleted.pop(token, None) if token else None
        if entry is None or entry[0] != dataset.dataset_id:
            raise user_error("Nothing to restore: undo works for the last delete on this video, in this session.")
        try:
            mapping = self.store.import_annotations(dataset.dataset_id, entry[1], replace_existing=False,
                                                    base_revision=value.base_revision)
        except StoreError as exc:
            self._deleted[token] = entry
            raise user_error(f"Not restored: {exc}") from None
        ids = ", ".join(f"#{t}" for t in mapping.values())
        return self.refresh(value), f"Restored {len(mapping)} track(s) as {ids} (a restored track gets a new id)."

    # ---- seeds --------------------------------------------------------------------------------------------------

    def save(self, value: ViewerValue) -> tuple[ViewerValue, str]:
        dataset = self._dataset(value)
        try:
            edits = vw.pending_edits(value, dataset.width, dataset.height, dataset.frame_count)
        except ValueError as exc:
            raise user_error(f"Not saved: {exc}") from None
        if not edits:
            return value, "Nothing to save."
        for edit in edits:
            self._own_track(dataset, edit.track_id)
        edits = [self._merge_with_saved(edit) for edit in edits]
        self._save(value, edits)
        return self.refresh(dataclasses.replace(value, pending=()), keep_pending=False), f"Saved {len(edits)} edit(s)."

    def _merge_with_saved(self, edit):
        """A click added to a saved box keeps the box (and earlier clicks): a keyframe grows, it is not replaced."""
        saved = self.store.get_features(edit.track_id, edit.frame_idx, edit.frame_idx + 1)
        if not saved or not saved[0].keyframe:
            return edit
        old = saved[0]
        box = edit.box if edit.box is not None else old.box
        clicks = old.clicks + edit.clicks if edit.box is None else edit.clicks
        return dataclasses.replace(edit, box=box, clicks=clicks)

    def discard(self, value: ViewerValue) -> tuple[ViewerValue, str]:
        if value.dataset is None:
            return value, ""
        return self.refresh(value, keep_pending=False), "Unsaved edits discarded; showing the saved annotations."

    # ---- tracking jobs ------------------------------------------------------------------------------------------

    def start_tracking(self, value: ViewerValue, model: str, queue: str, num_frames, direction: str, batch_size,
                       notify_percent, owner: str | None = None) -> tuple[ViewerValue, int, str]:
        if not self.tracking_visible():
            raise user_error("SAM2 mask tracking is turned off; an admin turns it on in the Admin tab.")
        dataset = self._dataset(value)
        track_ids = value.chosen_tracks()
        if not track_ids:
            raise user_error("Select a track first: tick the tracks to track together, or click one.")
        track_ids = [self._own_track(dataset, t) for t in track_ids]
        if value.has_unsaved:
            raise user_error("Save your edits first: tracking starts from saved annotations only.")
        if not model:
            raise user_error("Choose a model (an admin downloads models in the Admin tab).")
        try:
            spec = JobSpec(
                dataset_id=dataset.dataset_id, track_ids=tuple(track_ids), start_frame_idx=value.frame_idx,
                model_name=model, queue=queue,
                num_frames=_whole_number(num_frames, "number of frames") if num_frames else None,
                direction=_direction(direction), batch_size=_whole_number(batch_size, "batch size"),
                notify_percent=_whole_number(notify_percent, "notification percent"),
            )
            enqueued = dispatch.enqueue_tracking_job(self.settings, self.store, spec, owner=owner)
        except (ValueError, TypeError, NotFound) as exc:
            raise user_error(str(exc)) from None
        names = ", ".join(f"#{t}" for t in track_ids)
        message = f"Job {enqueued.job_id} queued on {queue} for track(s) {names}."
        if enqueued.warning:
            gr.Warning(enqueued.warning)
            message += f" Warning: {enqueued.warning}"
        return value, enqueued.job_id, message

    def caller(self, request: gr.Request | None) -> jobs_api.Caller:
        return jobs_api.Caller.from_login(getattr(request, "username", None), is_admin(self.settings, request))

    def latest_unfinished_job(self, caller: jobs_api.Caller) -> int | None:
        """The job a reloaded page reattaches to: the caller's own newest queued or running one."""
        jobs = self.store.list_jobs(statuses=[JobState.QUEUED, JobState.RUNNING], limit=1, owner=caller.user)
        return jobs[0].job_id if jobs else None

    def job_view(self, caller: jobs_api.Caller, job_id) -> tuple[JobPanel, jobs_api.JobView]:
        """The job panel for a job the caller may follow (its owner or the admin: checked), and the job's view."""
        try:
            view = jobs_api.follow_job(self.store, caller, job_id)
        except jobs_api.JobAccessError as exc:
            raise user_error(str(exc)) from None
        return job_panel(self.store.get_job(view.job_id), view), view

    def cancel(self, caller: jobs_api.Caller, job_id) -> str:
        if job_id is None:
            raise user_error("No job to cancel: pick one in My jobs.")
        try:
            view = jobs_api.cancel_job_by_id(self.settings, self.store, caller, job_id)
        except jobs_api.JobAccessError as exc:
            raise user_error(str(exc)) from None
        return cancelled_text(view)

    def undo_job(self, value: ViewerValue, caller: jobs_api.Caller, job_id) -> tuple[ViewerValue, str]:
        if job_id is None:
            raise user_error("No job to undo: pick one in My jobs.")
        try:
            view, restored = jobs_api.undo_job_by_id(self.store, caller, job_id)
        except (jobs_api.JobAccessError, StoreError) as exc:
            raise user_error(str(exc)) from None
        return self.refresh(value), f"Job {view.job_id} undone: {restored} frame(s) restored."


BATCH_CHOICES = [str(size) for size in ALLOWED_BATCH_SIZES]
DIRECTIONS = [d.value for d in Direction]
