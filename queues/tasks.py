"""The Huey tasks: thin wrappers that hand the work to queues.runner and sam2_tracking.models.

register_tasks() attaches them to one Huey instance (one per queue); they find this process's consumer identity
by queue name, so the same code serves the CPU and GPU consumers.
"""

from __future__ import annotations

import logging
import time

from huey import Huey

from sam2_tracking.settings import Settings

log = logging.getLogger(__name__)


def register_tasks(huey: Huey, settings: Settings) -> None:
    queue = huey.name

    @huey.task(name="track")
    def track(job_id: int) -> str:
        from queues.runner import run_tracking_job
        from queues.worker import identity_for

        return run_tracking_job(settings, int(job_id), identity_for(queue))

    @huey.task(name="download_model")
    def download_model(name: str, force: bool = False) -> str:
        return run_model_download(settings, name, force)

    @huey.task(name="remove_model")
    def remove_model(name: str) -> str:
        return run_model_removal(settings, name)

    huey.sam2_tasks = {"track": track, "download_model": download_model, "remove_model": remove_model}


def run_model_download(settings: Settings, name: str, force: bool = False) -> str:
    """Download model `name` (from the store's catalogue) into this worker's model store, recording progress."""
    from queues.runner import get_store
    from sam2_tracking.models import ModelEntry, download_model

    store = get_store(settings)
    record = store.get_model(name)  # NotFound if an admin removed it while the download waited in the queue
    entry = ModelEntry(
        name=record.name,
        config=record.config,
        checkpoint_url=record.checkpoint_url,
        expected_size=record.size if record.is_default else None,
        sha256=record.sha256 if record.is_default else None,
        is_default=record.is_default,
    )
    last_write = [0.0]

    def on_progress(done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - last_write[0] >= 0.5 or (total is not None and done >= total):
            last_write[0] = now
            store.update_model(name, status="downloading", progress_bytes=done, total_bytes=total)

    store.update_model(name, status="downloading", progress_bytes=0, error=None)
    try:
        path = download_model(entry, settings.model_dir, force=force, on_progress=on_progress)
    except Exception as exc:
        store.update_model(name, status="failed", error=str(exc))
        raise
    from sam2_tracking.models import model_status

    manifest = model_status(settings.model_dir, name) or {}
    store.update_model(
        name, status="ready", size=manifest.get("size"), sha256=manifest.get("sha256"),
        progress_bytes=manifest.get("size"), total_bytes=manifest.get("size"), error=None,
    )
    log.info("model %s ready in %s", name, path)
    return "ready"


def run_model_removal(settings: Settings, name: str) -> str:
    """Delete model `name` from this worker's model store; a default model goes back to 'absent' in the catalogue,
    a custom one leaves it."""
    from queues.runner import get_store
    from sam2_tracking.models import remove_model

    store = get_store(settings)
    record = store.get_model(name)
    remove_model(settings.model_dir, name)
    if record.is_default:
        store.update_model(name, status="absent", progress_bytes=None, total_bytes=None, error=None)
    else:
        store.delete_model(name)
    return "removed"
