"""The store's transactions plus the small tables: datasets, settings, the model catalogue and workers.

open_backend picks the backend from the location (sqlite.py or postgres.py, behind backend.py's interface) and
it gives the transactions; past that choice nothing here knows which one it is.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from sam2_tracking.states import ModelState, SourceKind
from sam2_tracking.store.backend import Backend, Connection, is_database_url
from sam2_tracking.store.records import DATASET_KINDS, Dataset, ModelRecord, NotFound, Worker

# How long a SQLite writer waits for another process's write transaction (a batch commit, an import's chunk).
BUSY_TIMEOUT_S = 30.0


def open_backend(location: str | os.PathLike, busy_timeout_s: float) -> Backend:
    """The backend for a SQLite file path or a postgresql:// URL, its schema created or migrated."""
    if is_database_url(location):
        from sam2_tracking.store.postgres import PostgresBackend

        return PostgresBackend(str(location))
    from sam2_tracking.store.sqlite import SqliteBackend

    return SqliteBackend(Path(location), busy_timeout_s)


class StoreCore:
    """Transactions, datasets, settings, models and workers. See Store for the whole API."""

    def __init__(self, path: str | os.PathLike, busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        self._backend = open_backend(path, busy_timeout_s)
        self.path = self._backend.path  # None for a PostgreSQL database
        self.location = self._backend.location  # the file, or the URL without its password

    @property
    def dialect(self) -> str:
        """"sqlite" or "postgresql"."""
        return self._backend.dialect

    # ---- plumbing ---------------------------------------------------------------------------------------------

    def close(self) -> None:
        self._backend.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One write transaction: everything inside commits together or not at all. Writers queue for each other;
        readers never wait for them."""
        with self._backend.write() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A read transaction, so several queries see one consistent snapshot even while a consumer commits."""
        with self._backend.read() as conn:
            yield conn

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
                " VALUES (:name, :path, :kind, :frame_count, :fps, :width, :height, 0, :now) RETURNING dataset_id",
                {"name": name, "path": str(path), "kind": kind, "frame_count": int(frame_count), "fps": float(fps),
                 "width": int(width), "height": int(height), "now": time.time()},
            ).fetchone()[0]
            return dataset_row(conn, dataset_id)

    def get_dataset(self, dataset_id: int) -> Dataset:
        with self._read() as conn:
            return dataset_row(conn, dataset_id)

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
                f"SELECT {_DATASET_COLUMNS} FROM datasets WHERE path = :path AND staging = 0"
                " ORDER BY dataset_id DESC LIMIT 1",
                {"path": str(path)},
            ).fetchone()
        return None if row is None else Dataset(*row)

    def get_revision(self, dataset_id: int) -> int:
        with self._read() as conn:
            return dataset_row(conn, dataset_id).revision

    # ---- settings ---------------------------------------------------------------------------------------------

    def get_setting(self, key: str, default=None):
        with self._read() as conn:
            row = conn.execute("SELECT value FROM settings WHERE key = :key", {"key": key}).fetchone()
        return default if row is None else json.loads(row[0])

    def set_setting(self, key: str, value) -> None:
        text = json.dumps(value)  # fails here, before the write, if the value is not JSON-able
        with self._write() as conn:
            conn.execute(
                "INSERT INTO settings (key, value) VALUES (:key, :value)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                {"key": key, "value": text},
            )

    # ---- model catalogue --------------------------------------------------------------------------------------

    def upsert_model(
        self,
        name: str,
        config: str,
        checkpoint_url: str,
        is_default: bool,
        status: ModelState | str,
        size: int | None = None,
        sha256: str | None = None,
        progress_bytes: int | None = None,
        total_bytes: int | None = None,
        error: str | None = None,
        source: SourceKind | str = SourceKind.URL,
    ) -> ModelRecord:
        """Add a catalogue entry or replace one (its cancel_requests count is kept)."""
        values = {"name": name, "config": config, "checkpoint_url": checkpoint_url, "is_default": int(bool(is_default)),
                  "status": _model_state(status).value, "size": size, "sha256": sha256,
                  "progress_bytes": progress_bytes, "total_bytes": total_bytes, "error": error,
                  "source": SourceKind(source).value, "updated_at": time.time()}
        columns = ", ".join(values)
        with self._write() as conn:
            conn.execute(
                f"INSERT INTO models ({columns}) VALUES ({', '.join(':' + c for c in values)})"
                " ON CONFLICT (name) DO UPDATE SET "
                + ", ".join(f"{column} = excluded.{column}" for column in values if column != "name"),
                values,
            )
            return _model_row(conn, name)

    def update_model(self, name: str, **fields) -> ModelRecord:
        """Change some columns of a catalogue entry (e.g. status and progress_bytes during a download)."""
        allowed = {"config", "checkpoint_url", "is_default", "status", "size", "sha256", "progress_bytes",
                   "total_bytes", "error", "source"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"update_model: unknown field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        if "status" in fields:
            fields["status"] = _model_state(fields["status"]).value
        if "source" in fields:
            fields["source"] = SourceKind(fields["source"]).value
        with self._write() as conn:
            _model_row(conn, name)
            if fields:
                assignments = ", ".join(f"{column} = :{column}" for column in fields)
                conn.execute(f"UPDATE models SET {assignments}, updated_at = :updated_at WHERE name = :name",
                             {**fields, "updated_at": time.time(), "name": name})
            return _model_row(conn, name)

    def request_model_cancel(self, name: str) -> ModelRecord:
        """Count a request to cancel the model's download: a running download stops when the count differs from the
        one it read when it started, so a request aimed at a download that had already ended never stops a later
        one (and no clocks of different machines are compared)."""
        with self._write() as conn:
            _model_row(conn, name)
            conn.execute("UPDATE models SET cancel_requests = cancel_requests + 1 WHERE name = :name", {"name": name})
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
            if conn.execute("DELETE FROM models WHERE name = :name", {"name": name}).rowcount == 0:
                raise NotFound(f"model {name!r} is not in the catalogue")

    # ---- workers ----------------------------------------------------------------------------------------------

    def record_heartbeat(
        self, worker_id: str, queue: str, host: str, pid: int, device: str, current_job_id: int | None,
        models: Sequence[str] | None = None, at: float | None = None,
    ) -> None:
        """Record that the worker is alive. models: the models present and verified in its own model folder (None:
        not reported), shown per consumer in the Admin tab. at: the beat's time (default now; a test's old beat)."""
        now = time.time() if at is None else float(at)
        models_json = None if models is None else json.dumps(sorted(str(m) for m in models))
        with self._write() as conn:
            conn.execute(
                "INSERT INTO workers (worker_id, queue, host, pid, device, current_job_id, started_at, heartbeat_at,"
                " models) VALUES (:worker_id, :queue, :host, :pid, :device, :job_id, :now, :now, :models)"
                " ON CONFLICT (worker_id) DO UPDATE SET"
                " queue = excluded.queue, host = excluded.host, pid = excluded.pid, device = excluded.device,"
                " current_job_id = excluded.current_job_id, heartbeat_at = excluded.heartbeat_at,"
                " models = excluded.models",
                {"worker_id": worker_id, "queue": queue, "host": host, "pid": int(pid), "device": device,
                 "job_id": current_job_id, "now": now, "models": models_json},
            )

    def list_workers(self, queue: str | None = None, max_age_s: float | None = 15.0) -> list[Worker]:
        """Workers whose last heartbeat is at most max_age_s old (all of them if max_age_s is None)."""
        sql = ("SELECT worker_id, queue, host, pid, device, current_job_id, started_at, heartbeat_at, models"
               " FROM workers")
        where, params = [], {}
        if queue is not None:
            where.append("queue = :queue")
            params["queue"] = queue
        if max_age_s is not None:
            where.append("heartbeat_at >= :since")
            params["since"] = time.time() - max_age_s
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._read() as conn:
            rows = conn.execute(sql + " ORDER BY queue, worker_id", params).fetchall()
        return [_worker_from_row(row) for row in rows]

    def remove_worker(self, worker_id: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM workers WHERE worker_id = :worker_id", {"worker_id": worker_id})

    def remove_workers_older_than(self, max_age_s: float) -> int:
        """Delete the rows of workers whose last heartbeat is more than max_age_s old: consumers that were killed or
        lost their machine, so never ran their clean exit's remove_worker. Returns how many rows went."""
        with self._write() as conn:
            return conn.execute("DELETE FROM workers WHERE heartbeat_at < :before",
                                {"before": time.time() - max_age_s}).rowcount


_DATASET_COLUMNS = "dataset_id, name, path, kind, frame_count, fps, width, height, revision"
_MODEL_COLUMNS = (
    "name, config, checkpoint_url, is_default, status, size, sha256, progress_bytes, total_bytes, error, updated_at,"
    " source, cancel_requests"
)


def dataset_row(conn: Connection, dataset_id: int, lock: bool = False, share: bool = False) -> Dataset:
    """The dataset's row. Inside a write on PostgreSQL, lock=True holds it against other writers until commit (so a
    revision read here is still the revision when this transaction writes); share=True only against lock=True
    (a job's batch against a person's save, not against other jobs' batches). See backend.py for the lock order."""
    suffix = conn.for_update if lock else conn.for_share if share else ""
    row = conn.execute(f"SELECT {_DATASET_COLUMNS} FROM datasets WHERE dataset_id = :dataset_id{suffix}",
                       {"dataset_id": dataset_id}).fetchone()
    if row is None:
        raise NotFound(f"dataset {dataset_id} does not exist (it may have been deleted): reload the dataset list")
    return Dataset(*row)


def _model_state(status: ModelState | str) -> ModelState:
    try:
        return ModelState(status)
    except ValueError:
        raise ValueError(f"model status must be one of {[s.value for s in ModelState]}, got {status!r}") from None


def _worker_from_row(row: tuple) -> Worker:
    *fields, models_json = row
    try:
        models = tuple(json.loads(models_json)) if models_json is not None else None
    except (TypeError, ValueError):
        models = None  # written by hand or damaged: shown as "not reported", never an error in the Admin tab
    return Worker(*fields, models=models)


def _model_from_row(row: tuple) -> ModelRecord:
    (name, config, url, is_default, status, size, sha256, progress, total, error, updated_at, source,
     cancel_requests) = row
    return ModelRecord(name, config, url, bool(is_default), ModelState(status), size, sha256, progress, total, error,
                       updated_at, SourceKind(source), cancel_requests)


def _model_row(conn: Connection, name: str) -> ModelRecord:
    row = conn.execute(f"SELECT {_MODEL_COLUMNS} FROM models WHERE name = :name", {"name": name}).fetchone()
    if row is None:
        raise NotFound(f"model {name!r} is not in the catalogue")
    return _model_from_row(row)
