"""Schema version 5's migration converts the rows of a version 4 store: progress notes and stop reasons move from a
job's `error` to its `message` (failures keep theirs), models installed from uploads get `source = upload` instead of
the "upload" sentinel in their config and URL columns, and the model download cancel tokens leave the settings table
(cancels are counted on the model row now). On a real version 4 SQLite file (the version 4 app's own DDL, below), and
on both backends from a store taken back to the version 4 shape."""

from __future__ import annotations

import sqlite3

import pytest

from sam2_tracking.states import JobState, SourceKind
from sam2_tracking.store import SCHEMA_VERSION, open_store, spec_to_json
from sam2_tracking.types import JobSpec

# The DDL of the version 4 app (git show 3887872:sam2_tracking/store/schema.py, migrations 1 to 4), as it made files.
V4_DDL = """
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
CREATE TABLE job_changes (
    job_id INTEGER NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
    track_id INTEGER NOT NULL REFERENCES tracks (track_id) ON DELETE CASCADE,
    frame_idx INTEGER NOT NULL,
    prior TEXT,
    PRIMARY KEY (job_id, track_id, frame_idx)
) WITHOUT ROWID;
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
ALTER TABLE jobs ADD COLUMN owner TEXT;
CREATE INDEX jobs_owner ON jobs (owner, job_id);
ALTER TABLE datasets ADD COLUMN staging INTEGER NOT NULL DEFAULT 0;
ALTER TABLE workers ADD COLUMN models TEXT;
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version (version) VALUES (4);
"""

# Rows as the version 4 app wrote them: (status, error) of jobs, and (name, config, url) of models.
V4_JOBS = [
    (JobState.RUNNING, "fetching model tiny onto gpu-1: 12 of 150 MB"),  # a progress note
    (JobState.CANCELLED, "stopped by admin: the video is being replaced"),  # a stop reason
    (JobState.FAILED, "could not fetch model 'tiny': HTTP 404"),  # a real failure
    (JobState.DONE, None),
]
V4_MODELS = [
    ("uploaded", "upload", "upload"),
    ("tiny", "configs/sam2.1/sam2.1_hiera_t.yaml", "https://example.org/tiny.pt"),
]


def build_v4_sqlite(path) -> None:
    """A store file exactly as the version 4 app created it, with no rows."""
    conn = sqlite3.connect(path)
    conn.executescript(V4_DDL)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.close()


def _insert_v4_rows(execute) -> None:
    """The version 4 rows, through execute(sql, params) of either a sqlite3 connection or a store connection."""
    execute("INSERT INTO datasets (dataset_id, name, path, kind, frame_count, fps, width, height, revision, created_at)"
            " VALUES (1, 'clip', '/c.mp4', 'video', 10, 30.0, 64, 48, 0, 1.0)", {})
    execute("INSERT INTO tracks (track_id, dataset_id, confidence_pairs) VALUES (1, 1, '[]')", {})
    spec = spec_to_json(JobSpec(1, (1,), 0, "tiny", "cpu"))
    for job_id, (status, error) in enumerate(V4_JOBS, start=1):
        execute("INSERT INTO jobs (job_id, dataset_id, spec_json, queue, start_frame_idx, status, frames_total,"
                " error, created_at) VALUES (:job_id, 1, :spec, 'cpu', 0, :status, 10, :error, 1.0)",
                {"job_id": job_id, "spec": spec, "status": status.value, "error": error})
    for name, config, url in V4_MODELS:
        execute("INSERT INTO models (name, config, checkpoint_url, is_default, status, updated_at)"
                " VALUES (:name, :config, :url, 0, 'ready', 1.0)", {"name": name, "config": config, "url": url})
    for key, value in (("model_download_cancel:tiny", '"3f2a"'), ("sam2_enabled", "true")):
        execute("INSERT INTO settings (key, value) VALUES (:key, :value)", {"key": key, "value": value})


def _check_converted(store) -> None:
    jobs = {job.job_id: job for job in store.list_jobs()}
    assert [(jobs[i].status, jobs[i].error, jobs[i].message) for i in sorted(jobs)] == [
        (JobState.RUNNING, None, V4_JOBS[0][1]),
        (JobState.CANCELLED, None, V4_JOBS[1][1]),
        (JobState.FAILED, V4_JOBS[2][1], None),
        (JobState.DONE, None, None),
    ]
    uploaded, tiny = store.get_model("uploaded"), store.get_model("tiny")
    assert (uploaded.source, uploaded.config, uploaded.checkpoint_url) == (SourceKind.UPLOAD, "", "")
    assert (tiny.source, tiny.checkpoint_url) == (SourceKind.URL, V4_MODELS[1][2])
    assert store.get_setting("model_download_cancel:tiny") is None and store.get_setting("sam2_enabled") is True
    with store._read() as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


def test_a_version_4_sqlite_file_is_converted(tmp_path):
    path = tmp_path / "store.db"
    build_v4_sqlite(path)
    conn = sqlite3.connect(path)
    _insert_v4_rows(conn.execute)
    conn.commit()
    conn.close()
    with open_store(path) as store:
        _check_converted(store)
        # The converted store works as a new one does: a cancel is counted on the model row.
        assert store.get_model("tiny").cancel_requests == 0
        assert store.request_model_cancel("tiny").cancel_requests == 1
    with open_store(path) as store:  # opening it again changes nothing
        _check_converted(store)


# What version 5 added, dropped again to take a new store back to the version 4 shape on either backend.
V5_COLUMNS = [("jobs", "message"), ("models", "source"), ("models", "cancel_requests")]


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_version_4_store_is_converted_on_both_backends(backend, tmp_path, request):
    location = tmp_path / "store.db" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    with open_store(location) as store, store._write() as conn:
        for table, column in V5_COLUMNS:
            conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        conn.execute("UPDATE schema_version SET version = 4")
        _insert_v4_rows(conn.execute)
    with open_store(location) as store:
        _check_converted(store)
