"""A consumer's heartbeat: liveness for the Admin tab and stale-job pickup for resume.

Every consumer process (standalone or embedded in app.py) beats for each of its identities (queues.identity): a
background thread records a heartbeat in the store every HEARTBEAT_INTERVAL_S and re-queues running jobs whose
worker has stopped beating (killed, crashed, machine gone), so they resume from their last committed batch.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable

from queues.config import HEARTBEAT_INTERVAL_S
from queues.identity import WorkerIdentity

log = logging.getLogger(__name__)


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

    def stop(self) -> None:
        self._stop_event.set()
