"""Who this consumer is, and its heartbeat: liveness for the Admin tab and stale-job pickup for resume.

Every consumer process (standalone or embedded in app.py) registers one WorkerIdentity per queue it serves. A
background thread records a heartbeat in the store every HEARTBEAT_INTERVAL_S and re-queues running jobs whose
worker has stopped beating (killed, crashed, machine gone), so they resume from their last committed batch.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

from queues.config import HEARTBEAT_INTERVAL_S
from sam2_tracking.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class WorkerIdentity:
    worker_id: str
    queue: str
    host: str
    pid: int
    device: str  # where the model runs, e.g. "cpu" or "cuda:0 NVIDIA H100"
    current_job_id: int | None = None
    feeder_threads: int | None = None  # threads decoding frames ahead of the model (None: from the CPU count)
    compile_model: bool = False  # run SAM2 compiled (sam2's SAM2VideoPredictorVOS); CUDA only


_identities: dict[str, WorkerIdentity] = {}
# The settings this process's consumers serve with (one set per process: the embedded consumers share the app's).
_served_settings: list[Settings] = []


def register_identity(settings: Settings, queue: str, device: str, feeder_threads: int | None = None,
                      compile_model: bool = False) -> WorkerIdentity:
    """Record that this process serves `queue` with `settings`; the tasks find both here when they run."""
    host = socket.gethostname()
    # The nonce makes the id unique per process start: a consumer restarted as PID 1 in a container (or under a
    # recycled pid) must not inherit its dead predecessor's id, or that predecessor's job would look alive forever.
    worker_id = f"{host}:{os.getpid()}:{queue}:{secrets.token_hex(4)}"
    identity = WorkerIdentity(worker_id, queue, host, os.getpid(), device, feeder_threads=feeder_threads,
                              compile_model=compile_model)
    _identities[queue] = identity
    _served_settings[:] = [settings]
    return identity


def served_settings() -> Settings:
    """The settings of this process's consumers (a task runs only in a process that started one)."""
    if not _served_settings:
        raise RuntimeError("no consumer was started in this process")
    return _served_settings[0]


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
    from sam2_tracking.models.catalogue import choose_device

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
