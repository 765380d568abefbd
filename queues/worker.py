"""Who this consumer is, and its heartbeat: liveness for the Admin tab and stale-job pickup for resume.

Every consumer process (standalone or embedded in app.py) registers one WorkerIdentity per queue it serves. A
background thread records a heartbeat in the store every HEARTBEAT_INTERVAL_S and re-queues running jobs whose
worker has stopped beating (killed, crashed, machine gone), so they resume from their last committed batch.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass

from sam2_tracking.settings import Settings

HEARTBEAT_INTERVAL_S = 2.0
# A worker is dead after this long without a heartbeat; several intervals, so a busy machine is not declared dead.
STALE_AFTER_S = 10.0

log = logging.getLogger(__name__)


@dataclass
class WorkerIdentity:
    worker_id: str
    queue: str
    host: str
    pid: int
    device: str  # where the model runs, e.g. "cpu" or "cuda:0 NVIDIA H100"
    current_job_id: int | None = None


_identities: dict[str, WorkerIdentity] = {}


def register_identity(queue: str, device: str) -> WorkerIdentity:
    host = socket.gethostname()
    identity = WorkerIdentity(f"{host}:{os.getpid()}:{queue}", queue, host, os.getpid(), device)
    _identities[queue] = identity
    return identity


def identity_for(queue: str) -> WorkerIdentity:
    """The identity of this process's consumer on `queue` (registered when the consumer started)."""
    try:
        return _identities[queue]
    except KeyError:
        raise RuntimeError(f"no consumer for queue {queue!r} was started in this process") from None


def model_device(device: str) -> str:
    """The torch device string a job should use: 'cuda:0 NVIDIA H100' -> 'cuda:0'."""
    return device.split(" ", 1)[0]


def describe_device(requested: str) -> str:
    """Resolve 'auto'/'cuda'/'cpu'/'mps' to what this machine has, with the card's name for CUDA.

    Imports torch, so consumers call it once at start-up (after any fork), never the app's UI process.
    """
    from sam2_tracking.models import choose_device

    device = choose_device() if requested == "auto" else requested
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError("this consumer was asked for a CUDA device, but torch sees no GPU")
        index = torch.device(device).index or 0
        return f"cuda:{index} {torch.cuda.get_device_name(index)}"
    return device


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worker_is_dead(worker_id: str | None, live_worker_ids: set[str]) -> bool:
    """A job's worker is dead when it no longer beats, or when it ran on this host under a pid that has exited."""
    if not worker_id:
        return True
    if worker_id in live_worker_ids:
        host, pid, _queue = worker_id.rsplit(":", 2)
        return host == socket.gethostname() and not _pid_alive(int(pid))
    return True


class Heartbeat(threading.Thread):
    """Beats for every identity of this process and re-queues jobs whose worker died, until stop()."""

    def __init__(self, settings: Settings, identities: list[WorkerIdentity]) -> None:
        super().__init__(name="sam2-heartbeat", daemon=True)
        self.settings = settings
        self.identities = identities
        self._stop_event = threading.Event()

    def run(self) -> None:
        from queues.runner import get_store

        store = get_store(self.settings)
        while not self._stop_event.is_set():
            try:
                self.beat_once(store)
            except Exception:  # a locked or briefly unreachable store must not kill the heartbeat for good
                log.exception("heartbeat failed; retrying in %.0f s", HEARTBEAT_INTERVAL_S)
            self._stop_event.wait(HEARTBEAT_INTERVAL_S)
        for identity in self.identities:
            store.remove_worker(identity.worker_id)

    def beat_once(self, store) -> None:
        for identity in self.identities:
            store.record_heartbeat(
                identity.worker_id, identity.queue, identity.host, identity.pid, identity.device,
                identity.current_job_id,
            )
        for identity in self.identities:
            requeue_dead_workers_jobs(self.settings, store, identity.queue)

    def stop(self) -> None:
        self._stop_event.set()


def requeue_dead_workers_jobs(settings: Settings, store, queue: str) -> list[int]:
    """Put running jobs of `queue` whose worker is dead back on the queue; return their ids."""
    from queues.dispatch import send_tracking_task

    live_ids = {w.worker_id for w in store.list_workers(queue=queue, max_age_s=STALE_AFTER_S)}
    requeued = []
    for job in store.list_jobs(statuses=["running"], limit=1000):
        if job.queue != queue or not worker_is_dead(job.worker, live_ids):
            continue
        # The store flips running -> queued only if the job still names that worker, so two consumers that both
        # notice the dead worker re-queue the job once.
        if store.requeue_job(job.job_id, expected_worker=job.worker):
            log.warning("job %s: worker %s stopped; re-queued to resume from its last committed frame",
                        job.job_id, job.worker)
            send_tracking_task(settings, job.job_id, queue)
            requeued.append(job.job_id)
    return requeued

