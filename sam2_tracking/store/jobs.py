"""Tracking jobs' rows and their life: create, progress, cancel, claim (the lease a worker holds), lease checks and
finish. Their results (batches, undo) are in job_results.py."""

from __future__ import annotations

import time
from collections.abc import Sequence

from sam2_tracking.states import FINISHED_JOB_STATES, JobState, Lease
from sam2_tracking.store.backend import Connection
from sam2_tracking.store.core import dataset_row
from sam2_tracking.store.records import EditError, Job, JobNotification, NotFound, spec_from_json, spec_to_json
from sam2_tracking.store.rows import check_track_in_dataset
from sam2_tracking.types import JobSpec

_JOB_COLUMNS = (
    "job_id, dataset_id, spec_json, queue, status, frames_done, frames_total, fps, eta_s, current_frame_idx,"
    " last_committed_frame_idx, committed_forward_idx, committed_backward_idx, notify_frame_idx, notify_frames_done,"
    " notify_percent, notify_preview_jpeg, notify_preview_path, notify_at, notify_frames_total, notifications_count,"
    " error, worker, resumed_count, cancel_requested, huey_task_id, created_at, started_at, finished_at,"
    " heartbeat_at, undone_at, owner, message"
)

# Columns update_job may set directly; progress counters of committed frames are owned by write_job_batch.
UPDATABLE = {
    "status", "frames_total", "fps", "eta_s", "current_frame_idx", "error", "message", "worker", "resumed_count",
    "cancel_requested", "huey_task_id", "started_at", "finished_at", "heartbeat_at", "frames_done",
    "notifications_count",
}

# Parameters every job statement that compares states takes, so no state is spelled as a literal in SQL.
STATES = {f"state_{state.name.lower()}": state.value for state in JobState}
_NOT_FINISHED = "status NOT IN (:state_done, :state_failed, :state_cancelled)"


class LeaseLost(EditError):  # noqa: N818 - it is an event, not a mistake
    """The worker no longer holds the job (another worker took it over, or it ended): stop without touching it."""


def job_from_row(row: tuple) -> Job:
    (job_id, dataset_id, spec_json, queue, status, frames_done, frames_total, fps, eta_s, current_frame_idx,
     last_committed, forward_idx, backward_idx, n_frame, n_done, n_percent, n_jpeg, n_path, n_at, n_total, n_count,
     error, worker, resumed_count, cancel_requested, huey_task_id, created_at, started_at, finished_at, heartbeat_at,
     undone_at, owner, message) = row
    notification = None
    if n_frame is not None:
        notification = JobNotification(n_frame, n_done, n_percent, n_jpeg, n_path, n_at, n_total)
    return Job(
        job_id, dataset_id, spec_from_json(spec_json), queue, JobState(status), frames_done, frames_total, fps, eta_s,
        current_frame_idx, last_committed, forward_idx, backward_idx, notification, n_count, error, worker,
        resumed_count, bool(cancel_requested), huey_task_id, created_at, started_at, finished_at, heartbeat_at,
        undone_at, owner, message,
    )


def load_job(conn: Connection, job_id: int, lock: bool = False) -> Job:
    """The job's row; lock=True (inside a write) holds it until commit on PostgreSQL, so the lease (status, worker)
    checked here cannot change hands before this transaction's writes land."""
    row = conn.execute(
        f"SELECT {_JOB_COLUMNS} FROM jobs WHERE job_id = :job_id{conn.for_update if lock else ''}", {"job_id": job_id}
    ).fetchone()
    if row is None:
        raise NotFound(f"job {job_id} does not exist (its dataset may have been deleted)")
    return job_from_row(row)


def job_state(status: JobState | str) -> JobState:
    try:
        return JobState(status)
    except ValueError:
        raise ValueError(f"job status must be one of {[s.value for s in JobState]}, got {status!r}") from None


def _assignments(fields: dict) -> tuple[str, dict]:
    """`column = :column, ...` and its parameters; states and flags stored as the text and 0/1 they are."""
    params = {}
    for column, value in fields.items():
        if column == "status":
            value = job_state(value).value
        elif column == "cancel_requested":
            value = int(bool(value))
        params[column] = value
    return ", ".join(f"{column} = :{column}" for column in params), params


