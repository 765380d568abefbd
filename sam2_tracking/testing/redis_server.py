"""A real redis-server on a free loopback port, for the tests that run queues over Redis."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

from sam2_tracking.testing import MissingToolError
from sam2_tracking.testing.wait import wait_for


@contextlib.contextmanager
def running_redis(workdir: Path) -> Iterator[str]:
    """Start redis-server (no persistence) in workdir and yield its URL; MissingToolError if it is not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise MissingToolError("redis-server is not installed: bash tests/run_all.sh installs it (Debian package "
                          "redis-server)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        import redis

        client = redis.Redis(host="127.0.0.1", port=port)
        wait_for(lambda: _answers(client), 20, "redis-server to answer")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _answers(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False
