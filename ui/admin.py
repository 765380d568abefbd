"""The Admin tab: SAM2 support, the model store, the download queue, the global tracking toggle, live status.

Handlers are plain functions (testable without a browser); each admin action calls require_admin first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import gradio as gr

from queues import dispatch, jobs_api
from sam2_tracking.settings import Settings
from sam2_tracking.states import DOWNLOADING_MODEL_STATES, JobState, ModelState
from ui.auth import is_admin, require_admin, user_error
from ui.shared_reads import SharedReads
from ui.views import jobs_rows, models_rows, workers_rows

SAM2_OFF_MESSAGE = "stopped: an admin turned SAM2 off (the frames tracked so far are kept)"
SAM2_ENABLED = "sam2_enabled"
TRACKING_ENABLED = "tracking_enabled"
MODEL_QUEUE = "model_queue"

MODEL_COLUMNS = ["model", "kind", "status", "size", "progress", "error"]
WORKER_COLUMNS = ["queue", "worker", "device", "current job", "last heartbeat", "models"]
JOB_COLUMNS = ["job", "dataset", "tracks", "queue", "status", "progress", "fps", "eta", "worker", "message"]


def admin_state(settings: Settings, store) -> dict:
    """The settings the Admin tab shows (also read by the Annotate tab to decide what to offer)."""
    return {
        "sam2_enabled": bool(store.get_setting(SAM2_ENABLED, False)),
        "tracking_enabled": bool(store.get_setting(TRACKING_ENABLED, False)),
        "model_queue": store.get_setting(MODEL_QUEUE, settings.queue_names[0]),
    }


def tracking_on(store) -> bool:
    """SAM2 and mask tracking both switched on (store: a Store, or SharedReads for a timer)."""
    return bool(store.get_setting(SAM2_ENABLED, False)) and bool(store.get_setting(TRACKING_ENABLED, False))


def set_sam2_enabled(settings: Settings, store, enabled: bool, request: gr.Request | None) -> str:
    require_admin(settings, request)
    store.set_setting(SAM2_ENABLED, bool(enabled))
    if enabled:
        return "SAM2 support is on."
    store.set_setting(TRACKING_ENABLED, False)  # tracking needs SAM2 support
    caller = jobs_api.Caller.from_login(getattr(request, "username", None), is_admin=True)
    stopped = jobs_api.stop_all_jobs(settings, store, caller, SAM2_OFF_MESSAGE)
    return "SAM2 support is off; mask tracking is off too" + (
        f"; stopped job(s) {', '.join(map(str, stopped))} (their tracked frames are kept)." if stopped else ".")


def set_tracking_enabled(settings: Settings, store, enabled: bool, request: gr.Request | None) -> str:
    require_admin(settings, request)
    if enabled and not store.get_setting(SAM2_ENABLED, False):
        raise user_error("Turn on SAM2 support first.")
    if enabled and not any(m.usable for m in store.list_models()):
        raise user_error("Download at least one model first: annotators need a model to track with.")
    store.set_setting(TRACKING_ENABLED, bool(enabled))
    return "Every annotator now sees the track button." if enabled else "The track button is hidden."


def set_model_queue(settings: Settings, store, queue: str, request: gr.Request | None) -> str:
    require_admin(settings, request)
    if queue not in settings.queue_names:
        raise user_error(f"Unknown queue {queue!r}.")
    store.set_setting(MODEL_QUEUE, queue)
    return f"Model downloads go to the {queue} queue; its workers keep the models."


def download_model(settings: Settings, store, name: str, force: bool, request: gr.Request | None) -> str:
    require_admin(settings, request)
    _require_sam2(store)
    if not name:
        raise user_error("Choose a model first.")
    queue = admin_state(settings, store)["model_queue"]
    try:
        warning = dispatch.enqueue_model_download(settings, store, name, queue, force=force)
    except (KeyError, ValueError) as exc:
        raise user_error(str(exc)) from None
    message = f"{'Re-downloading' if force else 'Downloading'} {name} on the {queue} queue."
    if store.get_model(name).status == ModelState.UPDATING:
        message += " Jobs keep using the version on disk until the new one is verified."
    return message + (f" Warning: {warning}" if warning else "")


def add_custom_model(settings: Settings, store, name: str, config: str, checkpoint_url: str,
                     request: gr.Request | None) -> str:
    from sam2_tracking.models.catalogue import ModelError, custom_model_entry
    from sam2_tracking.store import NotFound

    require_admin(settings, request)
    _require_sam2(store)
    try:
        entry = custom_model_entry((name or "").strip(), (config or "").strip(), (checkpoint_url or "").strip())
    except ModelError as exc:
        raise user_error(str(exc)) from None
    try:
        store.get_model(entry.name)
        raise user_error(f"A model named {entry.name!r} exists already: remove it first or pick another name.")
    except NotFound:
        pass
    store.upsert_model(entry.name, entry.config, entry.checkpoint_url, is_default=False, status=ModelState.ABSENT)
    return download_model(settings, store, entry.name, False, request)


def remove_model(settings: Settings, store, name: str, request: gr.Request | None) -> str:
    require_admin(settings, request)
    if not name:
        raise user_error("Choose a model first.")
    queue = admin_state(settings, store)["model_queue"]
    try:
        warning = dispatch.enqueue_model_removal(settings, store, name, queue)
    except (KeyError, ValueError) as exc:
        raise user_error(str(exc)) from None
    return f"Removing {name} from the {queue} workers' model store." + (f" Warning: {warning}" if warning else "")


def cancel_model_download(settings: Settings, store, name: str, request: gr.Request | None) -> str:
    from queues.catalogue import request_download_cancel
    from sam2_tracking.store import NotFound

    require_admin(settings, request)
    if not name:
        raise user_error("Choose a model first.")
    try:
        status = store.get_model(name).status
        if status not in DOWNLOADING_MODEL_STATES:
            raise user_error(f"{name} is {status}: there is no download to cancel.")
        request_download_cancel(store, name)
    except NotFound as exc:
        raise user_error(str(exc)) from None
    return f"Cancelling the download of {name}; a model already on disk stays in use."


def upload_model(settings: Settings, store, name: str, config_file: str | None, checkpoint_file: str | None,
                 request: gr.Request | None) -> str:
    """Install a model from uploaded files (servers without internet) into this app's SAM2T_MODEL_DIR."""
    from queues.catalogue import install_uploaded_model

    require_admin(settings, request)
    _require_sam2(store)
    if not checkpoint_file:
        raise user_error("Choose the checkpoint file (.pt) to upload.")
    try:
        return install_uploaded_model(settings, store, (name or "").strip(), checkpoint_file, config_file or None)
    except (ValueError, OSError) as exc:  # ModelError is a ValueError; its text is written for the admin
        raise user_error(str(exc)) from None


