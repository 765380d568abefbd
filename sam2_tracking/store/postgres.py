"""The PostgreSQL backend: one database shared by processes on several machines (SAM2T_DATABASE_URL).

SQLAlchemy (psycopg 3 driver) with a small connection pool; each transaction checks a connection out, and nothing in
this process serialises them: concurrent writers are ordered by row locks (see backend.py for the lock order), and
a read (REPEATABLE READ, one snapshot) never waits for a writer. The store's `:name` statements are compiled for
psycopg by SQLAlchemy's text() once each (cached), then run as the driver's own SQL: a batch commit runs a few
statements per frame, and SQLAlchemy's per-execution work on each would add to every frame's cost.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sam2_tracking.store.backend import compile_ddl, redact_url

_ADVISORY_LOCK_KEY = 0x5A2E_5701  # any constant: "the store's schema is being changed"


@lru_cache(maxsize=1024)
def _statement(sql: str) -> str:
    import sqlalchemy as sa
    from sqlalchemy.dialects.postgresql import psycopg

    return str(sa.text(sql).compile(dialect=psycopg.dialect()))


def _params(params: Mapping[str, Any] | None) -> dict:
    # Flags are SMALLINT here and psycopg sends a Python bool as boolean: store them as 0/1, as SQLite does.
    if not params:
        return {}
    return {key: int(value) if isinstance(value, bool) else value for key, value in params.items()}


class PostgresConnection:
    """One PostgreSQL transaction's connection, with the store's execute/executemany shape."""

    dialect = "postgresql"
    for_update = " FOR UPDATE"
    for_share = " FOR SHARE"

    def __init__(self, connection) -> None:
        self._connection = connection

    def execute(self, sql: str, params: Mapping[str, Any] | None = None):
        return self._connection.exec_driver_sql(_statement(sql), _params(params))

    def executemany(self, sql: str, rows: Iterable[Mapping[str, Any]]) -> None:
        rows = [_params(row) for row in rows]
        if rows:  # an empty list would run the statement once without parameters
            self._connection.exec_driver_sql(_statement(sql), rows)

    def ddl(self, element: Any) -> str:
        return compile_ddl(element, self._connection.dialect)

    def lock_for_migration(self) -> None:
        # Transaction-scoped: consumers starting together migrate one after the other.
        self.execute("SELECT pg_advisory_xact_lock(:key)", {"key": _ADVISORY_LOCK_KEY})


class PostgresBackend:
    """An engine (pool) for one database; `write()`/`read()` give one transaction each."""

    dialect = "postgresql"
    path = None

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        from sam2_tracking.store.migrations import migrate

        self.location = redact_url(url)
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
        # pre_ping: a consumer outlives database restarts; a dead pooled connection is replaced, not used. pool_size:
        # a process reads from several threads at once (handlers, lease checks, heartbeats) beside its writer, and a
        # connection beyond the pool is closed on return, so each read past it would pay a new connection.
        self.engine = sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
        self._closed = False
        try:
            with self.write() as conn:
                migrate(conn)  # versioned, under an advisory lock
        except BaseException:
            self.engine.dispose()
            raise

    @contextmanager
    def write(self) -> Iterator[PostgresConnection]:
        # READ COMMITTED plus row locks: an UPDATE ... WHERE re-checks its condition after waiting on a lock, and
        # the reads that decide a write take FOR UPDATE (see backend.py).
        self._check_open()
        with self.engine.begin() as connection:
            yield PostgresConnection(connection)

    @contextmanager
    def read(self) -> Iterator[PostgresConnection]:
        # REPEATABLE READ: several queries see one snapshot, as SQLite's read transaction does.
        self._check_open()
        with self.engine.connect() as connection:
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
            with connection.begin():
                yield PostgresConnection(connection)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"the store {self.location} is closed")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.engine.dispose()