class JobsMixin:
    """Job rows, progress, cancelling, claiming and the lease."""

    def create_job(self, spec: JobSpec, frames_total: int, owner: str | None = None) -> Job:
        """A queued job. owner: who started it (login name or anonymous id), checked by queues.jobs_api."""
        if not isinstance(spec, JobSpec):
            raise TypeError(f"create_job needs a JobSpec, got {type(spec).__name__}")
        if owner is not None and (not isinstance(owner, str) or not 0 < len(owner) <= 200):
            raise ValueError("a job's owner must be a non-empty name of at most 200 characters")
        with self._write() as conn:
            # Share-locked: an import replacing this dataset's tracks checks for queued jobs under its update lock.
            dataset_row(conn, spec.dataset_id, share=True)
            for track_id in spec.track_ids:
                check_track_in_dataset(conn, track_id, spec.dataset_id, "new job")
            job_id = conn.execute(
                "INSERT INTO jobs (dataset_id, spec_json, queue, start_frame_idx, frames_total, created_at, owner)"
                " VALUES (:dataset_id, :spec, :queue, :start, :total, :now, :owner) RETURNING job_id",
                {"dataset_id": spec.dataset_id, "spec": spec_to_json(spec), "queue": spec.queue,
                 "start": spec.start_frame_idx, "total": int(frames_total), "now": time.time(), "owner": owner},
            ).fetchone()[0]
            return load_job(conn, job_id)

    def get_job(self, job_id: int) -> Job:
        with self._read() as conn:
            return load_job(conn, job_id)

    def list_jobs(
        self, dataset_id: int | None = None, statuses: Sequence[JobState | str] | None = None,
        limit: int | None = 50, owner: str | None = None,
    ) -> list[Job]:
        """Newest first; only `owner`'s jobs when owner is given."""
        where, params = [], {}
        if owner is not None:
            where.append("owner = :owner")
            params["owner"] = owner
        if dataset_id is not None:
            where.append("dataset_id = :dataset_id")
            params["dataset_id"] = dataset_id
        if statuses is not None:
            states = [job_state(status).value for status in statuses]
            where.append(f"status IN ({', '.join(f':s{i}' for i in range(len(states)))})" if states else "1 = 0")
            params.update({f"s{i}": state for i, state in enumerate(states)})
        sql = f"SELECT {_JOB_COLUMNS} FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY job_id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._read() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [job_from_row(row) for row in rows]

    def update_job(self, job_id: int, notification: JobNotification | dict | None = None, **fields) -> Job:
        """Set some of the job's columns (see UPDATABLE). notification= records the latest progress message (a
        JobNotification, or a dict with its fields; "at" is accepted for created_at) and counts it unless
        notifications_count is given too. Moving to a finished status stamps finished_at unless given."""
        unknown = set(fields) - UPDATABLE
        if unknown:
            raise ValueError(f"update_job: unknown or read-only field(s) {sorted(unknown)}; allowed: {sorted(UPDATABLE)}")
        if fields.get("status") is not None and job_state(fields["status"]).finished:
            fields.setdefault("finished_at", time.time())
        note = _as_notification(notification)
        assignments, params = _assignments(fields)
        with self._write() as conn:
            load_job(conn, job_id)
            if fields:
                conn.execute(f"UPDATE jobs SET {assignments} WHERE job_id = :job_id", {**params, "job_id": job_id})
            if note is not None:
                count = "notifications_count" if "notifications_count" in fields else "notifications_count + 1"
                conn.execute(
                    "UPDATE jobs SET notify_frame_idx = :frame_idx, notify_frames_done = :frames_done,"
                    " notify_percent = :percent, notify_preview_jpeg = :jpeg, notify_preview_path = :path,"
                    " notify_at = :at, notify_frames_total = :frames_total,"
                    f" notifications_count = {count} WHERE job_id = :job_id",
                    {"frame_idx": note.frame_idx, "frames_done": note.frames_done, "percent": note.percent,
                     "jpeg": note.preview_jpeg, "path": note.preview_path,
                     "at": note.created_at if note.created_at is not None else time.time(),
                     "frames_total": note.frames_total, "job_id": job_id},
                )
            return load_job(conn, job_id)

    def request_cancel(self, job_id: int) -> Job:
        """Flag a job to stop: a running one stops cooperatively, claim_job refuses a queued one (see also
        cancel_if_queued). A finished job is left as it is."""
        with self._write() as conn:
            load_job(conn, job_id)
            conn.execute(f"UPDATE jobs SET cancel_requested = 1 WHERE job_id = :job_id AND {_NOT_FINISHED}",
                         {**STATES, "job_id": job_id})
            return load_job(conn, job_id)

    def cancel_if_queued(self, job_id: int) -> bool:
        """Atomically queued -> cancelled; False if the job is not queued (a worker claimed it, or it ended)."""
        with self._write() as conn:
            load_job(conn, job_id)
            cur = conn.execute(
                "UPDATE jobs SET status = :state_cancelled, cancel_requested = 1, finished_at = :now"
                " WHERE job_id = :job_id AND status = :state_queued",
                {**STATES, "now": time.time(), "job_id": job_id},
            )
            return cur.rowcount == 1

    def is_cancel_requested(self, job_id: int) -> bool:
        with self._read() as conn:
            row = conn.execute("SELECT cancel_requested FROM jobs WHERE job_id = :job_id", {"job_id": job_id}).fetchone()
        if row is None:
            raise NotFound(f"job {job_id} does not exist (its dataset may have been deleted)")
        return bool(row[0])

    def requeue_job(self, job_id: int, expected_worker: str | None = None) -> bool:
        """Atomically running -> queued (to be resumed), only if the job is still held by expected_worker (when
        given), so two consumers that both notice a dead worker requeue the job once."""
        # Two spellings rather than ":worker IS NULL OR worker = :worker": PostgreSQL cannot type a bare NULL.
        held = "" if expected_worker is None else " AND worker = :worker"
        with self._write() as conn:
            load_job(conn, job_id)
            cur = conn.execute(
                f"UPDATE jobs SET status = :state_queued WHERE job_id = :job_id AND status = :state_running{held}",
                {**STATES, "job_id": job_id, "worker": expected_worker},
            )
            return cur.rowcount == 1

    def claim_job(self, job_id: int, worker: str, stale_after_s: float = 60.0) -> bool:
        """Atomically make `worker` the job's runner. Succeeds for a queued job, a running job whose heartbeat is
        older than stale_after_s (its worker died), or one this worker already holds; False otherwise, and always
        False once a cancel was requested. A job that had started before counts as resumed, unless this worker
        already holds it (a consumer claims a job to fetch its model, then its runner claims it again)."""
        now = time.time()
        with self._write() as conn:
            load_job(conn, job_id)
            cur = conn.execute(
                "UPDATE jobs SET status = :state_running, worker = :worker, heartbeat_at = :now, finished_at = NULL,"
                " resumed_count = resumed_count + CASE WHEN started_at IS NULL"
                " OR (status = :state_running AND worker = :worker) THEN 0 ELSE 1 END,"
                " started_at = COALESCE(started_at, :now)"
                " WHERE job_id = :job_id AND undone_at IS NULL AND cancel_requested = 0 AND (status = :state_queued"
                " OR (status = :state_running AND (worker = :worker OR heartbeat_at IS NULL OR heartbeat_at < :stale)))",
                {**STATES, "worker": worker, "now": now, "job_id": job_id, "stale": now - stale_after_s},
            )
            return cur.rowcount == 1

    def job_lease(self, job_id: int, worker: str) -> Lease:
        """What a runner checks before each frame: CANCEL (stop, a cancel was requested), LOST (another worker holds
        the job, or it ended) or OK. A read: it never waits for a write in progress."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT status, worker, cancel_requested FROM jobs WHERE job_id = :job_id", {"job_id": job_id}
            ).fetchone()
        if row is None or JobState(row[0]) is not JobState.RUNNING or row[1] != worker:
            return Lease.LOST
        return Lease.CANCEL if row[2] else Lease.OK

    def finish_job(self, job_id: int, worker: str, status: JobState | str, **fields) -> bool:
        """Atomically end a running job held by `worker` (done, failed or cancelled, plus update_job's fields);
        False, changing nothing, when the worker has lost the job to another one meanwhile."""
        state = job_state(status)
        if not state.finished:
            raise ValueError(f"finish_job: status must be one of {sorted(FINISHED_JOB_STATES)}, got {status!r}")
        unknown = set(fields) - UPDATABLE
        if unknown:
            raise ValueError(f"finish_job: unknown or read-only field(s) {sorted(unknown)}")
        assignments, params = _assignments({"status": state, "finished_at": time.time(), **fields})
        with self._write() as conn:
            load_job(conn, job_id)
            cur = conn.execute(
                f"UPDATE jobs SET {assignments} WHERE job_id = :job_id AND status = :state_running AND worker = :holder",
                {**params, "state_running": JobState.RUNNING.value, "job_id": job_id, "holder": worker},
            )
            return cur.rowcount == 1


def _as_notification(value: JobNotification | dict | None) -> JobNotification | None:
    if value is None or isinstance(value, JobNotification):
        return value
    data = dict(value)
    if "at" in data:
        data["created_at"] = data.pop("at")
    try:
        return JobNotification(**data)
    except TypeError as exc:
        raise ValueError(f"bad job notification {sorted(data)}: {exc}") from exc
