"""The SQLite backend: one file, shared by the app and any number of consumer processes on one machine.

Reads never wait for a writer. The file is in WAL mode: a reader sees the last commit while a writer appends to the
log. Each read runs on a connection of its own, taken from a small pool (one per concurrent reader, so a per-frame
`job_lease` check never queues behind a batch commit or a large import); writes go through one writer connection,
serialised in this process by a lock and between processes by `BEGIN IMMEDIATE` (two writers queue on the busy
timeout instead of failing on a read-to-write upgrade). The hot path stays on the standard sqlite3 module: the store's
SQL uses `:name` parameters, which sqlite3 binds itself.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sam2_tracking.store.backend import compile_ddl

# Idle reader connections kept for reuse; more may be open at once while more threads read.
IDLE_READERS = 8


class SqliteConnection(sqlite3.Connection):
    """sqlite3's own connection (its speed unchanged), with the few attributes the store's interface adds."""

    dialect = "sqlite"
    for_update = ""  # BEGIN IMMEDIATE already holds the whole file's write lock
    for_share = ""

    def ddl(self, element: Any) -> str:
        from sqlalchemy.dialects import sqlite

        return compile_ddl(element, sqlite.dialect())

    def lock_for_migration(self) -> None:
        pass  # the write transaction's BEGIN IMMEDIATE is the lock


class SqliteBackend:
    """A SQLite file in WAL mode: a writer connection under a lock, and a pool of reader connections."""

    dialect = "sqlite"

    def __init__(self, path: Path, busy_timeout_s: float) -> None:
        from sam2_tracking.store.migrations import migrate

        self.path = path
        self.location = str(path)
        self._busy_timeout_s = busy_timeout_s
        path.parent.mkdir(parents=True, exist_ok=True)
        self._write_lock = threading.Lock()
        self._pool_lock = threading.Lock()
        self._idle: list[SqliteConnection] = []
        self._closed = False
        self._writer = self._connect()
        try:
            self._writer.execute("PRAGMA foreign_keys = ON")
            mode = self._writer.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise RuntimeError(f"could not switch {path} to WAL journal mode (got {mode!r})")
            # NORMAL is durable across application crashes in WAL mode; only an OS crash can lose the last commit.
            self._writer.execute("PRAGMA synchronous = NORMAL")
            with self.write() as conn:
                migrate(conn)
        except BaseException:
            self._writer.close()
            raise

    def _connect(self) -> SqliteConnection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a transaction is exactly what we say it is.
        conn = sqlite3.connect(str(self.path), timeout=self._busy_timeout_s, isolation_level=None,
                               check_same_thread=False, factory=SqliteConnection)
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
        return conn

    @contextmanager
    def write(self) -> Iterator[SqliteConnection]:
        with self._write_lock:
            self._check_open()
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[SqliteConnection]:
        conn = self._take_reader()
        try:
            conn.execute("BEGIN")  # deferred: the first SELECT takes a snapshot; WAL lets it read beside a writer
            try:
                yield conn
            finally:
                conn.execute("COMMIT")
        finally:
            self._return_reader(conn)

    def _take_reader(self) -> SqliteConnection:
        with self._pool_lock:
            self._check_open()
            if self._idle:
                return self._idle.pop()
        conn = self._connect()
        conn.execute("PRAGMA query_only = ON")  # a read must never write, whatever SQL it is given
        return conn

    def _return_reader(self, conn: SqliteConnection) -> None:
        with self._pool_lock:
            if not self._closed and len(self._idle) < IDLE_READERS:
                self._idle.append(conn)
                return
        conn.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"the store {self.location} is closed")

    def close(self) -> None:
        with self._pool_lock:
            if self._closed:
                return
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        with self._write_lock:  # a write in progress finishes first
            self._writer.close()

