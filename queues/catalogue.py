"""The store's model catalogue kept in step with the workers' model store (sam2_tracking.models.files).

Default models are listed on start; a consumer runs downloads (run_model_download, called by the Huey task), an admin
may cancel one (request_download_cancel), a consumer starting up resets downloads that a killed process left at
"downloading" (reset_stale_downloads), and an admin can install a model from uploaded files on a server without
internet (install_uploaded_model). The admin check belongs to the caller (ui.admin), on every call.
"""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path

from sam2_tracking.settings import Settings
from sam2_tracking.states import DOWNLOADING_MODEL_STATES, ModelState, SourceKind

log = logging.getLogger(__name__)

PROGRESS_WRITE_INTERVAL_S = 0.5
CANCEL_CHECK_INTERVAL_S = 0.5
CANCEL_CHECK_CHUNKS = 8
UPLOADED = "upload"  # how a model folder's manifest names files that came from an upload
CANCEL_QUEUED_NOTE = "cancel requested: a worker skips this download when it picks it up"


class Throttle:
    """due() is True at most once per interval_s, and (given every_calls) at least once per that many calls."""

    def __init__(self, interval_s: float, every_calls: int | None = None) -> None:
        self.interval_s, self.every_calls = interval_s, every_calls
        self._last, self._calls = 0.0, 0

    def due(self) -> bool:
        now = time.monotonic()
        self._calls += 1
        if now - self._last < self.interval_s and (self.every_calls is None or self._calls < self.every_calls):
            return False
        self._last, self._calls = now, 0
        return True


def progress_throttle() -> Throttle:
    """How often a download's progress is written to the store (each model download and each job's model fetch)."""
    return Throttle(PROGRESS_WRITE_INTERVAL_S)


def cancel_throttle() -> Throttle:
    """How often a download asks the store whether it was cancelled. It is asked once per 1 MB chunk, and reading the
    store that often would cost more than the chunk; every CANCEL_CHECK_CHUNKS chunks it is read whatever the clock
    says: on a fast link the rest of a checkpoint can arrive within one interval, and a cancel must still win over
    swapping the new version in."""
    return Throttle(CANCEL_CHECK_INTERVAL_S, every_calls=CANCEL_CHECK_CHUNKS)


def ensure_default_models(store) -> None:
    """List every default model in the store (as not downloaded) unless it is there already."""
    from sam2_tracking.models.catalogue import DEFAULT_MODELS
    from sam2_tracking.store import NotFound

    for entry in DEFAULT_MODELS.values():
        try:
            store.get_model(entry.name)
        except NotFound:
            store.upsert_model(entry.name, entry.config, entry.checkpoint_url, is_default=True, status=ModelState.ABSENT,
                               size=entry.expected_size, sha256=entry.sha256)


def download_limits(settings: Settings):
    from sam2_tracking.models.catalogue import DownloadLimits

    return DownloadLimits(max_checkpoint_bytes=settings.max_checkpoint_bytes,
                          connect_timeout_s=float(settings.download_connect_timeout_seconds),
                          read_timeout_s=float(settings.download_read_timeout_seconds))


def request_download_cancel(store, name: str) -> None:
    """Ask the consumer downloading `name` to stop within a chunk (1 MB), or to skip a queued download when it picks
    it up; the model in use, if any, stays.

    Each request writes a new token: a running download stops when the token differs from the one it saw when it
    started, so a request aimed at a download that had already ended can never stop a later one (and no clocks of
    different machines are compared). A queued one is marked on the model itself, which queuing clears."""
    record = store.get_model(name)  # NotFound for a name the catalogue does not list
    if record.status in (ModelState.QUEUED, ModelState.UPDATING):  # UPDATING may still wait in the queue
        store.update_model(name, error=CANCEL_QUEUED_NOTE)
    store.request_model_cancel(name)


