"""The store's schema in SQLAlchemy Core: the one definition both backends are created from (SQLite compiles its DDL
from it, PostgreSQL too), and that migrations.py's versioned steps add columns from.

Column order matters a little on SQLite: small columns come before the mask text so scans that only need the small
ones (track begin/end, frame lists) do not read the mask overflow pages. A column added by a migration goes last,
where ALTER TABLE puts it, so a migrated store and a new one have the same tables.
"""

from __future__ import annotations

import sqlalchemy as sa

from sam2_tracking.states import JobState, SourceKind

# The version a new store is created at; migrations.py upgrades older ones step by step.
SCHEMA_VERSION = 5

# 64-bit ids on PostgreSQL; on SQLite only "INTEGER PRIMARY KEY" is the rowid (an auto-assigned id), BIGINT is not.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Int = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Real = sa.Float(precision=53)
Flag = sa.SmallInteger().with_variant(sa.Integer(), "sqlite")  # 0/1 columns


def _one_of(column: str, values) -> sa.CheckConstraint:
    return sa.CheckConstraint(f"{column} IN ({', '.join(repr(str(v)) for v in values)})")


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
    sa.Column("status", sa.Text, _one_of("status", JobState), nullable=False, server_default=JobState.QUEUED.value),
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
    sa.Column("owner", sa.Text),  # version 2
    # Version 5: progress notes and stop reasons (e.g. "fetching model ...", why an admin stopped it); `error` holds
    # real failures only.
    sa.Column("message", sa.Text),
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
    # Version 5: where the checkpoint came from (formerly an "upload" sentinel in config and checkpoint_url), and
    # how many times an admin asked to cancel its download (a running download stops when the count changes).
    sa.Column("source", sa.Text, nullable=False, server_default=SourceKind.URL.value),
    sa.Column("cancel_requests", Int, nullable=False, server_default=sa.text("0")),
)

schema_version = sa.Table("schema_version", metadata, sa.Column("version", Int, nullable=False))
