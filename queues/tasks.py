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

    huey.sam2_tasks = {"track": track, "download_model": download_model}


def run_model_download(settings: Settings, name: str, force: bool = False) -> str:
    """Download model `name` (from the store's catalogue) into this worker's model store, recording progress."""
    from queues.runner import get_store
    from sam2_tracking.models import ModelEntry, download_model

    store = get_store(settings)
    record = store.get_model(name)
    if record is None:
        raise ValueError(f"model {name!r} was removed before its download started")
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
            store.upsert_model_status(name, status="downloading", progress_bytes=done, total_bytes=total)

    store.upsert_model_status(name, status="downloading", progress_bytes=0, error=None)
    try:
        path = download_model(entry, settings.model_dir, force=force, on_progress=on_progress)
    except Exception as exc:
        store.upsert_model_status(name, status="failed", error=str(exc))
        raise
    from sam2_tracking.models import model_status

    manifest = model_status(settings.model_dir, name) or {}
    store.upsert_model_status(
        name, status="ready", size=manifest.get("size"), sha256=manifest.get("sha256"),
        progress_bytes=manifest.get("size"), total_bytes=manifest.get("size"), error=None,
    )
    log.info("model %s ready in %s", name, path)
    return "ready"