def run_model_download(settings: Settings, store, name: str, force: bool = False) -> str:
    """Download model `name` (from the store's catalogue) into this worker's model store, recording progress.

    Returns "ready" or "cancelled"; a failure is recorded on the model and raised. When a (forced) re-download fails
    or is cancelled, the version already on disk stays in use and the model stays "ready"."""
    from sam2_tracking.models.catalogue import DownloadCancelled, ModelEntry, ModelError, download_model, model_status

    record = store.get_model(name)  # NotFound if an admin removed it while the download waited in the queue
    token_at_start = record.cancel_requests  # read first: a later request changes it
    if record.source == SourceKind.UPLOAD:
        refusal = ModelError(f"{name} was installed from uploaded files: upload them again to replace it")
        _settle(settings, store, name, error=str(refusal))
        raise refusal
    entry = ModelEntry(
        name=record.name,
        config=record.config,
        checkpoint_url=record.checkpoint_url,
        expected_size=record.size if record.is_default else None,
        sha256=record.sha256 if record.is_default else None,
        is_default=record.is_default,
    )
    if record.status in (ModelState.QUEUED, ModelState.UPDATING) and record.error == CANCEL_QUEUED_NOTE:
        _settle(settings, store, name, error="download cancelled by an admin", status_if_missing=ModelState.ABSENT)
        return "cancelled"
    progress_writes, cancel_checks = progress_throttle(), cancel_throttle()

    def on_progress(done: int, total: int | None) -> None:
        if progress_writes.due() or (total is not None and done >= total):
            store.update_model(name, status=busy, progress_bytes=done, total_bytes=total)

    def should_cancel() -> bool:
        return cancel_checks.due() and store.get_model(name).cancel_requests != token_at_start

    # A forced re-download of a usable model leaves it usable ("updating"): jobs and previews go on with the version
    # on disk until the new one is verified and swapped in.
    busy = ModelState.UPDATING if record.usable else ModelState.DOWNLOADING
    store.update_model(name, status=busy, progress_bytes=0, error=None)
    try:
        path = download_model(entry, settings.model_dir, force=force, on_progress=on_progress,
                              should_cancel=should_cancel, limits=download_limits(settings))
    except DownloadCancelled:
        _settle(settings, store, name, error="download cancelled by an admin", status_if_missing=ModelState.ABSENT)
        return "cancelled"
    except Exception as exc:
        _settle(settings, store, name, error=str(exc) if isinstance(exc, ModelError) else
                f"{type(exc).__name__}: {exc}")
        raise
    manifest = model_status(settings.model_dir, name) or {}
    store.update_model(
        name, status=ModelState.READY, size=manifest.get("size"), sha256=manifest.get("sha256"),
        progress_bytes=manifest.get("size"), total_bytes=manifest.get("size"), error=None,
    )
    log.info("model %s ready in %s", name, path)
    return "ready"


def _settle(settings: Settings, store, name: str, error: str, status_if_missing: ModelState = ModelState.FAILED) -> None:
    """Set `name`'s status from what is on disk after a download stopped: "ready" if a verified version is there
    (a failed re-download keeps it), else status_if_missing, with the error as the note."""
    from sam2_tracking.models.catalogue import model_status

    manifest = model_status(settings.model_dir, name)
    if manifest is not None:
        store.update_model(name, status=ModelState.READY, size=manifest.get("size"), sha256=manifest.get("sha256"),
                           progress_bytes=manifest.get("size"), total_bytes=manifest.get("size"),
                           error=f"the model on disk is kept; the re-download stopped: {error}")
    else:
        store.update_model(name, status=status_if_missing, error=error)


