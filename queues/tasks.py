"""The Huey tasks, defined once at module level: thin wrappers that hand the work to queues.runner and
sam2_tracking.models.catalogue.

Queue names come from the settings, so there is no module-level Huey instance to decorate; huey_for() registers
these same functions on each queue's instance (their registry names stay queues.tasks.<name>). A task runs in a
consumer process and finds that consumer's settings and identity in queues.identity, so one set of tasks serves the
CPU and GPU consumers alike.
"""

from __future__ import annotations

import logging
import threading
import weakref

from huey import Huey
from huey.api import TaskWrapper

from queues.config import get_huey, get_store
from queues.identity import identity_for, served_settings
from queues.runner import run_tracking_job
from sam2_tracking.settings import Settings
from sam2_tracking.states import ModelState

log = logging.getLogger(__name__)


def track(job_id: int) -> str:
    from queues.job_model import fetch_model_for_job

    settings = served_settings()
    store = get_store(settings)
    job = store.get_job(int(job_id))
    worker = identity_for(job.queue)
    # A consumer on another machine may not hold the job's model yet: it fetches it first (queues.catalogue).
    if not fetch_model_for_job(settings, store, job.job_id, worker):
        return store.get_job(job.job_id).status
    return run_tracking_job(settings, job.job_id, worker)


def download_model(name: str, force: bool = False) -> str:
    return run_model_download(served_settings(), name, force)


def remove_model(name: str) -> str:
    return run_model_removal(served_settings(), name)


TASKS = (track, download_model, remove_model)
_wrappers: weakref.WeakKeyDictionary[Huey, dict[str, TaskWrapper]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def huey_for(settings: Settings, queue: str) -> Huey:
    """The Huey instance of `queue` with the tasks registered (raises config.UnknownQueueError)."""
    return _huey_and_tasks(settings, queue)[0]


def _huey_and_tasks(settings: Settings, queue: str) -> tuple[Huey, dict[str, TaskWrapper]]:
    huey = get_huey(settings, queue)
    with _lock:
        wrappers = _wrappers.get(huey)
        if wrappers is None:
            wrappers = _wrappers[huey] = {fn.__name__: huey.task(name=fn.__name__)(fn) for fn in TASKS}
        return huey, wrappers


def send(settings: Settings, queue: str, task_name: str, *args) -> str:
    """Put task `task_name` with `args` on `queue`; returns the Huey task id (to revoke it later)."""
    huey, wrappers = _huey_and_tasks(settings, queue)
    # Build the task first to know its id (with results off, calling the task returns no handle).
    task = wrappers[task_name].s(*args)
    huey.enqueue(task)
    return task.id


def run_model_download(settings: Settings, name: str, force: bool = False) -> str:
    """Download model `name` (from the store's catalogue) into this worker's model store, recording progress."""
    from queues.catalogue import run_model_download as download

    return download(settings, get_store(settings), name, force)


def run_model_removal(settings: Settings, name: str) -> str:
    """Delete model `name` from this worker's model store; a default model goes back to 'absent' in the catalogue,
    a custom one leaves it."""
    from sam2_tracking.models.catalogue import remove_model

    store = get_store(settings)
    record = store.get_model(name)
    remove_model(settings.model_dir, name)
    if record.is_default:
        store.update_model(name, status=ModelState.ABSENT, progress_bytes=None, total_bytes=None, error=None)
    else:
        store.delete_model(name)
    return "removed"