def _require_sam2(store) -> None:
    if not store.get_setting(SAM2_ENABLED, False):
        raise user_error("Turn on SAM2 support first.")


def status_tables(settings: Settings, store) -> tuple[list, list, list, str]:
    """Models, workers (gone ones marked) and recent jobs as table rows, plus a one-line summary of queues without
    live workers.
    store: a Store, or SharedReads (the Admin timer). One read each of workers (all queues at once), models, jobs
    and videos, however many workers and jobs there are."""
    workers = dispatch.live_workers_by_queue(settings, store)
    idle = [queue for queue, live in workers.items() if not live]
    summary = f"Updated {time.strftime('%H:%M:%S')}."
    if idle:
        summary += " No worker is listening on " + ", ".join(idle) + ": jobs sent there will wait."
    models = store.list_models()
    return (
        models_rows(models),
        workers_rows(store.list_workers(max_age_s=None), [m.name for m in models if m.usable], settings.queue_names),
        jobs_rows(store.list_jobs(limit=30), {d.dataset_id: d.name for d in store.list_datasets()}),
        summary,
    )


DOWNLOAD_COLUMNS = ["model", "status", "progress", "error"]


@dataclass(frozen=True)
class AdminTables:
    models: list[list]
    workers: list[list]
    jobs: list[list]
    summary: str
    downloads: list[list]
    model_names: list[str]


def refresh_admin_tables(settings: Settings, shared: SharedReads, caller: jobs_api.Caller) -> AdminTables:
    """One tick of an admin's Admin tab: everything comes from SharedReads (the same for every admin page), so a
    page adds no store read of its own; the process reads models, workers, jobs and videos once per interval."""
    models, workers, jobs, summary = status_tables(settings, shared)
    return AdminTables(models, workers, jobs, summary, downloads_rows(jobs_api.list_downloads(shared, caller)),
                       [row[0] for row in models])