def reset_stale_downloads(settings: Settings, store, stale_after_s: float | None = None) -> list[str]:
    """At consumer start: models left "downloading" or "updating" by a process that no longer runs get the status of
    what is on disk. Returns their names.

    A download is provably dead when this machine's model store holds its owner mark (owner.json) and no process
    holds its lock (a killed process loses its flock). A "downloading" status with no trace here may belong to a
    consumer on another machine: it is reset only once it has written no progress for stale_after_s (default: four
    read timeouts plus a minute, longer than any stall a live download survives)."""
    from sam2_tracking.models.catalogue import clear_interrupted, download_in_progress, interrupted_download

    if stale_after_s is None:
        stale_after_s = 4 * settings.download_read_timeout_seconds + 60
    here = socket.gethostname()
    reset = []
    for record in store.list_models():
        if record.status not in (ModelState.DOWNLOADING, ModelState.UPDATING):
            continue
        name = record.name
        try:
            if download_in_progress(settings.model_dir, name):
                continue
            owner = interrupted_download(settings.model_dir, name)
        except ValueError:  # a catalogue name the model store cannot hold: not ours to judge
            continue
        mine = owner is not None and owner.get("host") in (here, None)
        quiet_for = time.time() - (record.updated_at or 0)
        if not mine and (quiet_for < stale_after_s or record.status == ModelState.UPDATING):
            # An "updating" model stays usable, and one still waiting in the queue has no trace anywhere yet: only
            # its own consumer's restart (which finds the trace) resets it.
            continue
        _settle(settings, store, name, error="the download stopped when its consumer did; download again "
                "(it resumes where it stopped)", status_if_missing=ModelState.ABSENT)
        if owner is not None:
            clear_interrupted(settings.model_dir, name)
        log.info("model %s: reset a download its consumer left unfinished", name)
        reset.append(name)
    return reset


def install_uploaded_model(settings: Settings, store, name: str, checkpoint_file: str | Path,
                           config_file: str | Path | None = None) -> str:
    """Install model `name` from an uploaded checkpoint (and config) into settings.model_dir; list it as ready.

    For a default model's name the config may be left out (the built-in one is used) and the file must have the
    known size (and SHA-256 where known); any other name needs a config. The same checks as a download apply; a model
    already there stays in use until the new files are verified. Returns a message for the admin. The model store
    must be the one the consumers read (same machine or shared disk)."""
    from sam2_tracking.models.catalogue import (
        DEFAULT_MODELS,
        MAX_CONFIG_BYTES,
        ModelError,
        builtin_config_text,
        check_name,
        install_model_files,
    )
    from sam2_tracking.store import NotFound

    name = check_name((name or "").strip())
    default = DEFAULT_MODELS.get(name)
    if checkpoint_file is None:
        raise ModelError("choose a checkpoint file (.pt) to upload")
    if config_file is None:
        if default is None:
            raise ModelError(f"{name} is not a default model: upload its config (YAML) with the checkpoint")
        config_text = builtin_config_text(default.config)
    else:
        config_path = Path(config_file)
        if config_path.stat().st_size > MAX_CONFIG_BYTES:
            raise ModelError("the config is over 1 MB: that is not a SAM2 model config")
        try:
            config_text = config_path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise ModelError("the config is not UTF-8 text: upload a SAM2 model config in YAML") from None
    try:
        record = store.get_model(name)
    except NotFound:
        record = None
    if record is not None and (record.status in DOWNLOADING_MODEL_STATES or record.status == ModelState.REMOVING):
        raise ModelError(f"{name} is {record.status}: wait for that to finish (or cancel it), then upload")
    install_model_files(
        settings.model_dir, name, config_text, checkpoint_file,
        sources={"config": "built-in " + default.config if config_file is None else UPLOADED,
                 "checkpoint": UPLOADED},
        label=default.label if default else name,
        expected_size=default.expected_size if default else None,
        sha256=default.sha256 if default else None,
        limits=download_limits(settings),
    )
    from sam2_tracking.models.catalogue import model_status

    manifest = model_status(settings.model_dir, name) or {}
    if default is not None:
        store.update_model(name, status=ModelState.READY, size=manifest.get("size"), sha256=manifest.get("sha256"),
                           progress_bytes=manifest.get("size"), total_bytes=manifest.get("size"), error=None)
    else:
        store.upsert_model(name, "", "", is_default=False, status=ModelState.READY, size=manifest.get("size"),
                           sha256=manifest.get("sha256"), progress_bytes=manifest.get("size"),
                           total_bytes=manifest.get("size"), source=SourceKind.UPLOAD)
    return f"{name} installed from the uploaded files and ready ({manifest.get('size', 0) / 1e6:.0f} MB)."
