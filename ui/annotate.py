"""The Annotate tab's handlers: open a video, scrub, create and select tracks, seed, save, track, follow the job.

Handlers are methods of AnnotateHandlers (plain Python, testable without a browser); ui/annotate_layout.py wires
them to components. Every handler that changes data checks its preconditions on the server.
"""

from __future__ import annotations

import io
from pathlib import Path

import gradio as gr
import numpy as np

from queues import dispatch
from sam2_tracking.settings import Settings
from sam2_tracking.store import CreateTrack, NotFound, RevisionConflict, StoreError
from sam2_tracking.types import ALLOWED_BATCH_SIZES, Direction, JobSpec
from ui import annotate_state as st
from ui.admin import admin_state
from ui.frames import FrameCache, render_frame
from ui.views import job_summary


class AnnotateHandlers:
    def __init__(self, settings: Settings, store) -> None:
        self.settings = settings
        self.store = store
        self.frames = FrameCache()

    # ---- reading ------------------------------------------------------------------------------------------------

    def dataset_choices(self) -> list[tuple[str, int]]:
        return [(f"{d.name} ({d.frame_count} frames, {d.width}x{d.height})", d.dataset_id)
                for d in self.store.list_datasets()]

    def track_choices(self, dataset_id: int | None) -> list[tuple[str, int]]:
        if dataset_id is None:
            return []
        return [(f"#{t.track_id} {t.label}" + (f" (frames {t.begin}-{t.end})" if t.begin is not None else ""),
                 t.track_id) for t in self.store.list_tracks(dataset_id)]

    def model_choices(self) -> list[str]:
        return [m.name for m in self.store.list_models() if m.status == "ready"]

    def tracking_visible(self) -> bool:
        state = admin_state(self.settings, self.store)
        return state["sam2_enabled"] and state["tracking_enabled"]

    def render(self, state: dict) -> np.ndarray | None:
        if state["dataset_id"] is None:
            return None
        dataset = self.store.get_dataset(state["dataset_id"])
        frame = self.frames.read(dataset.path, state["frame_idx"])
        features = self.store.get_frame_features(dataset.dataset_id, state["frame_idx"])
        return render_frame(frame, features, st.pending_on_frame(state, state["frame_idx"]),
                            state["box_anchor"])

    def status_text(self, state: dict, message: str = "") -> str:
        if state["dataset_id"] is None:
            return message or "Open a video to start."
        unsaved = "unsaved edits - save before tracking" if st.has_unsaved(state) else "all edits saved"
        track = f"track #{state['track_id']}" if state["track_id"] is not None else "no track selected"
        return f"Frame {state['frame_idx']} | {track} | {unsaved}. {message}".strip()

    # ---- opening and navigating ---------------------------------------------------------------------------------

    def open_dataset(self, state: dict, dataset_id) -> dict:
        if dataset_id is None:
            return state
        if st.has_unsaved(state):
            raise gr.Error("You have unsaved edits: save or discard them before opening another video.")
        dataset = self.store.get_dataset(int(dataset_id))
        state = st.new_state()
        state.update(dataset_id=dataset.dataset_id, revision=dataset.revision)
        tracks = self.store.list_tracks(dataset.dataset_id)
        state["track_id"] = tracks[0].track_id if tracks else None
        return state

    def upload_video(self, file_path: str | None) -> int:
        from sam2_tracking.library import add_uploaded_video
        from sam2_tracking.video import VideoError

        if not file_path:
            raise gr.Error("Choose a video file (mp4, mov, avi, mkv, webm) or a zip of JPEG/PNG frames.")
        source = Path(file_path)
        try:
            # Header checks against the limits come first (library.add_uploaded_video): nothing is decoded or stored
            # for a file that breaks one.
            return add_uploaded_video(self.store, self.settings, source).dataset_id
        except VideoError as exc:
            raise gr.Error(f"{source.name}: {exc}") from None

    def go_to_frame(self, state: dict, frame_idx) -> dict:
        if state["dataset_id"] is None:
            return state
        dataset = self.store.get_dataset(state["dataset_id"])
        state["frame_idx"] = int(min(max(int(frame_idx or 0), 0), dataset.frame_count - 1))
        state["box_anchor"] = None
        return state

    # ---- tracks and seeds ---------------------------------------------------------------------------------------

    def create_track(self, state: dict, label: str) -> tuple[dict, str]:
        if state["dataset_id"] is None:
            raise gr.Error("Open a video first.")
        label = (label or "").strip() or "object"
        try:
            saved = self.store.save_edits(state["dataset_id"], state["revision"], [CreateTrack(label=label)])
        except RevisionConflict as exc:
            raise gr.Error(str(exc)) from None
        state["revision"] = int(saved)
        state["track_id"] = saved.track_ids[-1]
        return state, f"Created track #{state['track_id']} ({label}). Draw a box, paint a mask or click on it."

    def select_track(self, state: dict, track_id) -> dict:
        state["track_id"] = None if track_id is None else int(track_id)
        state["box_anchor"] = None
        return state

    def set_tool(self, state: dict, tool_label: str) -> dict:
        state["tool"] = st.TOOLS.get(tool_label, "box")
        state["box_anchor"] = None
        return state

    def click(self, state: dict, x: float, y: float) -> tuple[dict, str]:
        if state["dataset_id"] is None:
            raise gr.Error("Open a video first.")
        dataset = self.store.get_dataset(state["dataset_id"])
        try:
            message = st.apply_click(state, x, y, dataset.width, dataset.height)
        except ValueError as exc:
            raise gr.Error(str(exc)) from None
        return state, message

    def use_painted_mask(self, state: dict, editor_value) -> tuple[dict, str]:
        if state["dataset_id"] is None:
            raise gr.Error("Open a video first.")
        dataset = self.store.get_dataset(state["dataset_id"])
        try:
            message = st.set_mask(state, st.mask_from_editor(editor_value, dataset.height, dataset.width))
        except ValueError as exc:
            raise gr.Error(str(exc)) from None
        return state, message

    def editor_background(self, state: dict):
        if state["dataset_id"] is None:
            raise gr.Error("Open a video first.")
        dataset = self.store.get_dataset(state["dataset_id"])
        frame = self.frames.read(dataset.path, state["frame_idx"])
        return {"background": frame, "layers": [], "composite": frame}

    def clear_frame(self, state: dict) -> tuple[dict, str]:
        st.clear_frame(state)
        return state, "Unsaved seed on this frame removed."

    def save(self, state: dict) -> tuple[dict, str]:
        if state["dataset_id"] is None:
            raise gr.Error("Open a video first.")
        edits = st.pending_edits(state)
        if not edits:
            return state, "Nothing to save."
        try:
            revision = self.store.save_edits(state["dataset_id"], state["revision"], edits)
        except RevisionConflict as exc:
            raise gr.Error(str(exc)) from None
        except StoreError as exc:
            raise gr.Error(f"Not saved: {exc}") from None
        state["revision"] = int(revision)
        state["pending"] = {}
        return state, f"Saved {len(edits)} edit(s)."

    def discard(self, state: dict) -> tuple[dict, str]:
        state["pending"], state["box_anchor"] = {}, None
        if state["dataset_id"] is not None:
            state["revision"] = self.store.get_revision(state["dataset_id"])
        return state, "Unsaved edits discarded; showing the saved annotations."

    # ---- tracking jobs ------------------------------------------------------------------------------------------

    def start_tracking(self, state: dict, model: str, queue: str, num_frames, direction: str, batch_size,
                       notify_percent) -> tuple[dict, str]:
        if not self.tracking_visible():
            raise gr.Error("SAM2 mask tracking is turned off; an admin turns it on in the Admin tab.")
        if state["dataset_id"] is None:
            raise gr.Error("Open a video first.")
        if state["track_id"] is None:
            raise gr.Error("Select a track first: tracking needs a selected track.")
        if st.has_unsaved(state):
            raise gr.Error("Save your edits first: tracking starts from saved annotations only.")
        if not model:
            raise gr.Error("Choose a model (an admin downloads models in the Admin tab).")
        try:
            spec = JobSpec(
                dataset_id=state["dataset_id"], track_ids=(state["track_id"],), start_frame_idx=state["frame_idx"],
                model_name=model, queue=queue, num_frames=int(num_frames) if num_frames else None,
                direction=Direction(direction), batch_size=int(batch_size), notify_percent=int(notify_percent),
            )
            enqueued = dispatch.enqueue_tracking_job(self.settings, self.store, spec)
        except (ValueError, NotFound) as exc:
            raise gr.Error(str(exc)) from None
        state["job_id"] = enqueued.job_id
        message = f"Job {enqueued.job_id} queued on {queue}."
        if enqueued.warning:
            gr.Warning(enqueued.warning)
            message += f" Warning: {enqueued.warning}"
        return state, message

    def job_progress(self, state: dict) -> tuple[str, np.ndarray | None]:
        if state.get("job_id") is None:
            return "", None
        job = self.store.get_job(state["job_id"])
        preview = None
        if job.notification is not None and job.notification.preview_jpeg:
            from PIL import Image

            preview = np.asarray(Image.open(io.BytesIO(job.notification.preview_jpeg)).convert("RGB"))
        text = job_summary(job)
        if job.status == "queued":
            warning = dispatch.no_worker_warning(self.store, job.queue)
            text += f" {warning}." if warning else ""
        return text, preview

    def cancel(self, state: dict) -> str:
        if state.get("job_id") is None:
            raise gr.Error("No job to cancel.")
        status = dispatch.cancel_job(self.settings, self.store, state["job_id"])
        return f"Job {state['job_id']}: {status}" + (" (stops within a frame)" if status == "running" else ".")

    def undo_job(self, state: dict) -> tuple[dict, str]:
        if state.get("job_id") is None:
            raise gr.Error("No job to undo.")
        job = self.store.get_job(state["job_id"])
        if not job.finished:
            raise gr.Error("Cancel the job or wait for it to end before undoing it.")
        try:
            restored = self.store.undo_job(job.job_id)
        except StoreError as exc:
            raise gr.Error(str(exc)) from None
        state["revision"] = self.store.get_revision(state["dataset_id"])
        return state, f"Job {job.job_id} undone: {restored} frame(s) restored."


BATCH_CHOICES = [str(size) for size in ALLOWED_BATCH_SIZES]
DIRECTIONS = [d.value for d in Direction]
