"""The queues' configuration, huey-style: the Huey instance of each queue, the process's store, liveness timings.

Everything else in queues/ imports from here and this module imports nothing else from queues/, so the package is
a tree: config <- identity <- heartbeat, runner <- tasks <- dispatch <- consumer (catalogue, job_model and seed_preview
beside them).

Instances are cached per process: Huey's SQLite storage keeps a connection per thread, and re-creating an instance
for every enqueue would re-run its DDL. Tasks are registered on an instance by queues.tasks.huey_for().
"""

from __future__ import annotations

import threading

from huey import Huey, RedisHuey, SqliteHuey

from sam2_tracking.settings import Settings
from sam2_tracking.store.core import BUSY_TIMEOUT_S

# Liveness. A consumer beats every HEARTBEAT_INTERVAL_S; a worker counts as dead after STALE_AFTER_S without a beat.
# A heartbeat is a store write, and a store write may wait up to the store's busy timeout behind another process's
# transaction (an import, a batch commit): a window shorter than that declares a live but waiting worker dead and
# hands its job to another. So the window is derived from the busy timeout, with two beats of margin on top.
HEARTBEAT_INTERVAL_S = 2.0
STALE_AFTER_S = BUSY_TIMEOUT_S + 2 * HEARTBEAT_INTERVAL_S

_instances: dict[tuple[str, str], Huey] = {}
_stores: dict[str, object] = {}
_lock = threading.Lock()


class UnknownQueueError(ValueError):
    """A queue name that the settings do not list."""


def backend_label(settings: Settings) -> str:
    """Where the queues live, for logs and the Admin tab (never includes a Redis password)."""
    if settings.queue_url:
        from urllib.parse import urlsplit

        parts = urlsplit(settings.queue_url)
        return f"redis {parts.hostname}:{parts.port or 6379}{parts.path}"
    return f"sqlite {settings.queue_db_path}"


def get_huey(settings: Settings, queue: str) -> Huey:
    """The bare Huey instance for `queue`, created on first use. Enqueue through queues.tasks, which registers the
    tasks on it."""
    if queue not in settings.queue_names:
        raise UnknownQueueError(f"unknown queue {queue!r}: this server offers {', '.join(settings.queue_names)}")
    key = (queue, settings.queue_url or str(settings.queue_db_path))
    with _lock:
        huey = _instances.get(key)
        if huey is None:
            huey = _instances[key] = _create_huey(settings, queue)
        return huey


def _create_huey(settings: Settings, queue: str) -> Huey:
    # results=False: a job's outcome lives in the store's job row, which the UI reads; Huey results would pile up.
    if settings.queue_url:
        return RedisHuey(queue, url=settings.queue_url, results=False)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(queue, filename=str(settings.queue_db_path), results=False, timeout=30)


def get_store(settings: Settings):
    """One store per process and store (SQLite file or SAM2T_DATABASE_URL); the store serialises its own threads."""
    from sam2_tracking.store import open_store

    key = str(settings.store_location)
    with _lock:
        if key not in _stores:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            _stores[key] = open_store(settings.store_location)
        return _stores[key]


def forget_instances() -> None:
    """Drop cached Huey instances (tests that switch settings in one process)."""
    with _lock:
        _instances.clear()
