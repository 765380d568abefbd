"""The interface between the store and its two backends (huey's storage shape: one small documented contract, each
backend a short sibling module): sqlite.py (embedded, the laptop default) and postgres.py (several machines,
SAM2T_DATABASE_URL). The backends import this module; the store picks one of them (core.open_backend), so no
backend imports the code that chooses among them.

A backend gives transactions:

    with backend.write() as conn: ...   # one write transaction: commits on exit, rolls back on an exception
    with backend.read() as conn: ...    # one read snapshot; it never waits for a writer (see each backend)
    backend.close()

and `conn` (a Connection below) runs the store's SQL. Statements are written once, in the subset both engines run
the same way: `:name` parameters passed as a dict (sqlite3 binds them itself; PostgreSQL compiles them through
SQLAlchemy's text()), `INSERT ... ON CONFLICT ... DO UPDATE/NOTHING`, `RETURNING`, 0/1 flag columns. What differs
lives only in the backend classes: row-lock suffixes (`for_update`, `for_share`), the migration lock, and the
SQLAlchemy dialect the schema's DDL is compiled for.

Lock order, so writers never deadlock on PostgreSQL: the dataset row first (FOR UPDATE for a person's save, an
import or an undo; FOR SHARE for a job's batch or a new job, so batches of several jobs run together), then the job
row, then features. On SQLite the file's write lock (BEGIN IMMEDIATE) already serialises writers, so both suffixes
are empty there.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

POSTGRES_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...
    def fetchall(self) -> list: ...
    def __iter__(self) -> Iterator: ...


class Connection(Protocol):
    """One transaction's connection, as store code sees it."""

    dialect: str  # "sqlite" or "postgresql": for messages and tests, never for branching in shared code
    for_update: str  # appended to a SELECT that decides a write: holds the rows until commit
    for_share: str  # the same, against for_update only

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> Cursor: ...
    def executemany(self, sql: str, rows: Iterable[Mapping[str, Any]]) -> None: ...
    def ddl(self, element: Any) -> str:
        """A SQLAlchemy DDL element (CreateTable, CreateIndex, a column) compiled for this backend's dialect."""
    def lock_for_migration(self) -> None:
        """Make concurrent openers of an old store wait for this one's migration (inside its write transaction)."""


class Backend(Protocol):
    dialect: str
    path: Path | None  # the SQLite file; None for a server database
    location: str  # what to call it in messages (a URL without its password)

    def write(self) -> AbstractContextManager[Connection]: ...
    def read(self) -> AbstractContextManager[Connection]: ...
    def close(self) -> None: ...


def is_database_url(location: object) -> bool:
    """True for a PostgreSQL URL, False for a SQLite file path."""
    return isinstance(location, str) and location.startswith(POSTGRES_SCHEMES)


def redact_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def compile_ddl(element: Any, dialect: Any) -> str:
    """A SQLAlchemy DDL element (or a Column: its specification, as ALTER TABLE ... ADD COLUMN takes it) as SQL."""
    import sqlalchemy as sa

    if isinstance(element, sa.Column):
        return dialect.ddl_compiler(dialect, None).get_column_specification(element)
    return str(element.compile(dialect=dialect)).strip()

