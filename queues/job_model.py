"""A tracking job's model on the consumer that runs it: fetched from the catalogue's URL(s) when this consumer's
own model folder lacks it (or holds another version), before the runner starts.

Consumers on other machines share no disk with the app or each other (README "Deployment"): an admin's download goes
to one consumer of a queue, and every other consumer fetches a ready model itself when a job needs it, with the
Admin download's code (sam2_tracking.models.files) and checked against the catalogue's size and SHA-256. The Huey task
(queues.tasks.track) calls fetch_model_for_job, then queues.runner.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

from queues.catalogue import cancel_throttle, download_limits, progress_throttle
from sam2_tracking.settings import Settings
from sam2_tracking.states import JobState, Lease, SourceKind

log = logging.getLogger(__name__)

FETCHING_NOTE = "fetching model"  # how a job's message starts while its consumer fetches the model

# Seed previews: fetches started for a preview, one per (model folder, model) at a time, and how the last one failed.
_preview_fetches: dict[tuple[str, str], threading.Thread] = {}
_preview_fetch_errors: dict[tuple[str, str], str] = {}
_preview_fetch_lock = threading.Lock()


def fetch_model_for_job(settings: Settings, store, job_id: int, worker) -> bool:
    """Before a tracking job runs here: make sure its model is verified in THIS consumer's model folder.

    Consumers on other machines share no disk with the app, so each one fetches a model that the catalogue lists
    as ready from the catalogue's URL(s) itself, with the Admin download's code (verified, atomic rename, the same
    size cap, config allow-list and timeouts), checked against the catalogue's size and SHA-256 so that every
    consumer runs the same weights. The job is claimed first (worker: this consumer's queues.identity.WorkerIdentity),
    so it shows as running with the message "fetching model ...", and a consumer that dies meanwhile has its job
    handed to another like any running job. A cancel stops the fetch at its next chunk (the partial file stays for
    the next try). Returns True when the runner should take the job from here; False when it ended here (failed:
    its message says why and what to do, and a refused file is deleted; or cancelled) or another worker holds it."""
    from queues.config import STALE_AFTER_S
    from sam2_tracking.models.catalogue import model_status

    job = store.get_job(job_id)
    name = job.spec.model_name
    if job.finished:
        return True  # the runner's to skip
    manifest = model_status(settings.model_dir, name)
    if manifest is not None and _same_as_catalogue(store, name, manifest):
        return True
    if job.cancel_requested and store.cancel_if_queued(job_id):
        return False
    if not store.claim_job(job_id, worker.worker_id, stale_after_s=STALE_AFTER_S):
        log.info("job %s is held by another worker (or was cancelled); not fetching its model", job_id)
        return False
    claimed = store.get_job(job_id)
    worker.current_job_id = job_id
    try:
        if not _fetch_claimed(settings, store, claimed, worker.worker_id, replace=manifest is not None):
            return False
    finally:
        worker.current_job_id = None
    # The runner claims the job again: this worker holds it, so the claim succeeds and counts no resume.
    store.update_job(job_id, message=None)
    return True


def _same_as_catalogue(store, name: str, manifest: dict) -> bool:
    """Whether the verified copy here is the one the catalogue lists (an admin's re-download may have replaced it
    since: every consumer must run the same weights). A catalogue without a hash, or without the model, leaves the
    copy here to the runner."""
    from sam2_tracking.store import NotFound

    try:
        record = store.get_model(name)
    except NotFound:
        return True
    return _matches_catalogue(record, manifest)


def _matches_catalogue(record, manifest: dict) -> bool:
    return not record.sha256 or manifest.get("sha256") == record.sha256.lower()


def _fetch_claimed(settings: Settings, store, job, worker_id: str, replace: bool = False) -> bool:
    """Fetch the job's model (replace: a different version is here; it stays in use until the new one is verified)."""
    from sam2_tracking.models.catalogue import DownloadCancelled, ModelError, download_model
    from sam2_tracking.models.files import discard_download
    from sam2_tracking.store import NotFound

    job_id, name = job.job_id, job.spec.model_name
    host = socket.gethostname()
    where = f"this consumer ({host}, {settings.model_dir})"
    try:
        record = store.get_model(name)
        entry = _catalogue_entry(record)
    except NotFound:
        return _fail_job(store, job_id, worker_id, f"model {name!r} is no longer in the catalogue: ask an admin to "
                         "add and download it, then track again")
    except ModelError as exc:
        return _fail_job(store, job_id, worker_id, f"model {name!r} is not in {where}, and {exc}")
    if not record.usable:
        return _fail_job(store, job_id, worker_id, f"model {name!r} is {record.status} in the catalogue and not in "
                         f"{where}: wait until an admin's download finishes, then track again")
    progress_writes, cancel_checks = progress_throttle(), cancel_throttle()

    def on_progress(done: int, total: int | None) -> None:
        if progress_writes.due():
            if store.job_lease(job_id, worker_id) != Lease.OK:
                return  # never overwrite the reason someone gave for a cancel
            of_total = f" of {total / 1e6:.0f}" if total else ""
            store.update_job(job_id, message=f"{FETCHING_NOTE} {name} onto {host}: {done / 1e6:.0f}{of_total} MB",
                             heartbeat_at=time.time())

    def should_cancel() -> bool:
        # Cancelled, or handed to another worker: either way this fetch is not needed now.
        return cancel_checks.due() and store.job_lease(job_id, worker_id) != Lease.OK

    store.update_job(job_id, message=f"{FETCHING_NOTE} {name} onto {host}")
    log.info("job %s: model %s is not in %s; fetching it from %s", job_id, name, settings.model_dir,
             entry.checkpoint_url)
    try:
        download_model(entry, settings.model_dir, force=replace, on_progress=on_progress,
                       should_cancel=should_cancel, limits=download_limits(settings))
    except DownloadCancelled:
        # The fetch's note goes, a reason given with the cancel stays; nothing changes if the job was handed on.
        note = store.get_job(job_id).message or ""
        store.finish_job(job_id, worker_id, JobState.CANCELLED, **({"message": None} if note.startswith(FETCHING_NOTE) else {}))
        return False
    except Exception as exc:
        discard_download(settings.model_dir, name)
        reason = str(exc) if isinstance(exc, ModelError) else f"{type(exc).__name__}: {exc}"
        return _fail_job(store, job_id, worker_id, f"could not fetch model {name!r} onto {where}: {reason}")
    store.update_job(job_id, heartbeat_at=time.time())
    log.info("job %s: model %s fetched into %s", job_id, name, settings.model_dir)
    return True


def _catalogue_entry(record):
    """The download entry for a catalogue row, checked as an admin's entry is: the database is shared by several
    machines, so its rows are input to a consumer. Raises ModelError for a model that has no URL to fetch from."""
    from sam2_tracking.models.catalogue import DEFAULT_MODELS, ModelEntry, ModelError, custom_model_entry

    if record.source == SourceKind.UPLOAD:
        raise ModelError("it was installed from uploaded files, so there is no URL to fetch it from: upload it in "
                         "the Admin tab of an app whose model folder this consumer reads, or copy the model's "
                         "folder into this consumer's SAM2T_MODEL_DIR")
    default = DEFAULT_MODELS.get(record.name)
    # custom_model_entry applies the URL and built-in config checks; the placeholder name keeps it from refusing a
    # default model's own name.
    custom_model_entry("catalogue_entry", default.config if default else record.config, record.checkpoint_url)
    return ModelEntry(name=record.name, config=default.config if default else record.config,
                      checkpoint_url=record.checkpoint_url, expected_size=record.size, sha256=record.sha256,
                      is_default=record.is_default, label=default.label if default else record.name)


def _fail_job(store, job_id: int, worker_id: str, message: str) -> bool:
    # Through the lease: nothing changes if the job was handed to another worker meanwhile.
    if store.finish_job(job_id, worker_id, JobState.FAILED, error=message):
        log.warning("job %s failed before tracking: %s", job_id, message)
    return False


def model_here_or_fetching(settings: Settings, record) -> str | None:
    """For a seed preview (which must answer in seconds, so it never waits for a download): None when this
    consumer's model folder holds the catalogue's version of the model (record: its catalogue row, read once by the
    caller); otherwise a message for the page, after
    starting, once, a background fetch of it with the same verified download a job uses. The next preview after the
    fetch finishes runs; one that failed says why once, and the preview after that tries again."""
    from sam2_tracking.models.catalogue import ModelError, model_status

    name = record.name
    manifest = model_status(settings.model_dir, name)
    if manifest is not None and _matches_catalogue(record, manifest):
        return None
    key, host = (str(settings.model_dir), name), socket.gethostname()
    with _preview_fetch_lock:
        error = _preview_fetch_errors.pop(key, None)
        if error is not None:
            return f"could not fetch model {name!r} onto this consumer ({host}) for previews: {error}"
        running = _preview_fetches.get(key)
        if running is None or not running.is_alive():
            try:
                entry = _catalogue_entry(record)
            except ModelError as exc:
                return f"model {name!r} is not on this consumer ({host}), and {exc}"
            running = threading.Thread(target=_fetch_for_previews, args=(settings, entry, key, manifest is not None),
                                       name=f"model-fetch-{name}", daemon=True)
            _preview_fetches[key] = running
            running.start()
    return (f"model {name!r} is being fetched onto this consumer ({host}), the first time it is used here: "
            "try the preview again in a minute")


def _fetch_for_previews(settings: Settings, entry, key: tuple[str, str], replace: bool) -> None:
    from sam2_tracking.models.catalogue import ModelError, download_model
    from sam2_tracking.models.files import discard_download

    log.info("model %s is not in %s; fetching it for previews from %s", entry.name, settings.model_dir,
             entry.checkpoint_url)
    try:
        download_model(entry, settings.model_dir, force=replace, limits=download_limits(settings))
        log.info("model %s fetched into %s", entry.name, settings.model_dir)
    except Exception as exc:  # reported to the next preview request; the thread must not take the consumer down
        discard_download(settings.model_dir, entry.name)
        reason = str(exc) if isinstance(exc, ModelError) else f"{type(exc).__name__}: {exc}"
        log.warning("could not fetch model %s for previews: %s", entry.name, reason)
        with _preview_fetch_lock:
            _preview_fetch_errors[key] = reason
