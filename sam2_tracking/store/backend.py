"""The store's two backends behind one small connection interface: SQLite (embedded, the laptop default) and
PostgreSQL (several machines, SAM2T_DATABASE_URL).

The store's SQL is written once, in the subset both engines run the same way: `?` placeholders, `INSERT ... ON
CONFLICT ... DO UPDATE/NOTHING` instead of SQLite's `INSERT OR REPLACE/IGNORE`, `RETURNING` instead of `lastrowid`,
0/1 flag columns. What differs is only here:

- SQLite: the plain sqlite3 connection (a subclass that carries two class attributes), so the laptop pays nothing
  for the second backend. WAL, busy timeout and `BEGIN IMMEDIATE` write transactions, as before.
- PostgreSQL: SQLAlchemy (psycopg 3 driver) with a small connection pool; each transaction checks a connection out.
  Statements go through `exec_driver_sql` after `?` becomes psycopg's `%s`. Concurrent writers are serialised by
  row locks: `conn.for_update` is " FOR UPDATE" here (and "" on SQLite, where BEGIN IMMEDIATE already holds the
  file's write lock), appended by the store to the reads that decide a write (the dataset row for revisions, the
  job row for the lease). Lock order, so writers never deadlock: the dataset row first (FOR UPDATE for a person's
  save, an import or an undo; FOR SHARE for a job's batch or a new job, so batches of several jobs run together),
  then the job row, then features.

Interface a store method sees (`conn` inside `_write()` / `_read()`): `execute(sql, params) -> cursor` with
fetchone/fetchall/rowcount/iteration, `executemany(sql, rows)`, `dialect` ("sqlite"/"postgresql"), `for_update`,
`for_share`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache

POSTGRES_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")


def is_database_url(location) -> bool:
    """True for a PostgreSQL URL, False for a SQLite file path."""
    return isinstance(location, str) and location.startswith(POSTGRES_SCHEMES)


def redact_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


class SqliteConnection(sqlite3.Connection):
    """sqlite3's own connection (its speed unchanged), naming its dialect for the few places SQL differs."""

    dialect = "sqlite"
    for_update = ""  # BEGIN IMMEDIATE already holds the whole file's write lock
    for_share = ""


@lru_cache(maxsize=512)
def _to_pyformat(sql: str) -> str:
    # The store's SQL has no '?' or '%' inside string literals, so a plain replace is exact.
    return sql.replace("%", "%%").replace("?", "%s")


def _pg_params(params: Sequence) -> tuple:
    # Flags are SMALLINT on PostgreSQL and psycopg sends a Python bool as boolean: store them as 0/1, as SQLite does.
    return tuple(int(value) if isinstance(value, bool) else value for value in params)


class PostgresConnection:
    """One PostgreSQL transaction's connection, with sqlite3's execute/executemany shape."""

    dialect = "postgresql"
    for_update = " FOR UPDATE"
    for_share = " FOR SHARE"

    def __init__(self, connection) -> None:
        self._connection = connection

    def execute(self, sql: str, params: Sequence = ()):
        return self._connection.exec_driver_sql(_to_pyformat(sql), _pg_params(params))

    def executemany(self, sql: str, rows) -> None:
        rows = [_pg_params(row) for row in rows]
        if rows:  # an empty list would run the statement once without parameters
            self._connection.exec_driver_sql(_to_pyformat(sql), rows)


class PostgresBackend:
    """An engine (pool) for one database; `write()`/`read()` give one transaction each."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        from sam2_tracking.store.sql_schema import migrate_engine

        url = "postgresql+psycopg://" + url.split("://", 1)[1]
        # pre_ping: a consumer outlives database restarts; a dead pooled connection is replaced, not used.
        self.engine = sa.create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=8)
        try:
            migrate_engine(self.engine)  # versioned, under an advisory lock: consumers may start together
        except BaseException:
            self.engine.dispose()
            raise

    @contextmanager
    def write(self) -> Iterator[PostgresConnection]:
        # READ COMMITTED plus row locks: an UPDATE ... WHERE re-checks its condition after waiting on a lock, and
        # the reads that decide a write take FOR UPDATE (see the module docstring).
        with self.engine.begin() as connection:
            yield PostgresConnection(connection)

    @contextmanager
    def read(self) -> Iterator[PostgresConnection]:
        # REPEATABLE READ: several queries see one snapshot, as SQLite's read transaction does.
        with self.engine.connect() as connection:
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
            with connection.begin():
                yield PostgresConnection(connection)

    def close(self) -> None:
        self.engine.dispose()
