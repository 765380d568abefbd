"""Lays out the Annotate tab and wires its components to AnnotateHandlers.

The named events (api_name) are the app's scripting API, documented in README.md's API section and checked by
tests/test_api_docs.py: their handlers take the inputs as named positional parameters (Gradio publishes those names,
in the inputs list's order), so keep names, order and outputs as they are and add new inputs at the end. The timer
and the page load are not part of the API and take a dict keyed by component (Gradio's set-of-inputs form). Every
handler returns a dict of the outputs it changes. The viewer's value is read once per event (vw.read_value: a bad
one is refused with a message) and sent back as JSON.
"""

from __future__ import annotations

import gradio as gr

from sam2_tracking.settings import Settings
from ui import annotation_files
from ui import viewer as vw
from ui.annotate import BATCH_CHOICES, DIRECTIONS, AnnotateHandlers
from ui.auth import user_error
from ui.job_poll import poll_job_panel
from ui.seed_preview import build_preview_panel
from ui.shared_reads import SharedReads
from ui.viewer_value import ViewerValue, ViewerValueError

JOB_COLUMNS = ["job", "owner", "tracks", "status", "progress", "frames/s", "eta", "message"]
PROGRESS_BAR = ('<div class="job-bar" data-fraction="{fraction:.4f}"><progress max="1" value="{fraction:.4f}">'
                '</progress> <span>{percent:.0f}%</span></div>')


def progress_html(fraction: float | None) -> str:
    if fraction is None:
        return ""
    return PROGRESS_BAR.format(fraction=fraction, percent=100 * fraction)


