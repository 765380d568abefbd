"""One Huey instance per queue name, on the storage the settings choose (SQLite file by default, Redis by URL).

Huey instances are cached per process: Huey's SQLite storage keeps a connection per thread, and re-creating an
instance for every enqueue would re-run its DDL.
"""

from __future__ import annotations

import threading

from huey import Huey, RedisHuey, SqliteHuey

from sam2_tracking.settings import Settings

_instances: dict[tuple[str, str], Huey] = {}
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
    """The Huey instance for `queue`, created on first use; tasks are registered by queues.tasks."""
    if queue not in settings.queue_names:
        raise UnknownQueueError(f"unknown queue {queue!r}: this server offers {', '.join(settings.queue_names)}")
    key = (queue, settings.queue_url or str(settings.queue_db_path))
    with _lock:
        huey = _instances.get(key)
        if huey is None:
            huey = _create_huey(settings, queue)
            from queues.tasks import register_tasks

            register_tasks(huey, settings)
            _instances[key] = huey
        return huey


def _create_huey(settings: Settings, queue: str) -> Huey:
    # results=False: a job's outcome lives in the store's job row, which the UI reads; Huey results would pile up.
    if settings.queue_url:
        return RedisHuey(queue, url=settings.queue_url, results=False)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(queue, filename=str(settings.queue_db_path), results=False, timeout=30)


def forget_instances() -> None:
    """Drop cached instances (tests that switch settings in one process)."""
    with _lock:
        _instances.clear()
