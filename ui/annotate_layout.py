"""Lays out the Annotate tab and wires its components to AnnotateHandlers."""

from __future__ import annotations

import gradio as gr

from sam2_tracking.settings import Settings
from ui import annotate_state as st
from ui import exchange
from ui.annotate import BATCH_CHOICES, DIRECTIONS, AnnotateHandlers


def build_annotate_tab(demo: gr.Blocks, settings: Settings, store) -> AnnotateHandlers:
    h = AnnotateHandlers(settings, store)
    state = gr.State(st.new_state())
    with gr.Row():
        dataset_choice = gr.Dropdown(h.dataset_choices(), label="Video", scale=3)
        upload = gr.File(label="Add a video (mp4, mov, avi, mkv, webm) or a zip of frames", scale=2, height=120,
                         file_types=[".mp4", ".mov", ".avi", ".mkv", ".webm", ".zip"])
    with gr.Row():
        with gr.Column(scale=3):
            frame_image = gr.Image(label="Frame (click to draw)", interactive=False, type="numpy",
                                   elem_id="frame-image")
            frame_slider = gr.Slider(0, 1, value=0, step=1, label="Frame", elem_id="frame-slider")
            status = gr.Markdown("Open a video to start.", elem_id="annotate-status")
        with gr.Column(scale=2):
            track_choice = gr.Dropdown([], label="Track", elem_id="track-choice")
            with gr.Row():
                new_label = gr.Textbox(label="New track label", value="object", scale=2)
                new_track_button = gr.Button("New track", scale=1)
            tool = gr.Radio(list(st.TOOLS), value=next(iter(st.TOOLS)), label="Seed tool")
            with gr.Row():
                save_button = gr.Button("Save", variant="primary", elem_id="save-button")
                discard_button = gr.Button("Discard unsaved")
                clear_button = gr.Button("Clear seed on frame")
            with gr.Accordion("Paint a mask instead", open=False):
                editor = gr.ImageEditor(label="Paint over the object", type="numpy",
                                        brush=gr.Brush(colors=["#ff3030"], color_mode="fixed"))
                with gr.Row():
                    load_editor_button = gr.Button("Load current frame")
                    use_mask_button = gr.Button("Use painted mask")
            with gr.Accordion("Import / export", open=False):
                with gr.Row():
                    export_format = gr.Dropdown(list(exchange.FORMAT_LABELS), value="DIVE JSON", label="Export as")
                    export_button = gr.Button("Export saved annotations")
                export_file = gr.File(label="Exported file", interactive=False, elem_id="export-file")
                import_upload = gr.File(label="Import DIVE JSON, DIVE mask zip or COCO", height=90,
                                        file_types=[".json", ".zip"])
                with gr.Row():
                    import_format = gr.Dropdown(list(exchange.IMPORT_LABELS), value="Detect from the file",
                                                label="Import format")
                    import_replace = gr.Checkbox(label="Replace the video's tracks", value=False)
                import_button = gr.Button("Import")
            with gr.Group(visible=h.tracking_visible()) as tracking_group:
                gr.Markdown("### SAM2 mask tracking")
                with gr.Row():
                    # Choices change as models are downloaded; the handler checks the name on the server.
                    model_choice = gr.Dropdown(h.model_choices(), label="Model", allow_custom_value=True,
                                               elem_id="track-model")
                    queue_choice = gr.Dropdown(list(settings.queue_names), value=settings.queue_names[0],
                                               label="Queue")
                with gr.Row():
                    frames_number = gr.Number(value=0, precision=0, minimum=0,
                                              label="Frames to track (0 = to the end)")
                    direction_choice = gr.Dropdown(DIRECTIONS, value="forward", label="Direction")
                with gr.Accordion("Advanced", open=False):
                    batch_choice = gr.Dropdown(BATCH_CHOICES, value="100", label="Batch size (frames per batch)")
                    notify_slider = gr.Slider(1, 50, value=5, step=1, label="Notification percent")
                track_button = gr.Button("Track with SAM2", variant="primary", elem_id="track-button")
                job_text = gr.Markdown(elem_id="job-progress")
                job_preview = gr.Image(label="Latest progress frame", interactive=False, height=240)
                with gr.Row():
                    cancel_button = gr.Button("Cancel job", variant="stop")
                    undo_button = gr.Button("Undo job")
    timer = gr.Timer(1.0)

    def view(state, message=""):
        image = h.render(state)
        tracks = h.track_choices(state["dataset_id"])
        maximum = 1
        if state["dataset_id"] is not None:
            maximum = max(1, store.get_dataset(state["dataset_id"]).frame_count - 1)
        return (state, image, gr.update(maximum=maximum, value=state["frame_idx"]),
                gr.update(choices=tracks, value=state["track_id"]), h.status_text(state, message))

    view_outputs = [state, frame_image, frame_slider, track_choice, status]

    dataset_choice.input(lambda s, d: view(h.open_dataset(s, d)), [state, dataset_choice], view_outputs,
                         api_name="open_dataset")

    def on_upload(s, file):
        dataset_id = h.upload_video(file)
        return (*view(h.open_dataset(s, dataset_id), "Video added."),
                gr.update(choices=h.dataset_choices(), value=dataset_id))

    # Probing an upload reads the whole file; with Gradio's default of one run per event, one slow upload would
    # make every other user's upload wait behind it.
    upload.upload(on_upload, [state, upload], [*view_outputs, dataset_choice], api_name="upload_video",
                  concurrency_limit=settings.upload_concurrency, concurrency_id="file_uploads")
    frame_slider.release(lambda s, f: view(h.go_to_frame(s, f)), [state, frame_slider], view_outputs,
                         api_name="go_to_frame")
    track_choice.input(lambda s, t: view(h.select_track(s, t)), [state, track_choice], view_outputs,
                       api_name="select_track")
    new_track_button.click(lambda s, label: view(*h.create_track(s, label)), [state, new_label], view_outputs,
                           api_name="create_track")
    tool.input(lambda s, t: view(h.set_tool(s, t)), [state, tool], view_outputs, api_name=False)

    def on_click(s, evt: gr.SelectData):
        x, y = evt.index[0], evt.index[1]
        return view(*h.click(s, x, y))

    frame_image.select(on_click, [state], view_outputs, api_name=False)
    save_button.click(lambda s: view(*h.save(s)), [state], view_outputs, api_name="save")
    discard_button.click(lambda s: view(*h.discard(s)), [state], view_outputs, api_name="discard")
    clear_button.click(lambda s: view(*h.clear_frame(s)), [state], view_outputs, api_name=False)
    load_editor_button.click(h.editor_background, [state], [editor], api_name=False)
    use_mask_button.click(lambda s, v: view(*h.use_painted_mask(s, v)), [state, editor], view_outputs,
                          api_name=False)
    track_button.click(lambda s, *args: view(*h.start_tracking(s, *args)),
                       [state, model_choice, queue_choice, frames_number, direction_choice, batch_choice,
                        notify_slider], view_outputs, api_name="track")
    cancel_button.click(lambda s: h.cancel(s), [state], [job_text], api_name="cancel_job")
    undo_button.click(lambda s: view(*h.undo_job(s)), [state], view_outputs, api_name="undo_job")

    def on_import(s, path, fmt, replace):
        if st.has_unsaved(s):
            raise gr.Error("Save or discard your edits before importing.")
        s["revision"], message = exchange.import_file(store, s["dataset_id"], s["revision"], path, fmt, replace)
        return view(s, message)

    def on_export(s, fmt, request: gr.Request):
        # Exports are kept per user (and pruned per user): the login name, None without logins.
        return exchange.export_dataset(settings, store, s["dataset_id"], fmt, getattr(request, "username", None))

    export_button.click(on_export, [state, export_format], [export_file], api_name="export")
    import_button.click(on_import, [state, import_upload, import_format, import_replace], view_outputs,
                        api_name="import_annotations", concurrency_limit=settings.upload_concurrency,
                        concurrency_id="file_uploads")

    def poll(s):
        text, preview = h.job_progress(s)
        models = h.model_choices()
        fixed = (text, preview, gr.update(visible=h.tracking_visible()), gr.update(choices=models))
        job_id = s.get("job_id")
        if job_id is not None and s.get("job_shown") != job_id and store.get_job(job_id).finished:
            # Redraw once when the job ends, so its masks appear on the current frame.
            s["job_shown"] = job_id
            return (*fixed, *view(s))
        return (*fixed, *[gr.skip()] * len(view_outputs))

    timer.tick(poll, [state], [job_text, job_preview, tracking_group, model_choice, *view_outputs],
               show_progress="hidden", api_name=False)

    def on_load(s):
        # Open the first video (the sample clip on a fresh install) so a new user sees a frame at once.
        choices = h.dataset_choices()
        if s["dataset_id"] is None and choices:
            s = h.open_dataset(s, choices[0][1])
        return (*view(s), gr.update(choices=choices, value=s["dataset_id"]))

    demo.load(on_load, [state], [*view_outputs, dataset_choice], api_name=False)
    return h