def build_annotate_tab(demo: gr.Blocks, settings: Settings, store,
                       shared: SharedReads | None = None) -> AnnotateHandlers:
    """Lay out the tab; shared: the process's SharedReads for the job poll (one of its own if not given)."""
    shared = shared or SharedReads(store)
    h = AnnotateHandlers(settings, store)
    job_id = gr.State(None)
    job_shown = gr.State(None)
    deleted_token = gr.State(None)
    with gr.Row():
        dataset_choice = gr.Dropdown(h.dataset_choices(), label="Video", scale=3, elem_id="dataset-choice")
        upload = gr.File(label="Add a video (mp4, mov, avi, mkv, webm) or a zip of frames", scale=2, height=120,
                         file_types=[".mp4", ".mov", ".avi", ".mkv", ".webm", ".zip"], elem_id="video-upload")
    with gr.Row():
        with gr.Column(scale=3):
            viewer = vw.build_viewer()
            build_preview_panel()  # live SAM2 preview of the seed being drawn (ui/seed_preview.py, issue 13)
            status = gr.Markdown("Open a video to start.", elem_id="annotate-status")
        with gr.Column(scale=2):
            with gr.Row():
                save_button = gr.Button("Save (S)", variant="primary", elem_id="save-button")
                discard_button = gr.Button("Discard unsaved", elem_id="discard-button")
            with gr.Row():
                new_label = gr.Textbox(label="Label", value="object", scale=2, elem_id="track-label")
                new_track_button = gr.Button("New track", scale=1, elem_id="new-track-button")
                rename_button = gr.Button("Rename track", scale=1, elem_id="rename-button")
            with gr.Row():
                delete_button = gr.Button("Delete selected tracks", variant="stop", elem_id="delete-button")
                undo_delete_button = gr.Button("Undo delete", elem_id="undo-delete-button")
            with gr.Accordion("Import / export", open=False):
                with gr.Row():
                    export_format = gr.Dropdown(list(annotation_files.FORMAT_LABELS), value="DIVE JSON", label="Export as")
                    export_button = gr.Button("Export saved annotations")
                export_file = gr.File(label="Exported file", interactive=False, elem_id="export-file")
                import_upload = gr.File(label="Import DIVE JSON, DIVE mask zip, COCO or VIAME CSV", height=90,
                                        file_types=[".json", ".zip", ".csv"])
                with gr.Row():
                    import_format = gr.Dropdown(list(annotation_files.IMPORT_LABELS), value="Detect from the file",
                                                label="Import format")
                    import_replace = gr.Checkbox(label="Replace the video's tracks", value=False)
                import_button = gr.Button("Import")
            with gr.Group(visible=h.tracking_visible()) as tracking_group:
                gr.Markdown("### SAM2 mask tracking (ticked tracks go into one job)")
                with gr.Row():
                    models = h.model_choices()
                    # Choices change as models are downloaded; the handler checks the name on the server.
                    model_choice = gr.Dropdown(models, value=models[0] if models else None, label="Model",
                                               allow_custom_value=True, elem_id="track-model")
                    queue_choice = gr.Dropdown(list(settings.queue_names), value=settings.queue_names[0],
                                               label="Queue", elem_id="track-queue")
                with gr.Row():
                    frames_number = gr.Number(value=0, precision=0, minimum=0,
                                              label="Frames to track (0 = to the end)", elem_id="track-frames")
                    direction_choice = gr.Dropdown(DIRECTIONS, value="forward", label="Direction")
                with gr.Accordion("Advanced", open=False, elem_id="track-advanced"):
                    batch_choice = gr.Dropdown(BATCH_CHOICES, value="100", label="Commit every N frames",
                                               elem_id="batch-choice")
                    notify_slider = gr.Slider(1, 50, value=5, step=1, label="Progress preview every N percent")
                track_button = gr.Button("Track / re-track from this frame (T)", variant="primary",
                                         elem_id="track-button")
            with gr.Group():
                job_bar = gr.HTML("", elem_id="job-bar")
                job_text = gr.Markdown(elem_id="job-progress")
                job_preview = gr.Image(label="Latest progress frame", interactive=False, height=240,
                                       elem_id="job-preview")
                with gr.Row():
                    cancel_button = gr.Button("Cancel job", variant="stop", elem_id="cancel-button")
                    undo_button = gr.Button("Undo job", elem_id="undo-button")
            with gr.Accordion("My jobs (the admin sees everyone's)", open=True):
                jobs_table = gr.Dataframe(headers=JOB_COLUMNS, interactive=False, wrap=True, elem_id="my-jobs",
                                          elem_classes=["wrap-cells"])
                with gr.Row():
                    follow_number = gr.Number(label="Job number", precision=0, elem_id="follow-job")
                    follow_button = gr.Button("Follow this job", elem_id="follow-button")
    timer = gr.Timer(1.0)

    def shown(value, message=""):
        return {viewer: value.to_json(), status: h.status_text(value, message)}

    # The named events below are the scripting API: each takes its inputs as named positional parameters, in the
    # order of the inputs list (the order README.md documents; gr.State inputs are the session's and not sent).

    def on_open(dataset_id, viewer_value):
        return shown(h.open_dataset(vw.read_value(viewer_value), dataset_id))

    dataset_choice.input(on_open, [dataset_choice, viewer], [viewer, status], api_name="open_dataset")

    def on_upload(video, viewer_value):
        try:
            dataset_id = h.upload_video(video)
        except gr.Error as exc:
            # A refused file: say why, clear the upload box, and leave the open video as it was.
            return {status: f"**Not added:** {exc.message}", upload: None}
        value = h.open_dataset(vw.read_value(viewer_value), dataset_id)
        return {**shown(value, "Video added."), upload: None,
                dataset_choice: gr.update(choices=h.dataset_choices(), value=dataset_id)}

    # Probing an upload reads the whole file; with Gradio's default of one run per event, one slow upload would
    # make every other user's upload wait behind it.
    upload.upload(on_upload, [upload, viewer], [viewer, status, upload, dataset_choice], api_name="upload_video",
                  concurrency_limit=settings.upload_concurrency, concurrency_id="file_uploads")

    def on_new_track(viewer_value, label):
        return shown(*h.create_track(vw.read_value(viewer_value), label))

    new_track_button.click(on_new_track, [viewer, new_label], [viewer, status], api_name="create_track")

    def on_rename(viewer_value, label):
        return shown(*h.rename_track(vw.read_value(viewer_value), label))

    rename_button.click(on_rename, [viewer, new_label], [viewer, status], api_name="rename_track")

    def on_delete(viewer_value):
        value, token, message = h.delete_tracks(vw.read_value(viewer_value))
        return {**shown(value, message), deleted_token: token}

    delete_button.click(on_delete, [viewer], [viewer, status, deleted_token], api_name="delete_tracks")

    def on_undo_delete(viewer_value, token):
        return {**shown(*h.undo_delete(vw.read_value(viewer_value), token)), deleted_token: None}

    undo_delete_button.click(on_undo_delete, [viewer, deleted_token], [viewer, status, deleted_token],
                             api_name="undo_delete")

    def on_save(viewer_value):
        return shown(*h.save(vw.read_value(viewer_value)))

    save_button.click(on_save, [viewer], [viewer, status], api_name="save")

    def on_discard(viewer_value):
        return shown(*h.discard(vw.read_value(viewer_value)))

    discard_button.click(on_discard, [viewer], [viewer, status], api_name="discard")

    def on_track(viewer_value, model, queue, frames, direction, batch_size, notify_percent, request: gr.Request):
        value, new_job, message = h.start_tracking(
            vw.read_value(viewer_value), model=model, queue=queue, num_frames=frames, direction=direction,
            batch_size=batch_size, notify_percent=notify_percent, owner=h.caller(request).user)
        return {**shown(value, message), job_id: new_job, job_shown: None, job_text: message,
                job_bar: progress_html(0.0), follow_number: new_job}

    track_button.click(on_track, [viewer, model_choice, queue_choice, frames_number, direction_choice, batch_choice,
                                  notify_slider],
                       [viewer, status, job_text, job_bar, follow_number, job_id, job_shown], api_name="track")

    def on_follow(job_number, request: gr.Request):
        if job_number is None:
            raise user_error("Type the number of the job to follow.")
        panel, view = h.job_view(h.caller(request), job_number)  # checks owner-or-admin
        return {job_id: view.job_id, job_shown: None, job_text: panel.text, job_bar: progress_html(panel.fraction)}

    follow_button.click(on_follow, [follow_number], [job_text, job_bar, job_id, job_shown], api_name="follow_job")

    def on_cancel(followed, request: gr.Request):
        return {job_text: h.cancel(h.caller(request), followed)}

    cancel_button.click(on_cancel, [job_id], [job_text], api_name="cancel_job")

    def on_undo_job(viewer_value, followed, request: gr.Request):
        return shown(*h.undo_job(vw.read_value(viewer_value), h.caller(request), followed))

    undo_button.click(on_undo_job, [viewer, job_id], [viewer, status], api_name="undo_job")

    def on_export(viewer_value, file_format, request: gr.Request):
        # Exports are kept per user (and pruned per user): the login name, None without logins.
        return {export_file: annotation_files.export_dataset(settings, store, vw.read_value(viewer_value).dataset_id,
                                                             file_format,
                                                             getattr(request, "username", None))}

    export_button.click(on_export, [viewer, export_format], [export_file], api_name="export")

    def on_import(viewer_value, annotations_file, file_format, replace_tracks):
        value = vw.read_value(viewer_value)
        if value.has_unsaved:
            raise user_error("Save or discard your edits before importing.")
        _revision, message = annotation_files.import_file(store, value.dataset_id, value.base_revision,
                                                          annotations_file, file_format,
                                                          replace_tracks, settings=settings)
        return shown(h.refresh(value), message)

    import_button.click(on_import, [viewer, import_upload, import_format, import_replace], [viewer, status],
                        api_name="import_annotations", concurrency_limit=settings.upload_concurrency,
                        concurrency_id="file_uploads")

    def list_videos() -> list[dict]:
        """The videos to open: id (for open_dataset), name, frame_count, width, height, fps."""
        return [{"id": d.dataset_id, "name": d.name, "frame_count": d.frame_count, "width": d.width,
                 "height": d.height, "fps": d.fps} for d in store.list_datasets()]

    def list_models() -> list[str]:
        """The models a job can use now (downloaded by the admin), for track's `model`."""
        return h.model_choices()

    # API only (no component): what a script needs to open a video and start a job.
    gr.api(list_videos, api_name="list_videos")
    gr.api(list_models, api_name="list_models")

    def poll(inputs, request: gr.Request):
        # The page's value only decides whether the viewer is reloaded: one the server cannot read is left alone
        # (no reload) rather than refused every second; the person's next action says what is wrong with it.
        try:
            value = ViewerValue.from_json(inputs[viewer])
        except ViewerValueError:
            value = ViewerValue()
        update = poll_job_panel(store, shared, h.caller(request), inputs[job_id], inputs[job_shown], value)
        out = {tracking_group: gr.update(visible=update.tracking_visible),
               model_choice: gr.update(choices=update.model_choices), job_shown: update.seen}
        if update.jobs_rows is not None:
            out[jobs_table] = update.jobs_rows
        if update.panel is not None:
            out.update({job_text: update.panel.text, job_bar: progress_html(update.panel.fraction)})
        if update.preview is not None:
            out[job_preview] = update.preview
        if update.viewer is not None:
            out[viewer] = update.viewer.to_json()
        return out

    timer.tick(poll, {job_id, job_shown, viewer},
               [tracking_group, model_choice, jobs_table, job_text, job_bar, job_preview, viewer, job_shown],
               show_progress="hidden", api_name=False)

    def on_load(inputs, request: gr.Request):
        # Open the first video (the sample clip on a fresh install) so a new user sees a frame at once.
        choices = h.dataset_choices()
        value = vw.read_value(inputs[viewer])
        if value.dataset is None and choices:
            value = h.open_dataset(value, choices[0][1])
        models = h.model_choices()
        # A reloaded page reattaches to the person's running job: jobs belong to people, not pages.
        running = h.latest_unfinished_job(h.caller(request))
        return {**shown(value), dataset_choice: gr.update(choices=choices, value=value.dataset_id),
                model_choice: gr.update(choices=models, value=models[0] if models else None),
                tracking_group: gr.update(visible=h.tracking_visible()), job_id: running, follow_number: running}

    demo.load(on_load, {viewer}, [viewer, status, dataset_choice, model_choice, tracking_group, job_id, follow_number],
              api_name=False)
    return h
