"""Tracking jobs: their rows and progress, the batch writer that commits results, and undo.

Rules write_job_batch applies to each (track, frame) result:
- a person's keyframe keeps its box, clicks and attributes; it gains the job's mask and score (a mask the person
  drew is never replaced);
- a newer job's result (higher job_id) replaces an older job's, never the reverse, so a resumed old job cannot
  clobber a newer one;
- an absent object is recorded as a feature with present=False;
- whatever was there before is recorded once per (job, track, frame) so undo_job can restore it exactly.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from sam2_tracking.engine.masks import mask_to_box, mask_to_rle
from sam2_tracking.store.core import _dataset_row
from sam2_tracking.store.records import (
    FINISHED_STATUSES,
    JOB_STATUSES,
    EditError,
    Feature,
    Job,
    JobNotification,
    NotFound,
    spec_from_json,
    spec_to_json,
)
from sam2_tracking.store.rows import (
    check_track_in_dataset,
    feature_from_row,
    feature_values,
    get_feature_row,
    put_feature_row,
)
from sam2_tracking.types import FrameMask, JobSpec

_JOB_COLUMNS = (
    "job_id, dataset_id, spec_json, queue, status, frames_done, frames_total, fps, eta_s, current_frame_idx,"
    " last_committed_frame_idx, committed_forward_idx, committed_backward_idx, notify_frame_idx, notify_frames_done,"
    " notify_percent, notify_preview_jpeg, notify_preview_path, notify_at, notify_frames_total, notifications_count, error, worker,"
    " resumed_count, cancel_requested, huey_task_id, created_at, started_at, finished_at, heartbeat_at, undone_at, owner"
)

# Columns update_job may set directly; progress counters of committed frames are owned by write_job_batch.
_UPDATABLE = {
    "status", "frames_total", "fps", "eta_s", "current_frame_idx", "error", "worker", "resumed_count",
    "cancel_requested", "huey_task_id", "started_at", "finished_at", "heartbeat_at", "frames_done",
    "notifications_count",
}


class LeaseLost(EditError):  # noqa: N818 - it is an event, not a mistake
    """The worker no longer holds the job (another worker took it over, or it ended): stop without touching it."""


def _job_from_row(row: tuple) -> Job:
    (job_id, dataset_id, spec_json, queue, status, frames_done, frames_total, fps, eta_s, current_frame_idx,
     last_committed, forward_idx, backward_idx, n_frame, n_done, n_percent, n_jpeg, n_path, n_at, n_total, n_count, error,
     worker, resumed_count, cancel_requested, huey_task_id, created_at, started_at, finished_at, heartbeat_at,
     undone_at, owner) = row
    notification = None
    if n_frame is not None:
        notification = JobNotification(n_frame, n_done, n_percent, n_jpeg, n_path, n_at, n_total)
    return Job(
        job_id, dataset_id, spec_from_json(spec_json), queue, status, frames_done, frames_total, fps, eta_s,
        current_frame_idx, last_committed, forward_idx, backward_idx, notification, n_count, error, worker,
        resumed_count, bool(cancel_requested), huey_task_id, created_at, started_at, finished_at, heartbeat_at,
        undone_at, owner,
    )


def _load_job(conn, job_id: int, lock: bool = False) -> Job:
    """The job's row; lock=True (inside a write) holds it until commit on PostgreSQL, so the lease (status, worker)
    checked here cannot change hands before this transaction's writes land."""
    row = conn.execute(
        f"SELECT {_JOB_COLUMNS} FROM jobs WHERE job_id = ?{conn.for_update if lock else ''}", (job_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"job {job_id} does not exist (its dataset may have been deleted)")
    return _job_from_row(row)


class JobsMixin:
    """Job rows, progress, claiming, batch results and undo."""

    def create_job(self, spec: JobSpec, frames_total: int, owner: str | None = None) -> Job:
        """A queued job. owner: who started it (login name or anonymous id), checked by queues.jobs_api."""
        if not isinstance(spec, JobSpec):
            raise TypeError(f"create_job needs a JobSpec, got {type(spec).__name__}")
        if owner is not None and (not isinstance(owner, str) or not 0 < len(owner) <= 200):
            raise ValueError("a job's owner must be a non-empty name of at most 200 characters")
        with self._write() as conn:
            # Share-locked: an import replacing this dataset's tracks checks for queued jobs under its update lock.
            _dataset_row(conn, spec.dataset_id, share=True)
            for track_id in spec.track_ids:
                check_track_in_dataset(conn, track_id, spec.dataset_id, "new job")
            job_id = conn.execute(
                "INSERT INTO jobs (dataset_id, spec_json, queue, start_frame_idx, frames_total, created_at, owner)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING job_id",
                (spec.dataset_id, spec_to_json(spec), spec.queue, spec.start_frame_idx, int(frames_total), time.time(),
                 owner),
            ).fetchone()[0]
            return _load_job(conn, job_id)

    def get_job(self, job_id: int) -> Job:
        with self._read() as conn:
            return _load_job(conn, job_id)

    def list_jobs(
        self, dataset_id: int | None = None, statuses: Sequence[str] | None = None, limit: int | None = 50,
        owner: str | None = None,
    ) -> list[Job]:
        """Newest first; only `owner`'s jobs when owner is given."""
        where, params = [], []
        if owner is not None:
            where.append("owner = ?")
            params.append(owner)
        if dataset_id is not None:
            where.append("dataset_id = ?")
            params.append(dataset_id)
        if statuses is not None:
            statuses = list(statuses)
            unknown = set(statuses) - set(JOB_STATUSES)
            if unknown:
                raise ValueError(f"unknown job status(es) {sorted(unknown)}; known: {JOB_STATUSES}")
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            params.extend(statuses)
        sql = f"SELECT {_JOB_COLUMNS} FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY job_id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._read() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [_job_from_row(row) for row in rows]

    def update_job(self, job_id: int, notification: JobNotification | dict | None = None, **fields) -> Job:
        """Set some of the job's columns (see _UPDATABLE). notification= records the latest progress message (a
        JobNotification, or a dict with its fields; "at" is accepted for created_at) and counts it unless
        notifications_count is given too. Moving to a finished status stamps finished_at unless given."""
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"update_job: unknown or read-only field(s) {sorted(unknown)}; allowed: {sorted(_UPDATABLE)}")
        status = fields.get("status")
        if status is not None and status not in JOB_STATUSES:
            raise ValueError(f"job status must be one of {JOB_STATUSES}, got {status!r}")
        if status in FINISHED_STATUSES:
            fields.setdefault("finished_at", time.time())
        if "cancel_requested" in fields:
            fields["cancel_requested"] = int(bool(fields["cancel_requested"]))
        note = _as_notification(notification)
        with self._write() as conn:
            _load_job(conn, job_id)
            if fields:
                assignments = ", ".join(f"{column} = ?" for column in fields)
                conn.execute(f"UPDATE jobs SET {assignments} WHERE job_id = ?", (*fields.values(), job_id))
            if note is not None:
                count = "notifications_count" if "notifications_count" in fields else "notifications_count + 1"
                conn.execute(
                    "UPDATE jobs SET notify_frame_idx = ?, notify_frames_done = ?, notify_percent = ?,"
                    " notify_preview_jpeg = ?, notify_preview_path = ?, notify_at = ?, notify_frames_total = ?,"
                    f" notifications_count = {count} WHERE job_id = ?",
                    (note.frame_idx, note.frames_done, note.percent, note.preview_jpeg, note.preview_path,
                     note.created_at if note.created_at is not None else time.time(), note.frames_total, job_id),
                )
            return _load_job(conn, job_id)

    def request_cancel(self, job_id: int) -> Job:
        """Flag a job to stop: a running one stops cooperatively, claim_job refuses a queued one (see also
        cancel_if_queued). A finished job is left as it is."""
        with self._write() as conn:
            _load_job(conn, job_id)
            conn.execute(
                "UPDATE jobs SET cancel_requested = 1 WHERE job_id = ? AND status NOT IN ('done', 'failed', 'cancelled')",
                (job_id,),
            )
            return _load_job(conn, job_id)

    def cancel_if_queued(self, job_id: int) -> bool:
        """Atomically queued -> cancelled; False if the job is not queued (a worker claimed it, or it ended)."""
        with self._write() as conn:
            _load_job(conn, job_id)
            cur = conn.execute(
                "UPDATE jobs SET status = 'cancelled', cancel_requested = 1, finished_at = ?"
                " WHERE job_id = ? AND status = 'queued'",
                (time.time(), job_id),
            )
            return cur.rowcount == 1

    def is_cancel_requested(self, job_id: int) -> bool:
        with self._read() as conn:
            row = conn.execute("SELECT cancel_requested FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"job {job_id} does not exist (its dataset may have been deleted)")
        return bool(row[0])

    def requeue_job(self, job_id: int, expected_worker: str | None = None) -> bool:
        """Atomically running -> queued (to be resumed), only if the job is still held by expected_worker (when
        given), so two consumers that both notice a dead worker requeue the job once."""
        with self._write() as conn:
            _load_job(conn, job_id)
            # Two spellings rather than "? IS NULL OR worker IS ?": PostgreSQL cannot type a bare NULL parameter.
            if expected_worker is None:
                cur = conn.execute(
                    "UPDATE jobs SET status = 'queued' WHERE job_id = ? AND status = 'running'", (job_id,)
                )
            else:
                cur = conn.execute(
                    "UPDATE jobs SET status = 'queued' WHERE job_id = ? AND status = 'running' AND worker = ?",
                    (job_id, expected_worker),
                )
            return cur.rowcount == 1

    def claim_job(self, job_id: int, worker: str, stale_after_s: float = 60.0) -> bool:
        """Atomically make `worker` the job's runner. Succeeds for a queued job, a running job whose heartbeat is
        older than stale_after_s (its worker died), or one this worker already holds; False otherwise, and always
        False once a cancel was requested. A job that had started before counts as resumed, unless this worker
        already holds it (a consumer claims a job to fetch its model, then its runner claims it again)."""
        now = time.time()
        with self._write() as conn:
            _load_job(conn, job_id)
            cur = conn.execute(
                "UPDATE jobs SET status = 'running', worker = ?, heartbeat_at = ?, finished_at = NULL,"
                " resumed_count = resumed_count + CASE WHEN started_at IS NULL OR (status = 'running' AND worker = ?)"
                " THEN 0 ELSE 1 END, started_at = COALESCE(started_at, ?)"
                " WHERE job_id = ? AND undone_at IS NULL AND cancel_requested = 0 AND (status = 'queued' OR (status = 'running' AND"
                " (worker = ? OR heartbeat_at IS NULL OR heartbeat_at < ?)))",
                (worker, now, worker, now, job_id, worker, now - stale_after_s),
            )
            return cur.rowcount == 1

    def job_lease(self, job_id: int, worker: str) -> str:
        """What a runner checks before each frame: 'cancel' (stop, a cancel was requested), 'lost' (another worker
        holds the job, or it ended) or 'ok'."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT status, worker, cancel_requested FROM jobs WHERE job_id = ?", (job_id,)
            ).fetchone()
        if row is None or row[0] != "running" or row[1] != worker:
            return "lost"
        return "cancel" if row[2] else "ok"

    def finish_job(self, job_id: int, worker: str, status: str, **fields) -> bool:
        """Atomically end a running job held by `worker` (done, failed or cancelled, plus update_job's fields);
        False, changing nothing, when the worker has lost the job to another one meanwhile."""
        if status not in FINISHED_STATUSES:
            raise ValueError(f"finish_job: status must be one of {FINISHED_STATUSES}, got {status!r}")
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"finish_job: unknown or read-only field(s) {sorted(unknown)}")
        fields = {"status": status, "finished_at": time.time(), **fields}
        assignments = ", ".join(f"{column} = ?" for column in fields)
        with self._write() as conn:
            _load_job(conn, job_id)
            cur = conn.execute(
                f"UPDATE jobs SET {assignments} WHERE job_id = ? AND status = 'running' AND worker = ?",
                (*fields.values(), job_id, worker),
            )
            return cur.rowcount == 1

    def job_frames_written(self, job_id: int) -> set[int]:
        with self._read() as conn:
            _load_job(conn, job_id)
            rows = conn.execute("SELECT frame_idx FROM job_frames WHERE job_id = ?", (job_id,)).fetchall()
        return {row[0] for row in rows}

    def write_job_batch(self, job_id: int, results: Sequence[FrameMask], worker: str | None = None) -> None:
        """Commit one batch of results (all tracks of some frames, in tracking order) in one transaction, together
        with the job's progress. Frames this job already committed are skipped, so a resumed job writes nothing
        twice. Costs time proportional to the batch, whatever the track's length."""
        if not results:
            return
        # Encode outside the transaction: other processes wait on the write lock only for the SQL itself.
        encoded = []
        for result in results:
            # The tracker hands masks over as RLE already (FrameMask.rle); encode only those that come as arrays.
            rle = result.rle if result.rle is not None else (None if result.mask is None else mask_to_rle(result.mask))
            box = result.box if result.box is not None or rle is None else mask_to_box(result.mask_array())
            encoded.append((result, rle, box if result.present else None))
        with self._write() as conn:
            _dataset_row(conn, _load_job(conn, job_id).dataset_id, share=True)  # lock order: dataset, job, features
            job = _load_job(conn, job_id, lock=True)
            if worker is not None and (job.status != "running" or job.worker != worker):
                raise LeaseLost(f"job {job_id} is now {job.status} under {job.worker}, not {worker}")
            if job.status != "running" or job.undone_at is not None:
                raise EditError(
                    f"job {job_id} is {'undone' if job.undone_at else job.status}, not running: claim it before "
                    "writing results"
                )
            frames = sorted({r.frame_idx for r, _, _ in encoded})
            done = _frames_done_among(conn, job_id, frames)
            track_ids = set(job.spec.track_ids)
            _check_tracks_still_there(conn, job_id, track_ids)
            for result, rle, box in encoded:
                if result.frame_idx in done:
                    continue
                if result.track_id not in track_ids:
                    raise EditError(f"job {job_id}: result for track {result.track_id}, which the job does not track")
                _write_result(conn, job_id, result, rle, box)
            new_frames = [f for f in frames if f not in done]
            conn.executemany(
                "INSERT INTO job_frames (job_id, frame_idx) VALUES (?, ?)", [(job_id, f) for f in new_frames]
            )
            last = next((r.frame_idx for r, _, _ in reversed(encoded) if r.frame_idx not in done), None)
            start = job.spec.start_frame_idx
            # Per-direction high-water marks: what a resumed job needs to know where each pass got to.
            forward = [f for f in new_frames if f >= start] + _known(job.committed_forward_idx)
            backward = [f for f in new_frames if f <= start] + _known(job.committed_backward_idx)
            conn.execute(
                "UPDATE jobs SET frames_done = frames_done + ?, heartbeat_at = ?,"
                " last_committed_frame_idx = COALESCE(?, last_committed_frame_idx),"
                " committed_forward_idx = ?, committed_backward_idx = ? WHERE job_id = ?",
                (len(new_frames), time.time(), last, max(forward, default=None), min(backward, default=None), job_id),
            )

    def undo_job(self, job_id: int) -> int:
        """Put back, in one transaction, what was there before the job wrote; returns how many features changed.

        A feature a person edited since is left alone. Where a newer job replaced this job's result, that job's undo
        record is pointed at what this job replaced, so undoing it later does not bring this job's result back.
        """
        with self._write() as conn:
            _dataset_row(conn, _load_job(conn, job_id).dataset_id, lock=True)  # lock order: dataset, job, features
            job = _load_job(conn, job_id, lock=True)
            if job.status == "running":
                raise EditError(f"job {job_id} is still running: cancel it and wait for it to stop, then undo")
            if job.undone_at is not None:
                raise EditError(f"job {job_id} was already undone")
            changes = conn.execute(
                "SELECT track_id, frame_idx, prior FROM job_changes WHERE job_id = ?", (job_id,)
            ).fetchall()
            restored = 0
            for track_id, frame_idx, prior in changes:
                current = get_feature_row(conn, track_id, frame_idx)
                current_job = None if current is None else current[4]
                if current_job == job_id:
                    if prior is None:
                        conn.execute("DELETE FROM features WHERE track_id = ? AND frame_idx = ?", (track_id, frame_idx))
                    else:
                        put_feature_row(conn, tuple(json.loads(prior)))
                    restored += 1
                elif current_job is not None and current_job > job_id:
                    _repoint_newer_undo(conn, current_job, track_id, frame_idx, job_id, prior)
            conn.execute("DELETE FROM job_changes WHERE job_id = ?", (job_id,))
            conn.execute("UPDATE jobs SET undone_at = ? WHERE job_id = ?", (time.time(), job_id))
            # People's views of the dataset are now stale: make their next save reload first.
            conn.execute("UPDATE datasets SET revision = revision + 1 WHERE dataset_id = ?", (job.dataset_id,))
            return restored


def refuse_replace_during_jobs(conn, dataset_id: int) -> None:
    """An import that replaces a dataset's tracks is refused while a job on that dataset is queued or running: the
    job's tracks would vanish under it (it would fail, or write onto ids the import reuses). Called inside the
    import's own write transaction, so no job can start between the check and the delete."""
    rows = conn.execute(
        "SELECT job_id, owner FROM jobs WHERE dataset_id = ? AND status IN ('queued', 'running') ORDER BY job_id",
        (dataset_id,),
    ).fetchall()
    if rows:
        jobs = ", ".join(f"{job_id} ({owner or 'unknown owner'})" for job_id, owner in rows)
        raise EditError(
            f"tracking job(s) {jobs} are working on this video: wait for them to end or cancel them, then import "
            "with 'replace' again (an import that adds tracks works now)"
        )


def _check_tracks_still_there(conn, job_id: int, track_ids: set[int]) -> None:
    # A person may delete a track while a job tracks it: say so, rather than fail on the foreign key.
    marks = ", ".join("?" * len(track_ids))
    present = {row[0] for row in conn.execute(f"SELECT track_id FROM tracks WHERE track_id IN ({marks})",
                                              tuple(track_ids))}
    missing = sorted(track_ids - present)
    if missing:
        raise EditError(f"job {job_id}: track(s) {', '.join(map(str, missing))} were deleted while the job ran, so "
                        "it stopped; what it tracked on its other tracks is kept")


def _known(value: int | None) -> list[int]:
    return [] if value is None else [value]


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


def _frames_done_among(conn, job_id: int, frames: list[int]) -> set[int]:
    rows = conn.execute(
        "SELECT frame_idx FROM job_frames WHERE job_id = ? AND frame_idx BETWEEN ? AND ?",
        (job_id, frames[0], frames[-1]),
    ).fetchall()
    return {row[0] for row in rows} & set(frames)


def _write_result(conn, job_id: int, result: FrameMask, rle: dict | None, box) -> None:
    existing = get_feature_row(conn, result.track_id, result.frame_idx)
    old = None if existing is None else feature_from_row(existing)
    if old is not None and old.keyframe:
        if old.rle is not None and old.job_id is None:
            return  # the person drew this mask: it stands
        new = Feature(
            track_id=old.track_id, frame_idx=old.frame_idx, box=old.box, rle=rle, present=old.present,
            score=float(result.score), keyframe=True, clicks=old.clicks, attributes=old.attributes, job_id=job_id,
        )
    elif old is not None and old.job_id is not None and old.job_id > job_id:
        return  # a newer job's result stands
    else:
        new = Feature(
            track_id=result.track_id, frame_idx=int(result.frame_idx), box=box, rle=rle, present=bool(result.present),
            score=float(result.score), keyframe=False, job_id=job_id,
        )
    conn.execute(
        "INSERT INTO job_changes (job_id, track_id, frame_idx, prior) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (job_id, track_id, frame_idx) DO NOTHING",
        (job_id, result.track_id, result.frame_idx, None if existing is None else json.dumps(list(existing))),
    )
    put_feature_row(conn, feature_values(new))


def _repoint_newer_undo(conn, newer_job: int, track_id: int, frame_idx: int, job_id: int, prior: str | None) -> None:
    row = conn.execute(
        "SELECT prior FROM job_changes WHERE job_id = ? AND track_id = ? AND frame_idx = ?",
        (newer_job, track_id, frame_idx),
    ).fetchone()
    if row is not None and row[0] is not None and json.loads(row[0])[4] == job_id:
        conn.execute(
            "UPDATE job_changes SET prior = ? WHERE job_id = ? AND track_id = ? AND frame_idx = ?",
            (prior, newer_job, track_id, frame_idx),
        )

