"""Versioned migrations, one runner for both backends: a new store is created from sql_schema's metadata at
SCHEMA_VERSION; an older one runs the steps it lacks, in its opener's write transaction, under the backend's
migration lock (SQLite's BEGIN IMMEDIATE, a PostgreSQL advisory lock), so processes starting together do not race.

Append a step for each new version, never edit one that has shipped: a store's schema_version says how many ran.
Steps add columns from the metadata (their DDL compiled for the backend), so the schema is spelled once.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from sam2_tracking.states import JobState, SourceKind
from sam2_tracking.store.backend import Connection
from sam2_tracking.store.sql_schema import SCHEMA_VERSION, datasets, jobs, metadata, models, schema_version, workers

# The settings keys where versions up to 4 kept model download cancel tokens (now models.cancel_requests).
_OLD_CANCEL_KEYS = "model_download_cancel:%"
# What versions up to 4 wrote into models.config and models.checkpoint_url for a model installed from uploads.
_OLD_UPLOAD_SENTINEL = "upload"


def _add_column(conn: Connection, column: sa.Column) -> None:
    conn.execute(f"ALTER TABLE {column.table.name} ADD COLUMN {conn.ddl(column)}")


def _v2_job_owners(conn: Connection) -> None:
    _add_column(conn, jobs.c.owner)
    conn.execute("CREATE INDEX jobs_owner ON jobs (owner, job_id)")


def _v3_staging_datasets(conn: Connection) -> None:
    _add_column(conn, datasets.c.staging)


def _v4_worker_models(conn: Connection) -> None:
    _add_column(conn, workers.c.models)


def _v5_messages_sources_cancels(conn: Connection) -> None:
    # A job's error held progress notes and stop reasons too: what is not a failure's message moves to `message`.
    _add_column(conn, jobs.c.message)
    conn.execute("UPDATE jobs SET message = error, error = NULL WHERE error IS NOT NULL AND status <> :failed",
                 {"failed": JobState.FAILED.value})
    _add_column(conn, models.c.source)
    conn.execute("UPDATE models SET source = :upload WHERE config = :old OR checkpoint_url = :old",
                 {"upload": SourceKind.UPLOAD.value, "old": _OLD_UPLOAD_SENTINEL})
    # The sentinel was no URL or config: an uploaded model has none to fetch from.
    conn.execute("UPDATE models SET checkpoint_url = '' WHERE checkpoint_url = :old", {"old": _OLD_UPLOAD_SENTINEL})
    conn.execute("UPDATE models SET config = '' WHERE config = :old", {"old": _OLD_UPLOAD_SENTINEL})
    _add_column(conn, models.c.cancel_requests)
    # Tokens compared by downloads that ran under the old version; none runs across an upgrade.
    conn.execute("DELETE FROM settings WHERE key LIKE :keys", {"keys": _OLD_CANCEL_KEYS})


# version -> the step that brings a store from version - 1 to it. Version 1 is the first metadata's tables; no store
# older than that exists. (PostgreSQL databases were first made at version 3.)
STEPS: dict[int, Callable[[Connection], None]] = {
    2: _v2_job_owners,
    3: _v3_staging_datasets,
    4: _v4_worker_models,
    5: _v5_messages_sources_cancels,
}
assert max(STEPS) == SCHEMA_VERSION, "a new schema version needs its migration step"


def migrate(conn: Connection) -> int:
    """Create or upgrade the store's tables inside `conn`'s write transaction; returns the schema version."""
    conn.lock_for_migration()
    conn.execute(conn.ddl(sa.schema.CreateTable(schema_version, if_not_exists=True)))
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    version = 0 if row is None else row[0]
    if row is None:
        conn.execute("INSERT INTO schema_version (version) VALUES (0)")
    if version > SCHEMA_VERSION:
        raise RuntimeError(
            f"the store has schema version {version} but this code knows only up to {SCHEMA_VERSION}: upgrade the "
            "app, or point it at another data directory or database"
        )
    if version == 0:
        for table in metadata.sorted_tables:
            if table is not schema_version:
                conn.execute(conn.ddl(sa.schema.CreateTable(table)))
                for index in sorted(table.indexes, key=lambda i: i.name):
                    conn.execute(conn.ddl(sa.schema.CreateIndex(index)))
    else:
        for number in range(version + 1, SCHEMA_VERSION + 1):
            STEPS[number](conn)
    conn.execute("UPDATE schema_version SET version = :version", {"version": SCHEMA_VERSION})
    return SCHEMA_VERSION
