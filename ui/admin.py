"""The Admin tab: SAM2 support, the model store, the download queue, the global tracking toggle, live status.

Handlers are plain functions (testable without a browser); each admin action calls require_admin first.
"""

from __future__ import annotations

import time

import gradio as gr

from queues import dispatch, jobs_api
from sam2_tracking.settings import Settings
from ui.auth import require_admin
from ui.views import jobs_rows, models_rows, workers_rows

SAM2_OFF_MESSAGE = "stopped: an admin turned SAM2 off (the frames tracked so far are kept)"
SAM2_ENABLED = "sam2_enabled"
TRACKING_ENABLED = "tracking_enabled"
MODEL_QUEUE = "model_queue"

MODEL_COLUMNS = ["model", "kind", "status", "size", "progress", "error"]
WORKER_COLUMNS = ["queue", "worker", "device", "current job", "last heartbeat"]
JOB_COLUMNS = ["job", "dataset", "tracks", "queue", "status", "progress", "fps", "eta", "worker", "message"]


def admin_state(settings: Settings, store) -> dict:
    """The settings the Admin tab shows (also read by the Annotate tab to decide what to offer)."""
    return {
        "sam2_enabled": bool(store.get_setting(SAM2_ENABLED, False)),
        "tracking_enabled": bool(store.get_setting(TRACKING_ENABLED, False)),
        "model_queue": store.get_setting(MODEL_QUEUE, settings.queue_names[0]),
    }


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
        raise gr.Error("Turn on SAM2 support first.")
    if enabled and not any(m.status == "ready" for m in store.list_models()):
        raise gr.Error("Download at least one model first: annotators need a model to track with.")
    store.set_setting(TRACKING_ENABLED, bool(enabled))
    return "Every annotator now sees the track button." if enabled else "The track button is hidden."


def set_model_queue(settings: Settings, store, queue: str, request: gr.Request | None) -> str:
    require_admin(settings, request)
    if queue not in settings.queue_names:
        raise gr.Error(f"Unknown queue {queue!r}.")
    store.set_setting(MODEL_QUEUE, queue)
    return f"Model downloads go to the {queue} queue; its workers keep the models."


def download_model(settings: Settings, store, name: str, force: bool, request: gr.Request | None) -> str:
    require_admin(settings, request)
    _require_sam2(store)
    if not name:
        raise gr.Error("Choose a model first.")
    queue = admin_state(settings, store)["model_queue"]
    try:
        warning = dispatch.enqueue_model_download(settings, store, name, queue, force=force)
    except (KeyError, ValueError) as exc:
        raise gr.Error(str(exc)) from None
    message = f"{'Re-downloading' if force else 'Downloading'} {name} on the {queue} queue."
    return message + (f" Warning: {warning}" if warning else "")


def add_custom_model(settings: Settings, store, name: str, config: str, checkpoint_url: str,
                     request: gr.Request | None) -> str:
    from sam2_tracking.models import ModelError, custom_model_entry
    from sam2_tracking.store import NotFound

    require_admin(settings, request)
    _require_sam2(store)
    try:
        entry = custom_model_entry((name or "").strip(), (config or "").strip(), (checkpoint_url or "").strip())
    except ModelError as exc:
        raise gr.Error(str(exc)) from None
    try:
        store.get_model(entry.name)
        raise gr.Error(f"A model named {entry.name!r} exists already: remove it first or pick another name.")
    except NotFound:
        pass
    store.upsert_model(entry.name, entry.config, entry.checkpoint_url, is_default=False, status="absent")
    return download_model(settings, store, entry.name, False, request)


def remove_model(settings: Settings, store, name: str, request: gr.Request | None) -> str:
    require_admin(settings, request)
    if not name:
        raise gr.Error("Choose a model first.")
    queue = admin_state(settings, store)["model_queue"]
    try:
        warning = dispatch.enqueue_model_removal(settings, store, name, queue)
    except (KeyError, ValueError) as exc:
        raise gr.Error(str(exc)) from None
    return f"Removing {name} from the {queue} workers' model store." + (f" Warning: {warning}" if warning else "")


