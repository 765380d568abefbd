"""A Huey consumer for one queue, as its own process or embedded in app.py.

    python -m queues.consumer NAME [--workers N] [--device auto|cpu|cuda|cuda:1|mps] [--feeder-threads N] [--compile]

It prints where it listens and on what device, beats a heartbeat into the store, and picks up jobs whose worker died.
One tracking job runs at a time per worker thread; on a GPU keep --workers 1 (the default) per card, and pin the
process to its card with CUDA_VISIBLE_DEVICES (sam2 keeps position encodings on the first visible GPU).
"""

from __future__ import annotations

import argparse
import functools
import sys

from huey import Huey
from huey.consumer import Consumer

from queues.catalogue import reset_stale_downloads
from queues.config import backend_label, get_store
from queues.dispatch import requeue_dead_workers_jobs
from queues.heartbeat import Heartbeat
from queues.identity import describe_device, register_identity
from queues.seed_preview import IDLE_POLL_MAX_S, POLL_S, preview_huey
from queues.tasks import huey_for
from sam2_tracking.logging_setup import setup_logging
from sam2_tracking.settings import Settings, load_settings

# Poll the queue at least every half second: the annotator is waiting for the job to start.
MAX_POLL_DELAY_S = 0.5


class QueueConsumer(Consumer):
    """Huey's consumer with thread workers. handle_signals: a standalone consumer stops on SIGINT/SIGTERM as Huey's
    does; one embedded in app.py, and the preview thread beside every consumer, leave signals to their host process
    (uvicorn's handlers, or the queue's own consumer)."""

    def __init__(self, huey: Huey, handle_signals: bool = False, **options) -> None:
        self.handle_signals = handle_signals
        super().__init__(huey, worker_type="thread", periodic=False, **options)

    def _set_signal_handlers(self) -> None:
        if self.handle_signals:
            super()._set_signal_handlers()


def default_device(queue: str) -> str:
    # The CPU queue means CPU even on a GPU machine: annotators pick 'cpu' to keep the card free.
    return "cpu" if queue == "cpu" else "auto"


def start_consumer(settings: Settings, queue: str, workers: int = 1, device: str | None = None,
                   embedded: bool = False, feeder_threads: int | None = None, compile_model: bool = False):
    """Start serving `queue` in this process; return (consumer, heartbeat, identity). The caller runs or stops
    them. feeder_threads: threads decoding frames ahead of the model (None: from the CPU count); compile_model:
    run SAM2 compiled (CUDA only; the first job of the process waits for the compilation)."""
    huey = huey_for(settings, queue)
    described = describe_device(device or default_device(queue))
    if compile_model and not described.startswith("cuda"):
        raise ValueError(f"--compile needs a CUDA GPU (torch.compile of SAM2 for the GPU); this consumer runs on "
                         f"{described}: drop --compile, or start it with --device cuda on a machine with a GPU")
    identity = register_identity(settings, queue, described, feeder_threads, compile_model)
    store = get_store(settings)  # open (and migrate) the store before the first task needs it
    reset_stale_downloads(settings, store)  # a killed consumer's download would show "downloading" forever
    consumer = QueueConsumer(huey, handle_signals=not embedded, workers=workers, max_delay=MAX_POLL_DELAY_S,
                             check_worker_health=True)
    heartbeat = Heartbeat(store, [identity], functools.partial(requeue_dead_workers_jobs, settings, store),
                          model_dir=settings.model_dir)
    heartbeat.beat_once()
    heartbeat.start()
    # Seed previews have their own small queue and thread here, sharing the model, never behind a job.
    preview_consumer = QueueConsumer(preview_huey(settings, queue)[0], workers=1, initial_delay=POLL_S, backoff=1.1,
                                     max_delay=IDLE_POLL_MAX_S, check_worker_health=False)
    preview_consumer.start()
    return consumer, heartbeat, identity


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m queues.consumer", description=__doc__.split("\n\n")[0])
    parser.add_argument("queue", help="queue name to serve, e.g. cpu or gpu")
    parser.add_argument("--workers", type=int, default=1, help="jobs run at once (default 1; 1 per GPU)")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N or mps (default: cpu for the "
                        "'cpu' queue, auto otherwise)")
    parser.add_argument("--feeder-threads", type=int, default=None, metavar="N",
                        help="threads decoding frames ahead of the model per job (default: half the CPUs, 1 to 8)")
    parser.add_argument("--compile", action="store_true",
                        help="run SAM2 compiled (sam2's SAM2VideoPredictorVOS, torch.compile): CUDA only; the first "
                        "job waits minutes for compilation, later ones run faster")
    args = parser.parse_args(argv)
    if args.feeder_threads is not None and args.feeder_threads < 1:
        parser.error(f"--feeder-threads must be at least 1, got {args.feeder_threads}")
    setup_logging()
    settings = load_settings()
    if args.queue not in settings.queue_names:
        parser.error(f"unknown queue {args.queue!r}; SAM2T_QUEUES lists {', '.join(settings.queue_names)}")
    try:
        consumer, heartbeat, identity = start_consumer(settings, args.queue, args.workers, args.device,
                                                       feeder_threads=args.feeder_threads, compile_model=args.compile)
    except ValueError as exc:
        parser.error(str(exc))
    print(f"consumer {identity.worker_id} listening on queue {args.queue!r} ({backend_label(settings)}), "
          f"device {identity.device}, store {settings.store_description}, models {settings.model_dir}", flush=True)
    try:
        consumer.run()
    finally:
        heartbeat.stop()
        heartbeat.join(timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
