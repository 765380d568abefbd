"""The store's SQLite schema as an ordered list of migrations; `migrate` brings any older file up to date.

Append new migrations to MIGRATIONS, never edit one that has shipped: a file's schema_version says how many ran.
Column order matters a little: small columns come before the mask text so scans that only need the small ones
(track begin/end, frame lists) do not read the mask overflow pages.
"""

from __future__ import annotations

import sqlite3

MIGRATION_1 = """
CREATE TABLE datasets (
    dataset_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    path TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('video', 'images')),
    frame_count INTEGER NOT NULL CHECK (frame_count >= 0),
    fps REAL NOT NULL,
    width INTEGER NOT NULL CHECK (width > 0),
    height INTEGER NOT NULL CHECK (height > 0),
    revision INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE INDEX datasets_path ON datasets (path);

CREATE TABLE tracks (
    track_id INTEGER PRIMARY KEY,
    dataset_id INTEGER NOT NULL REFERENCES datasets (dataset_id) ON DELETE CASCADE,
    confidence_pairs TEXT NOT NULL,
    attributes TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX tracks_dataset ON tracks (dataset_id);

CREATE TABLE jobs (
    job_id INTEGER PRIMARY KEY,
    dataset_id INTEGER NOT NULL REFERENCES datasets (dataset_id) ON DELETE CASCADE,
    spec_json TEXT NOT NULL,
    queue TEXT NOT NULL,
    start_frame_idx INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    frames_done INTEGER NOT NULL DEFAULT 0,
    frames_total INTEGER NOT NULL,
    fps REAL,
    eta_s REAL,
    current_frame_idx INTEGER,
    last_committed_frame_idx INTEGER,
    committed_forward_idx INTEGER,
    committed_backward_idx INTEGER,
    notify_frame_idx INTEGER,
    notify_frames_done INTEGER,
    notify_percent REAL,
    notify_preview_jpeg BLOB,
    notify_preview_path TEXT,
    notify_at REAL,
    notify_frames_total INTEGER,
    notifications_count INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    worker TEXT,
    resumed_count INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    huey_task_id TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    heartbeat_at REAL,
    undone_at REAL
);
CREATE INDEX jobs_dataset ON jobs (dataset_id, job_id);
CREATE INDEX jobs_status ON jobs (status);

CREATE TABLE features (
    track_id INTEGER NOT NULL REFERENCES tracks (track_id) ON DELETE CASCADE,
    frame_idx INTEGER NOT NULL,
    present INTEGER NOT NULL,
    keyframe INTEGER NOT NULL,
    job_id INTEGER REFERENCES jobs (job_id) ON DELETE SET NULL,
    score REAL,
    x1 REAL, y1 REAL, x2 REAL, y2 REAL,
    clicks TEXT,
    attributes TEXT,
    mask_height INTEGER,
    mask_width INTEGER,
    mask_counts TEXT,
    PRIMARY KEY (track_id, frame_idx)
) WITHOUT ROWID;

-- What each job replaced, one row per (track, frame) it wrote, so undo restores exactly that.
-- prior IS NULL: there was no feature before the job wrote one.
CREATE TABLE job_changes (
    job_id INTEGER NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
    track_id INTEGER NOT NULL REFERENCES tracks (track_id) ON DELETE CASCADE,
    frame_idx INTEGER NOT NULL,
    prior TEXT,
    PRIMARY KEY (job_id, track_id, frame_idx)
) WITHOUT ROWID;

-- Frames whose results a job has committed (all its tracks at once): the exactly-once record for resume.
CREATE TABLE job_frames (
    job_id INTEGER NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
    frame_idx INTEGER NOT NULL,
    PRIMARY KEY (job_id, frame_idx)
) WITHOUT ROWID;

CREATE TABLE workers (
    worker_id TEXT PRIMARY KEY,
    queue TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    device TEXT NOT NULL,
    current_job_id INTEGER,
    started_at REAL NOT NULL,
    heartbeat_at REAL NOT NULL
);

CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE models (
    name TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    checkpoint_url TEXT NOT NULL,
    is_default INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    size INTEGER,
    sha256 TEXT,
    progress_bytes INTEGER,
    total_bytes INTEGER,
    error TEXT,
    updated_at REAL NOT NULL
);
"""

# Who started each job: the login name, or an anonymous id when logins are off. NULL on jobs from before
# ownership (only the admin may act on those).
MIGRATION_2 = """
ALTER TABLE jobs ADD COLUMN owner TEXT;
CREATE INDEX jobs_owner ON jobs (owner, job_id);
"""

# A large import writes its tracks into a hidden staging dataset in bounded transactions, then swaps them into
# the real one in a short transaction (see exchange.py): staging datasets are never listed.
MIGRATION_3 = """
ALTER TABLE datasets ADD COLUMN staging INTEGER NOT NULL DEFAULT 0;
"""

# The models each consumer holds, verified, in its own model folder (JSON list of names), sent with its heartbeat:
# consumers on other machines fetch models themselves, so the Admin tab shows what each one has.
MIGRATION_4 = """
ALTER TABLE workers ADD COLUMN models TEXT;
"""

MIGRATIONS: list[str] = [MIGRATION_1, MIGRATION_2, MIGRATION_3, MIGRATION_4]
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the migrations this file lacks, in one IMMEDIATE transaction so concurrent openers wait rather than race.

    Returns the schema version. The connection must be in autocommit mode (isolation_level=None).
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        version = row[0] if row else 0
        if row is None:
            conn.execute("INSERT INTO schema_version (version) VALUES (0)")
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"the store file has schema version {version} but this code knows only up to {SCHEMA_VERSION}: "
                "upgrade the app, or point it at another data directory"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            # executescript would COMMIT our transaction; run the statements one by one instead.
            for statement in _split_statements(script):
                conn.execute(statement)
            conn.execute("UPDATE schema_version SET version = ?", (number,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return SCHEMA_VERSION


def _split_statements(script: str) -> list[str]:
    statements, current = [], []
    for line in script.splitlines():
        if line.strip().startswith("--"):
            continue
        current.append(line)
        joined = "\n".join(current)
        if sqlite3.complete_statement(joined):
            statements.append(joined.strip())
            current = []
    if "".join(current).strip():
        raise ValueError(f"incomplete SQL statement in migration: {' '.join(current)[:80]}")
    return statements