def _require_sam2(store) -> None:
    if not store.get_setting(SAM2_ENABLED, False):
        raise gr.Error("Turn on SAM2 support first.")


def status_tables(settings: Settings, store) -> tuple[list, list, list, str]:
    """Models, live workers and recent jobs as table rows, plus a one-line summary of queues without workers."""
    workers = dispatch.live_workers_by_queue(settings, store)
    idle = [queue for queue, live in workers.items() if not live]
    summary = f"Updated {time.strftime('%H:%M:%S')}."
    if idle:
        summary += " No worker is listening on " + ", ".join(idle) + ": jobs sent there will wait."
    return (
        models_rows(store.list_models()),
        workers_rows([w for live in workers.values() for w in live]),
        jobs_rows(store.list_jobs(limit=30), {d.dataset_id: d.name for d in store.list_datasets()}),
        summary,
    )


def build_admin_tab(settings: Settings, store) -> None:
    """Lay out the Admin tab inside the current gr.Blocks context."""
    state = admin_state(settings, store)
    with gr.Row():
        sam2_toggle = gr.Checkbox(label="Enable SAM2 support", value=state["sam2_enabled"])
        tracking_toggle = gr.Checkbox(label="Enable SAM2 mask tracking (shows the track button to every annotator)",
                                      value=state["tracking_enabled"])
        queue_choice = gr.Dropdown(list(settings.queue_names), value=state["model_queue"],
                                   label="Queue for model downloads (its workers keep the models)")
    admin_message = gr.Markdown()
    gr.Markdown("### Models")
    models_table = gr.Dataframe(headers=MODEL_COLUMNS, interactive=False, wrap=True)
    with gr.Row():
        model_choice = gr.Dropdown([m.name for m in store.list_models()], label="Model", scale=2)
        download_button = gr.Button("Download", variant="primary")
        redownload_button = gr.Button("Force re-download")
        remove_button = gr.Button("Remove", variant="stop")
    with gr.Accordion("Add a custom model", open=False):
        custom_name = gr.Textbox(label="Name (letters, digits, _ . -)")
        custom_config = gr.Textbox(label="Config: a built-in name (configs/sam2.1/sam2.1_hiera_t.yaml) or a YAML URL")
        custom_url = gr.Textbox(label="Checkpoint URL")
        add_button = gr.Button("Add and download")
    gr.Markdown("### Workers and jobs")
    status_line = gr.Markdown()
    workers_table = gr.Dataframe(headers=WORKER_COLUMNS, interactive=False)
    jobs_table = gr.Dataframe(headers=JOB_COLUMNS, interactive=False, wrap=True)
    timer = gr.Timer(2.0)

    def refresh():
        models, workers, jobs, summary = status_tables(settings, store)
        names = [row[0] for row in models]
        return models, workers, jobs, summary, gr.update(choices=names)

    refresh_outputs = [models_table, workers_table, jobs_table, status_line, model_choice]
    timer.tick(refresh, outputs=refresh_outputs, show_progress="hidden", api_name=False)
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

    sam2_toggle.input(on_sam2, [sam2_toggle], [admin_message, tracking_toggle], api_name="admin_set_sam2")
    tracking_toggle.input(on_tracking, [tracking_toggle], [admin_message], api_name="admin_set_tracking")
    queue_choice.input(on_queue, [queue_choice], [admin_message], api_name="admin_set_model_queue")
    download_button.click(on_download, [model_choice], [admin_message], api_name="admin_download_model")
    redownload_button.click(on_redownload, [model_choice], [admin_message], api_name="admin_redownload_model")
    remove_button.click(on_remove, [model_choice], [admin_message], api_name="admin_remove_model")
    add_button.click(on_add, [custom_name, custom_config, custom_url], [admin_message], api_name="admin_add_model")
