"""Store reads that every open page's timers need, done once per interval for the whole process instead of per page.

Each page polls every second (the job panel) or two (the Admin tables). Most of what those polls show is the same
for everyone: the SAM2 toggles, the model catalogue, the live workers, the videos, the newest jobs. SharedReads keeps
each of those for `ttl_s` seconds, so twenty open pages cost the store the same handful of reads per second as one;
a page's own read (the caller's jobs) is the only one it adds (ui/job_poll.py).

Its methods have the store's names and signatures (get_setting, list_models, list_workers, list_datasets,
list_jobs), so the functions that take a store for these reads (admin.admin_state, dispatch.live_workers_by_queue,
jobs_api.job_view, jobs_api.list_downloads) take a SharedReads as well. Only timers use it: an action (save, track,
a toggle) reads the store itself, so it never acts on a value up to `ttl_s` old.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

DEFAULT_TTL_S = 1.0
_MISSING = object()  # a setting never set: the caller's default applies


class SharedReads:
    def __init__(self, store, ttl_s: float = DEFAULT_TTL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[tuple, tuple[float, object]] = {}
        # One lock for all entries: pages polling at once wait for the one read rather than each doing it.
        self._lock = threading.Lock()

    def _cached(self, key: tuple, read: Callable[[], object]):
        with self._lock:
            now = self._clock()
            hit = self._cache.get(key)
            if hit is not None and now - hit[0] < self.ttl_s:
                return hit[1]
            value = read()
            self._cache[key] = (now, value)
            return value

    def get_setting(self, key: str, default=None):
        value = self._cached(("setting", key), lambda: self.store.get_setting(key, _MISSING))
        return default if value is _MISSING else value

    def list_models(self) -> list:
        return list(self._cached(("models",), self.store.list_models))

    def list_datasets(self) -> list:
        return list(self._cached(("datasets",), self.store.list_datasets))

    def get_dataset(self, dataset_id: int):
        """The dataset from the shared list; a video added since the last read is read from the store."""
        for dataset in self.list_datasets():
            if dataset.dataset_id == dataset_id:
                return dataset
        return self.store.get_dataset(dataset_id)

    def list_workers(self, queue: str | None = None, max_age_s: float | None = 15.0) -> list:
        """As Store.list_workers, from one read of every worker row, filtered here: one query however many
        queues and workers there are."""
        workers = self._cached(("workers",), lambda: self.store.list_workers(max_age_s=None))
        oldest = None if max_age_s is None else time.time() - max_age_s
        return [w for w in workers if (queue is None or w.queue == queue)
                and (oldest is None or w.heartbeat_at >= oldest)]

    def list_jobs(self, dataset_id: int | None = None, statuses: Sequence[str] | None = None,
                  limit: int | None = 50, owner: str | None = None) -> list:
        """As Store.list_jobs, for lists everyone sees alike (the Admin tables); a person's own list is theirs to
        read (owner=...), so it is not kept here."""
        if owner is not None:
            raise ValueError("SharedReads keeps lists everyone shares: read a person's own jobs from the store")
        key = ("jobs", dataset_id, None if statuses is None else tuple(sorted(statuses)), limit)
        return list(self._cached(key, lambda: self.store.list_jobs(dataset_id=dataset_id, statuses=statuses,
                                                                   limit=limit)))
