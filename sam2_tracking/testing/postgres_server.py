"""A real PostgreSQL server for tests: Debian's `postgresql` package, a fresh cluster in a temp folder, loopback only.

`initdb` and `postgres` refuse to run as root (CI runs as root), so as root the cluster belongs to the `postgres`
system user the Debian package creates and every server command runs through `runuser -u postgres`. The cluster lives
in a folder made with tempfile (pytest's tmp folders sit under a 0700 root-owned folder the postgres user cannot
enter). Authentication is `trust` on 127.0.0.1 only: the server listens on nothing else and no Unix socket is made
outside the cluster folder.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

SUPERUSER = "sam2t"


def find_pg_bin() -> Path | None:
    """The folder holding initdb/pg_ctl: PATH first, then Debian's versioned /usr/lib/postgresql/N/bin (newest)."""
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """One throwaway cluster. `url(dbname)` gives a SQLAlchemy/psycopg URL; `create_database()` a fresh database."""

    def __init__(self, pg_bin: Path) -> None:
        self.pg_bin = pg_bin
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="sam2t-pg-"))
        self.data_dir = self.root / "cluster"
        self.log_path = self.root / "server.log"
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:
            self._as_postgres = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.root, "postgres", "postgres")
        self._count = 0
        self._run(["initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8",
                   "--no-instructions", "--no-sync"])
        # fsync off: a test cluster never needs to survive a power cut, and it makes commits cheap on a shared disk.
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.root} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100")
        self._run(["pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_path), "-o", options, "-w", "-t", "60",
                   "start"])

    def _run(self, command: list[str]) -> None:
        argv = [*self._as_postgres, str(self.pg_bin / command[0]), *command[1:]]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=self.root)
        if result.returncode != 0:
            log = self.log_path.read_text() if self.log_path.exists() else ""
            raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr}{result.stdout}{log}")

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; returns its URL. Each test gets its own, so no test sees another's rows."""
        import psycopg

        self._count += 1
        name = f"{prefix}_{os.getpid()}_{self._count}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        try:
            self._run(["pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "30", "stop"])
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

