"""Container health check for a consumer: exit 0 when a consumer on this host serves QUEUE and beat recently.

    python -m queues.healthcheck gpu

A consumer has no HTTP port, but it beats a heartbeat into the store every HEARTBEAT_INTERVAL_S; the same heartbeat
that the app uses to hand a dead worker's job to another is the honest answer to "is this container working". The
host name is the container's own (Docker sets it), so a healthy consumer elsewhere does not make this one healthy.
"""

from __future__ import annotations

import socket
import sys

from queues.config import STALE_AFTER_S, get_store
from sam2_tracking.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m queues.healthcheck QUEUE", file=sys.stderr)
        return 2
    queue = args[0]
    host = socket.gethostname()
    workers = [w for w in get_store(load_settings()).list_workers(queue=queue, max_age_s=STALE_AFTER_S)
               if w.host == host]
    if not workers:
        print(f"no consumer on {host} has beaten for queue {queue!r} in the last {STALE_AFTER_S:.0f} s",
              file=sys.stderr)
        return 1
    print(", ".join(f"{w.worker_id} on {w.device}" for w in workers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
