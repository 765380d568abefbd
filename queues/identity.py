"""Who this process's consumers are: one WorkerIdentity per queue served (worker id, host, pid, device, feeder threads,
compile flag), and the settings they serve with. Tasks find both here when they run (identity_for, served_settings);
queues.heartbeat beats each identity into the store.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass

from sam2_tracking.settings import Settings


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
