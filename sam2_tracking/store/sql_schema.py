"""The store's schema in SQLAlchemy Core, one definition for SQLite and PostgreSQL: the first part of the PostgreSQL
backend (issue 11). The running store still uses schema.py's SQLite migrations; this module is what a PostgreSQL
database is created from, and tests/test_store_sql_schema.py holds it to schema.py column for column, so the two
cannot drift apart before the store itself moves over.

Versions: a PostgreSQL database is new, so it is created at the current SCHEMA_VERSION in one step; later migrations
are appended to LATER_MIGRATIONS as portable statements (Core DDL or plain ALTER TABLE), run by `migrate_engine` on
both backends. Concurrent openers take a transaction-scoped advisory lock on PostgreSQL, so two consumers starting at
once do not both create the tables (SQLite files keep using schema.py's migrate, under BEGIN IMMEDIATE).
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from sam2_tracking.store.schema import SCHEMA_VERSION

# 64-bit ids on PostgreSQL; on SQLite only "INTEGER PRIMARY KEY" is the rowid (an auto-assigned id), BIGINT is not.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Int = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Real = sa.Float(precision=53)
Flag = sa.SmallInteger().with_variant(sa.Integer(), "sqlite")  # 0/1 columns, as schema.py stores them

metadata = sa.MetaData()
_NO_ROWID = {"sqlite_with_rowid": False}

datasets = sa.Table(
    "datasets", metadata,
    sa.Column("dataset_id", Id, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, sa.CheckConstraint("kind IN ('video', 'images')"), nullable=False),
    sa.Column("frame_count", Int, sa.CheckConstraint("frame_count >= 0"), nullable=False),
    sa.Column("fps", Real, nullable=False),
    sa.Column("width", Int, sa.CheckConstraint("width > 0"), nullable=False),
    sa.Column("height", Int, sa.CheckConstraint("height > 0"), nullable=False),
    sa.Column("revision", Int, nullable=False, server_default=sa.text("0")),
    sa.Column("created_at", Real, nullable=False),
    sa.Column("staging", Flag, nullable=False, server_default=sa.text("0")),
    sa.Index("datasets_path", "path"),
)

tracks = sa.Table(
    "tracks", metadata,
    sa.Column("track_id", Id, primary_key=True),
    sa.Column("dataset_id", Int, sa.ForeignKey("datasets.dataset_id", ondelete="CASCADE"), nullable=False),
    sa.Column("confidence_pairs", sa.Text, nullable=False),
    sa.Column("attributes", sa.Text, nullable=False, server_default="{}"),
    sa.Index("tracks_dataset", "dataset_id"),
)

jobs = sa.Table(
    "jobs", metadata,
    sa.Column("job_id", Id, primary_key=True),
    sa.Column("dataset_id", Int, sa.ForeignKey("datasets.dataset_id", ondelete="CASCADE"), nullable=False),
    sa.Column("spec_json", sa.Text, nullable=False),
    sa.Column("queue", sa.Text, nullable=False),
    sa.Column("start_frame_idx", Int, nullable=False),
    sa.Column("status", sa.Text, sa.CheckConstraint(
        "status IN ('queued', 'running', 'done', 'failed', 'cancelled')"), nullable=False, server_default="queued"),
    sa.Column("frames_done", Int, nullable=False, server_default=sa.text("0")),
    sa.Column("frames_total", Int, nullable=False),
    sa.Column("fps", Real),
    sa.Column("eta_s", Real),
    sa.Column("current_frame_idx", Int),
    sa.Column("last_committed_frame_idx", Int),
    sa.Column("committed_forward_idx", Int),
    sa.Column("committed_backward_idx", Int),
    sa.Column("notify_frame_idx", Int),
    sa.Column("notify_frames_done", Int),
    sa.Column("notify_percent", Real),
    sa.Column("notify_preview_jpeg", sa.LargeBinary),
    sa.Column("notify_preview_path", sa.Text),
    sa.Column("notify_at", Real),
    sa.Column("notify_frames_total", Int),
    sa.Column("notifications_count", Int, nullable=False, server_default=sa.text("0")),
    sa.Column("error", sa.Text),
    sa.Column("worker", sa.Text),
    sa.Column("resumed_count", Int, nullable=False, server_default=sa.text("0")),
    sa.Column("cancel_requested", Flag, nullable=False, server_default=sa.text("0")),
    sa.Column("huey_task_id", sa.Text),
    sa.Column("created_at", Real, nullable=False),
    sa.Column("started_at", Real),
    sa.Column("finished_at", Real),
    sa.Column("heartbeat_at", Real),
    sa.Column("undone_at", Real),
    sa.Column("owner", sa.Text),
    sa.Index("jobs_dataset", "dataset_id", "job_id"),
    sa.Index("jobs_status", "status"),
    sa.Index("jobs_owner", "owner", "job_id"),
)

features = sa.Table(
    "features", metadata,
    sa.Column("track_id", Int, sa.ForeignKey("tracks.track_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("frame_idx", Int, primary_key=True),
    sa.Column("present", Flag, nullable=False),
    sa.Column("keyframe", Flag, nullable=False),
    sa.Column("job_id", Int, sa.ForeignKey("jobs.job_id", ondelete="SET NULL")),
    sa.Column("score", Real),
    sa.Column("x1", Real), sa.Column("y1", Real), sa.Column("x2", Real), sa.Column("y2", Real),
    sa.Column("clicks", sa.Text),
    sa.Column("attributes", sa.Text),
    sa.Column("mask_height", Int),
    sa.Column("mask_width", Int),
    sa.Column("mask_counts", sa.Text),
    **_NO_ROWID,
)

# What each job replaced, one row per (track, frame) it wrote, so undo restores exactly that (prior NULL: nothing).
job_changes = sa.Table(
    "job_changes", metadata,
    sa.Column("job_id", Int, sa.ForeignKey("jobs.job_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("track_id", Int, sa.ForeignKey("tracks.track_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("frame_idx", Int, primary_key=True),
    sa.Column("prior", sa.Text),
    **_NO_ROWID,
)

job_frames = sa.Table(
    "job_frames", metadata,
    sa.Column("job_id", Int, sa.ForeignKey("jobs.job_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("frame_idx", Int, primary_key=True),
    **_NO_ROWID,
)

workers = sa.Table(
    "workers", metadata,
    sa.Column("worker_id", sa.Text, primary_key=True),
    sa.Column("queue", sa.Text, nullable=False),
    sa.Column("host", sa.Text, nullable=False),
    sa.Column("pid", Int, nullable=False),
    sa.Column("device", sa.Text, nullable=False),
    sa.Column("current_job_id", Int),
    sa.Column("started_at", Real, nullable=False),
    sa.Column("heartbeat_at", Real, nullable=False),
    sa.Column("models", sa.Text),  # schema version 4
)

settings_table = sa.Table(
    "settings", metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

models = sa.Table(
    "models", metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("config", sa.Text, nullable=False),
    sa.Column("checkpoint_url", sa.Text, nullable=False),
    sa.Column("is_default", Flag, nullable=False, server_default=sa.text("0")),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("size", Int),
    sa.Column("sha256", sa.Text),
    sa.Column("progress_bytes", Int),
    sa.Column("total_bytes", Int),
    sa.Column("error", sa.Text),
    sa.Column("updated_at", Real, nullable=False),
)

schema_version = sa.Table("schema_version", metadata, sa.Column("version", Int, nullable=False))

# The first version a PostgreSQL database was created at; older ones never existed.
FIRST_POSTGRES_VERSION = 3


def _add_worker_models(conn: sa.Connection) -> None:
    conn.execute(sa.text("ALTER TABLE workers ADD COLUMN models TEXT"))


# Migrations after FIRST_POSTGRES_VERSION, each a function of a Connection, portable across both backends. A new
# database gets `metadata` (all of them) at once; one made by an older app runs the ones it lacks. Each equals the
# schema.py migration of the same number.
LATER_MIGRATIONS: dict[int, Callable[[sa.Connection], None]] = {4: _add_worker_models}
_ADVISORY_LOCK_KEY = 0x5A2E_5701  # any constant: "the store's schema is being changed"


def migrate_engine(engine: sa.Engine) -> int:
    """Create (or bring up to date) the store's tables on `engine` in one transaction; returns the schema version."""
    newest = max([SCHEMA_VERSION, *LATER_MIGRATIONS])
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY})
        if not sa.inspect(conn).has_table("schema_version"):
            metadata.create_all(conn)
            conn.execute(schema_version.insert().values(version=SCHEMA_VERSION))
        version = conn.execute(sa.select(schema_version.c.version)).scalar_one()
        if version > newest:
            raise RuntimeError(f"the database has schema version {version} but this code knows only up to {newest}: "
                               "upgrade the app, or point SAM2T_DATABASE_URL at another database")
        if version < FIRST_POSTGRES_VERSION:
            raise RuntimeError(f"the database has schema version {version}, older than any this code can upgrade "
                               f"({FIRST_POSTGRES_VERSION}); it was not made by this app")
        for number in sorted(n for n in LATER_MIGRATIONS if n > version):
            LATER_MIGRATIONS[number](conn)
            conn.execute(schema_version.update().values(version=number))
        return conn.execute(sa.select(schema_version.c.version)).scalar_one()
