"""The store's connection handling plus the small tables: datasets, settings, the model catalogue and workers.

Two backends (see backend.py): a SQLite file (below) or a PostgreSQL URL (a pooled engine, row locks). On SQLite,
one sqlite3 connection per Store, shared by Gradio's handler threads under a lock. Several processes (the app and
its consumers) open the same file: WAL lets readers run beside one writer, every write transaction starts with
BEGIN IMMEDIATE (so two writers queue on the busy timeout instead of failing on a read-to-write upgrade), and the
busy timeout is long enough to ride out another process's batch commit.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from sam2_tracking.store.backend import PostgresBackend, SqliteConnection, is_database_url, redact_url
from sam2_tracking.store.records import DATASET_KINDS, MODEL_STATUSES, Dataset, ModelRecord, NotFound, Worker
from sam2_tracking.store.schema import migrate

BUSY_TIMEOUT_S = 30.0


class StoreCore:
    """Connection, transactions, datasets, settings, models and workers. See Store for the whole API."""

    def __init__(self, path: str | os.PathLike, busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        self._lock = threading.RLock()
        self._closed = False
        self._postgres = None
        if is_database_url(path):
            # PostgreSQL: no file; `path` stays None and `location` names the database (without its password).
            self.path = None
            self.location = redact_url(path)
            self._postgres = PostgresBackend(path)
            return
        self.path = Path(path)
        self.location = str(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a transaction is exactly what we say it is.
        self._conn = sqlite3.connect(
            str(self.path), timeout=busy_timeout_s, isolation_level=None, check_same_thread=False,
            factory=SqliteConnection,
        )
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            self._conn.execute("PRAGMA foreign_keys = ON")
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise RuntimeError(f"could not switch {self.path} to WAL journal mode (got {mode!r})")
            # NORMAL is durable across application crashes in WAL mode; only an OS crash can lose the last commit.
            self._conn.execute("PRAGMA synchronous = NORMAL")
            migrate(self._conn)
        except BaseException:
            self._conn.close()
            raise

    @property
    def dialect(self) -> str:
        """"sqlite" or "postgresql"."""
        return "sqlite" if self._postgres is None else "postgresql"

    # ---- plumbing ---------------------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                if self._postgres is not None:
                    self._postgres.close()
                else:
                    self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: everything inside commits together or not at all."""
        with self._lock:
            self._check_open()
            if self._postgres is not None:
                with self._postgres.write() as conn:
                    yield conn
                return
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction, so several queries see one consistent snapshot even while a consumer commits."""
        with self._lock:
            self._check_open()
            if self._postgres is not None:
                with self._postgres.read() as conn:
                    yield conn
                return
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            finally:
                self._conn.execute("COMMIT")

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"the store {self.location} is closed")

    # ---- datasets ---------------------------------------------------------------------------------------------

    def add_dataset(
        self, name: str, path: str | os.PathLike, kind: str, frame_count: int, fps: float, width: int, height: int
    ) -> Dataset:
        if kind not in DATASET_KINDS:
            raise ValueError(f"dataset kind must be one of {DATASET_KINDS}, got {kind!r}")
        if frame_count < 0 or width <= 0 or height <= 0:
            raise ValueError(f"dataset {name!r}: bad size {width}x{height} or frame count {frame_count}")
        with self._write() as conn:
            dataset_id = conn.execute(
                "INSERT INTO datasets (name, path, kind, frame_count, fps, width, height, revision, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?) RETURNING dataset_id",
                (name, str(path), kind, int(frame_count), float(fps), int(width), int(height), time.time()),
            ).fetchone()[0]
            return _dataset_row(conn, dataset_id)

    def get_dataset(self, dataset_id: int) -> Dataset:
        with self._read() as conn:
            return _dataset_row(conn, dataset_id)

    def list_datasets(self) -> list[Dataset]:
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_DATASET_COLUMNS} FROM datasets WHERE staging = 0 ORDER BY dataset_id"
            ).fetchall()
        return [Dataset(*row) for row in rows]

    def find_dataset_by_path(self, path: str | os.PathLike) -> Dataset | None:
        """The most recently added dataset for this path, or None."""
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {_DATASET_COLUMNS} FROM datasets WHERE path = ? AND staging = 0"
                " ORDER BY dataset_id DESC LIMIT 1",
                (str(path),),
            ).fetchone()
        return None if row is None else Dataset(*row)

    def delete_dataset(self, dataset_id: int) -> None:
        """Delete a dataset with its tracks, features and jobs (the video file is left alone)."""
        with self._write() as conn:
            if conn.execute("DELETE FROM datasets WHERE dataset_id = ?", (dataset_id,)).rowcount == 0:
                raise NotFound(f"dataset {dataset_id} does not exist")

    def get_revision(self, dataset_id: int) -> int:
        with self._read() as conn:
            return _dataset_row(conn, dataset_id).revision

    # ---- settings ---------------------------------------------------------------------------------------------

    def get_setting(self, key: str, default=None):
        with self._read() as conn:
            row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set_setting(self, key: str, value) -> None:
        text = json.dumps(value)  # fails here, before the write, if the value is not JSON-able
        with self._write() as conn:
            conn.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, text),
            )

    # ---- model catalogue --------------------------------------------------------------------------------------

    def upsert_model(
        self,
        name: str,
        config: str,
        checkpoint_url: str,
        is_default: bool,
        status: str,
        size: int | None = None,
        sha256: str | None = None,
        progress_bytes: int | None = None,
        total_bytes: int | None = None,
        error: str | None = None,
    ) -> ModelRecord:
        if status not in MODEL_STATUSES:
            raise ValueError(f"model status must be one of {MODEL_STATUSES}, got {status!r}")
        with self._write() as conn:
            conn.execute(
                "INSERT INTO models (name, config, checkpoint_url, is_default, status, size, sha256, progress_bytes,"
                " total_bytes, error, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET config = excluded.config,"
                " checkpoint_url = excluded.checkpoint_url, is_default = excluded.is_default,"
                " status = excluded.status, size = excluded.size, sha256 = excluded.sha256,"
                " progress_bytes = excluded.progress_bytes, total_bytes = excluded.total_bytes,"
                " error = excluded.error, updated_at = excluded.updated_at",
                (name, config, checkpoint_url, int(bool(is_default)), status, size, sha256, progress_bytes,
                 total_bytes, error, time.time()),
            )
            return _model_row(conn, name)

    def update_model(self, name: str, **fields) -> ModelRecord:
        """Change some columns of a catalogue entry (e.g. status and progress_bytes during a download)."""
        allowed = {"config", "checkpoint_url", "is_default", "status", "size", "sha256", "progress_bytes",
                   "total_bytes", "error"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"update_model: unknown field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        if "status" in fields and fields["status"] not in MODEL_STATUSES:
            raise ValueError(f"model status must be one of {MODEL_STATUSES}, got {fields['status']!r}")
        with self._write() as conn:
            _model_row(conn, name)
            if fields:
                assignments = ", ".join(f"{column} = ?" for column in fields)
                conn.execute(
                    f"UPDATE models SET {assignments}, updated_at = ? WHERE name = ?",
                    (*fields.values(), time.time(), name),
                )
            return _model_row(conn, name)

    def get_model(self, name: str) -> ModelRecord:
        with self._read() as conn:
            return _model_row(conn, name)

    def list_models(self) -> list[ModelRecord]:
        with self._read() as conn:
            rows = conn.execute(f"SELECT {_MODEL_COLUMNS} FROM models ORDER BY name").fetchall()
        return [_model_from_row(row) for row in rows]

    def delete_model(self, name: str) -> None:
        with self._write() as conn:
            if conn.execute("DELETE FROM models WHERE name = ?", (name,)).rowcount == 0:
                raise NotFound(f"model {name!r} is not in the catalogue")

    # ---- workers ----------------------------------------------------------------------------------------------

    def record_heartbeat(
        self, worker_id: str, queue: str, host: str, pid: int, device: str, current_job_id: int | None,
        models: Sequence[str] | None = None,
    ) -> None:
        """Record that the worker is alive. models: the models present and verified in its own model folder (None:
        not reported), shown per consumer in the Admin tab."""
        now = time.time()
        models_json = None if models is None else json.dumps(sorted(str(m) for m in models))
        with self._write() as conn:
            conn.execute(
                "INSERT INTO workers (worker_id, queue, host, pid, device, current_job_id, started_at, heartbeat_at,"
                " models) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (worker_id) DO UPDATE SET"
                " queue = excluded.queue, host = excluded.host, pid = excluded.pid, device = excluded.device,"
                " current_job_id = excluded.current_job_id, heartbeat_at = excluded.heartbeat_at,"
                " models = excluded.models",
                (worker_id, queue, host, int(pid), device, current_job_id, now, now, models_json),
            )

    def list_workers(self, queue: str | None = None, max_age_s: float | None = 15.0) -> list[Worker]:
        """Workers whose last heartbeat is at most max_age_s old (all of them if max_age_s is None)."""
        sql = ("SELECT worker_id, queue, host, pid, device, current_job_id, started_at, heartbeat_at, models"
               " FROM workers")
        where, params = [], []
        if queue is not None:
            where.append("queue = ?")
            params.append(queue)
        if max_age_s is not None:
            where.append("heartbeat_at >= ?")
            params.append(time.time() - max_age_s)
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._read() as conn:
            rows = conn.execute(sql + " ORDER BY queue, worker_id", params).fetchall()
        return [_worker_from_row(row) for row in rows]

    def remove_worker(self, worker_id: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM workers WHERE worker_id = ?", (worker_id,))


_DATASET_COLUMNS = "dataset_id, name, path, kind, frame_count, fps, width, height, revision"
_MODEL_COLUMNS = (
    "name, config, checkpoint_url, is_default, status, size, sha256, progress_bytes, total_bytes, error, updated_at"
)


def _dataset_row(conn, dataset_id: int, lock: bool = False, share: bool = False) -> Dataset:
    """The dataset's row. Inside a write on PostgreSQL, lock=True holds it against other writers until commit (so a
    revision read here is still the revision when this transaction writes); share=True only against lock=True
    (a job's batch against a person's save, not against other jobs' batches). See backend.py for the lock order."""
    suffix = conn.for_update if lock else conn.for_share if share else ""
    row = conn.execute(f"SELECT {_DATASET_COLUMNS} FROM datasets WHERE dataset_id = ?{suffix}", (dataset_id,)).fetchone()
    if row is None:
        raise NotFound(f"dataset {dataset_id} does not exist (it may have been deleted): reload the dataset list")
    return Dataset(*row)


def _worker_from_row(row: tuple) -> Worker:
    *fields, models_json = row
    try:
        models = tuple(json.loads(models_json)) if models_json is not None else None
    except (TypeError, ValueError):
        models = None  # written by hand or damaged: shown as "not reported", never an error in the Admin tab
    return Worker(*fields, models=models)


def _model_from_row(row: tuple) -> ModelRecord:
    values = list(row)
    values[3] = bool(values[3])
    return ModelRecord(*values)


def _model_row(conn, name: str) -> ModelRecord:
    row = conn.execute(f"SELECT {_MODEL_COLUMNS} FROM models WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise NotFound(f"model {name!r} is not in the catalogue")
    return _model_from_row(row)
