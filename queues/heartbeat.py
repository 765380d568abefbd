"""A consumer's heartbeat: liveness for the Admin tab and stale-job pickup for resume.

Every consumer process (standalone or embedded in app.py) beats for each of its identities (queues.identity): a
background thread records a heartbeat in the store every HEARTBEAT_INTERVAL_S and re-queues running jobs whose
worker has stopped beating (killed, crashed, machine gone), so they resume from their last committed batch.

A consumer that exits cleanly removes its own row. One that was killed leaves it: past the missed-heartbeat window
(STALE_AFTER_S) the Admin tab lists it as gone (worker_gone), and after GONE_ROW_KEPT_S the heartbeat of any live
consumer deletes it. The heartbeat does that, rather than the app's start or the Admin refresh, because it is the one
writer of worker rows: it runs wherever rows appear (consumers on other machines sharing a PostgreSQL store, with no
app process at all), already writes from a background thread (no page timer waits on a DELETE; page timers only
read, through ui.shared_reads), and a long-running app would otherwise keep them until its next restart. It deletes
on its first beat (so a consumer's start cleans up) and then at most once every PRUNE_EVERY_S.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable

from queues.config import HEARTBEAT_INTERVAL_S, STALE_AFTER_S
from queues.identity import WorkerIdentity

log = logging.getLogger(__name__)

GONE_ROW_KEPT_S = 24 * 3600.0  # a dead consumer stays listed (as gone) this long: time to notice it, then it goes
PRUNE_EVERY_S = 3600.0  # how often each consumer's heartbeat deletes rows older than that


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worker_is_dead(worker_id: str | None, live_workers: dict[str, object]) -> bool:
    """A job's worker is dead when it no longer beats (not in live_workers: worker id -> store Worker row), or when
    it beat recently from this host under a pid that has since exited (killed: no need to wait for staleness)."""
    worker = live_workers.get(worker_id) if worker_id else None
    if worker is None:
        return True
    return worker.host == socket.gethostname() and not _pid_alive(worker.pid)


def worker_gone(worker, now: float | None = None) -> bool:
    """No heartbeat within the missed-heartbeat window: the window after which jobs are handed to other workers."""
    return (time.time() if now is None else now) - worker.heartbeat_at > STALE_AFTER_S


def remove_gone_workers(store) -> int:
    """Delete the rows of workers that have not beaten for GONE_ROW_KEPT_S; returns how many."""
    removed = store.remove_workers_older_than(GONE_ROW_KEPT_S)
    if removed:
        log.info("removed %d worker row(s) without a heartbeat for a day", removed)
    return removed


class Heartbeat(threading.Thread):
    """Beats for every identity of this process and hands each queue to `requeue` (which re-queues the jobs of
    workers that died), until stop(). Each beat also reports the models verified in this consumer's own model
    folder (model_dir), which the Admin tab shows per consumer: consumers on other machines fetch their own."""

    def __init__(self, store, identities: list[WorkerIdentity], requeue: Callable[[str], list[int]],
                 model_dir: str | os.PathLike | None = None) -> None:
        super().__init__(name="sam2-heartbeat", daemon=True)
        self.store = store
        self.identities = identities
        self.requeue = requeue
        self.model_dir = model_dir
        self._stop_event = threading.Event()
        self._pruned_at: float | None = None  # time.monotonic() of the last remove_gone_workers

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self.beat_once()
            except Exception:  # a locked or briefly unreachable store must not kill the heartbeat for good
                log.exception("heartbeat failed; retrying in %.0f s", HEARTBEAT_INTERVAL_S)
            self._stop_event.wait(HEARTBEAT_INTERVAL_S)
        for identity in self.identities:
            self.store.remove_worker(identity.worker_id)

    def beat_once(self) -> None:
        models = None
        if self.model_dir is not None:
            from sam2_tracking.models.files import verified_models

            models = verified_models(self.model_dir)  # a directory listing and a small JSON read per model
        for identity in self.identities:
            self.store.record_heartbeat(
                identity.worker_id, identity.queue, identity.host, identity.pid, identity.device,
                identity.current_job_id, models=models,
            )
        for identity in self.identities:
            self.requeue(identity.queue)
        if self._pruned_at is None or time.monotonic() - self._pruned_at >= PRUNE_EVERY_S:
            remove_gone_workers(self.store)
            self._pruned_at = time.monotonic()

    def stop(self) -> None:
        self._stop_event.set()