def downloads_rows(downloads) -> list[list]:
    from ui.views import format_bytes

    rows = []
    for d in downloads:
        progress = format_bytes(d.progress_bytes) if d.progress_bytes is not None else ""
        if d.total_bytes:
            progress += f" of {format_bytes(d.total_bytes)}"
        rows.append([d.name, d.status, progress, d.error or ""])
    return rows


def cancel_any_job(settings: Settings, store, job_id, request: gr.Request | None) -> str:
    require_admin(settings, request)
    if job_id is None:
        raise user_error("Type the number of the job to cancel.")
    caller = jobs_api.Caller.from_login(getattr(request, "username", None), is_admin=True)
    try:
        view = jobs_api.cancel_job_by_id(settings, store, caller, int(job_id))
    except jobs_api.JobAccessError as exc:
        raise user_error(str(exc)) from None
    return cancelled_text(view)


def cancelled_text(view: jobs_api.JobView) -> str:
    return f"Job {view.job_id}: {view.status}" + (" (stops within a frame)." if view.status == JobState.RUNNING
                                                  else ".")


def build_admin_tab(demo: gr.Blocks, settings: Settings, store, admin_tab, shared: SharedReads | None = None) -> None:
    """Lay out the Admin tab inside the current gr.Blocks context; on every page load, show it to the admin only and
    read both toggles from the store (never from the page's last state). shared: the process's SharedReads for the
    timer (one of its own if not given)."""
    shared = shared or SharedReads(store)
    state = admin_state(settings, store)
    with gr.Row():
        sam2_toggle = gr.Checkbox(label="Enable SAM2 support", value=state["sam2_enabled"], elem_id="sam2-toggle")
        tracking_toggle = gr.Checkbox(label="Enable SAM2 mask tracking (shows the track button to every annotator)",
                                      value=state["tracking_enabled"], elem_id="tracking-toggle")
        queue_choice = gr.Dropdown(list(settings.queue_names), value=state["model_queue"],
                                   label="Queue for model downloads (its workers keep the models)")
    admin_message = gr.Markdown(elem_id="admin-message")
    gr.Markdown("### Models")
    models_table = gr.Dataframe(headers=MODEL_COLUMNS, interactive=False, wrap=True, elem_id="models-table",
                                elem_classes=["wrap-cells"])
    with gr.Row():
        model_choice = gr.Dropdown([m.name for m in store.list_models()], label="Model", scale=2)
        download_button = gr.Button("Download", variant="primary")
        redownload_button = gr.Button("Force re-download")
        cancel_download_button = gr.Button("Cancel download")
        remove_button = gr.Button("Remove", variant="stop")
    with gr.Accordion("Add a custom model", open=False):
        custom_name = gr.Textbox(label="Name (letters, digits, _ . -)")
        custom_config = gr.Textbox(label="Config: a built-in name (configs/sam2.1/sam2.1_hiera_t.yaml) or a YAML URL")
        custom_url = gr.Textbox(label="Checkpoint URL")
        add_button = gr.Button("Add and download")
    with gr.Accordion("Install a model from files (servers without internet)", open=False):
        gr.Markdown("A default model's name needs only its checkpoint; any other name also needs its config (YAML). "
                    "The files are checked as a download is, and installed into this server's model store.")
        upload_name = gr.Textbox(label="Name (e.g. sam2.1_hiera_large, or a new name)")
        with gr.Row():
            upload_config = gr.File(label="Config (.yaml)", file_types=[".yaml", ".yml"], type="filepath")
            upload_checkpoint = gr.File(label="Checkpoint (.pt)", file_types=[".pt", ".pth"], type="filepath")
        upload_button = gr.Button("Install")
    gr.Markdown("### Downloads")
    downloads_table = gr.Dataframe(headers=DOWNLOAD_COLUMNS, interactive=False, wrap=True, elem_id="downloads-table",
                                   elem_classes=["wrap-cells"])
    gr.Markdown("### Workers and jobs")
    status_line = gr.Markdown()
    workers_table = gr.Dataframe(headers=WORKER_COLUMNS, interactive=False, wrap=True)
    jobs_table = gr.Dataframe(headers=JOB_COLUMNS, interactive=False, wrap=True, elem_id="admin-jobs",
                              elem_classes=["wrap-cells"])
    with gr.Row():
        cancel_number = gr.Number(label="Job number", precision=0, elem_id="admin-cancel-job")
        cancel_button = gr.Button("Cancel job", variant="stop", elem_id="admin-cancel-button")
    timer = gr.Timer(2.0)

    def refresh(request: gr.Request):
        if not is_admin(settings, request):
            # The timer runs on every page; an annotator's page gets nothing from the admin's tables.
            return {timer: gr.Timer(active=False)}
        caller = jobs_api.Caller.from_login(getattr(request, "username", None), is_admin=True)
        tables = refresh_admin_tables(settings, shared, caller)
        return {models_table: tables.models, workers_table: tables.workers, jobs_table: tables.jobs,
                status_line: tables.summary, model_choice: gr.update(choices=tables.model_names),
                downloads_table: tables.downloads}

    timer.tick(refresh, None, [models_table, workers_table, jobs_table, status_line, model_choice, downloads_table,
                               timer], show_progress="hidden", api_name=False)

    def stored_toggles(request: gr.Request):
        state = admin_state(settings, store)
        return {sam2_toggle: state["sam2_enabled"], tracking_toggle: state["tracking_enabled"],
                queue_choice: state["model_queue"], admin_tab: gr.update(visible=is_admin(settings, request))}

    demo.load(stored_toggles, None, [sam2_toggle, tracking_toggle, queue_choice, admin_tab], api_name=False)

    # Gradio passes gr.Request only to parameters annotated with it, hence named functions, not lambdas.
    def on_sam2(enabled: bool, request: gr.Request):
        return set_sam2_enabled(settings, store, enabled, request), bool(store.get_setting(TRACKING_ENABLED, False))

    def on_tracking(enabled: bool, request: gr.Request):
        return set_tracking_enabled(settings, store, enabled, request)

    def on_queue(queue: str, request: gr.Request):
        return set_model_queue(settings, store, queue, request)

    def on_download(name: str, request: gr.Request):
        return download_model(settings, store, name, False, request)

    def on_redownload(name: str, request: gr.Request):
        return download_model(settings, store, name, True, request)

    def on_remove(name: str, request: gr.Request):
        return remove_model(settings, store, name, request)

    def on_add(name: str, config: str, url: str, request: gr.Request):
        return add_custom_model(settings, store, name, config, url, request)

    def on_cancel_download(name: str, request: gr.Request):
        return cancel_model_download(settings, store, name, request)

    def on_upload(name: str, config_file, checkpoint_file, request: gr.Request):
        return upload_model(settings, store, name, config_file, checkpoint_file, request)

    def on_cancel(job_id, request: gr.Request):
        return cancel_any_job(settings, store, job_id, request)

    def revert_toggles():
        # A refused click must not leave the checkbox flipped on screen: show what the store holds.
        state = admin_state(settings, store)
        return state["sam2_enabled"], state["tracking_enabled"]

    sam2_toggle.input(on_sam2, [sam2_toggle], [admin_message, tracking_toggle], api_name="admin_set_sam2").failure(
        revert_toggles, None, [sam2_toggle, tracking_toggle], api_name=False)
    tracking_toggle.input(on_tracking, [tracking_toggle], [admin_message], api_name="admin_set_tracking").failure(
        revert_toggles, None, [sam2_toggle, tracking_toggle], api_name=False)
    queue_choice.input(on_queue, [queue_choice], [admin_message], api_name="admin_set_model_queue")
    download_button.click(on_download, [model_choice], [admin_message], api_name="admin_download_model")
    redownload_button.click(on_redownload, [model_choice], [admin_message], api_name="admin_redownload_model")
    remove_button.click(on_remove, [model_choice], [admin_message], api_name="admin_remove_model")
    cancel_download_button.click(on_cancel_download, [model_choice], [admin_message],
                                 api_name="admin_cancel_model_download")
    upload_button.click(on_upload, [upload_name, upload_config, upload_checkpoint], [admin_message],
                        api_name="admin_upload_model")
    add_button.click(on_add, [custom_name, custom_config, custom_url], [admin_message], api_name="admin_add_model")
    cancel_button.click(on_cancel, [cancel_number], [admin_message], api_name="admin_cancel_job")
