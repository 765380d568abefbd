"""Tracking jobs' results: the batch writer that commits them, and undo.

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
from sam2_tracking.states import JobState
from sam2_tracking.store.backend import Connection
from sam2_tracking.store.core import dataset_row
from sam2_tracking.store.jobs import STATES, LeaseLost, load_job
from sam2_tracking.store.records import EditError, Feature
from sam2_tracking.store.rows import feature_from_row, feature_values, get_feature_row, put_feature_row
from sam2_tracking.types import FrameMask


class JobResultsMixin:
    """Batches of results, the frames a job committed, and undo."""

    def job_frames_written(self, job_id: int) -> set[int]:
        with self._read() as conn:
            load_job(conn, job_id)
            rows = conn.execute("SELECT frame_idx FROM job_frames WHERE job_id = :job_id", {"job_id": job_id}).fetchall()
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
            dataset_row(conn, load_job(conn, job_id).dataset_id, share=True)  # lock order: dataset, job, features
            job = load_job(conn, job_id, lock=True)
            if worker is not None and (job.status is not JobState.RUNNING or job.worker != worker):
                raise LeaseLost(f"job {job_id} is now {job.status} under {job.worker}, not {worker}")
            if job.status is not JobState.RUNNING or job.undone_at is not None:
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
            conn.executemany("INSERT INTO job_frames (job_id, frame_idx) VALUES (:job_id, :frame_idx)",
                             [{"job_id": job_id, "frame_idx": f} for f in new_frames])
            last = next((r.frame_idx for r, _, _ in reversed(encoded) if r.frame_idx not in done), None)
            start = job.spec.start_frame_idx
            # Per-direction high-water marks: what a resumed job needs to know where each pass got to.
            forward = [f for f in new_frames if f >= start] + _known(job.committed_forward_idx)
            backward = [f for f in new_frames if f <= start] + _known(job.committed_backward_idx)
            conn.execute(
                "UPDATE jobs SET frames_done = frames_done + :new, heartbeat_at = :now,"
                " last_committed_frame_idx = COALESCE(:last, last_committed_frame_idx),"
                " committed_forward_idx = :forward, committed_backward_idx = :backward WHERE job_id = :job_id",
                {"new": len(new_frames), "now": time.time(), "last": last, "forward": max(forward, default=None),
                 "backward": min(backward, default=None), "job_id": job_id},
            )

    def undo_job(self, job_id: int) -> int:
        """Put back, in one transaction, what was there before the job wrote; returns how many features changed.

        A feature a person edited since is left alone. Where a newer job replaced this job's result, that job's undo
        record is pointed at what this job replaced, so undoing it later does not bring this job's result back.
        """
        with self._write() as conn:
            dataset_row(conn, load_job(conn, job_id).dataset_id, lock=True)  # lock order: dataset, job, features
            job = load_job(conn, job_id, lock=True)
            if job.status is JobState.RUNNING:
                raise EditError(f"job {job_id} is still running: cancel it and wait for it to stop, then undo")
            if job.undone_at is not None:
                raise EditError(f"job {job_id} was already undone")
            changes = conn.execute(
                "SELECT track_id, frame_idx, prior FROM job_changes WHERE job_id = :job_id", {"job_id": job_id}
            ).fetchall()
            restored = 0
            for track_id, frame_idx, prior in changes:
                current = get_feature_row(conn, track_id, frame_idx)
                current_job = None if current is None else current[4]
                if current_job == job_id:
                    if prior is None:
                        conn.execute("DELETE FROM features WHERE track_id = :track_id AND frame_idx = :frame_idx",
                                     {"track_id": track_id, "frame_idx": frame_idx})
                    else:
                        put_feature_row(conn, tuple(json.loads(prior)))
                    restored += 1
                elif current_job is not None and current_job > job_id:
                    _repoint_newer_undo(conn, current_job, track_id, frame_idx, job_id, prior)
            conn.execute("DELETE FROM job_changes WHERE job_id = :job_id", {"job_id": job_id})
            conn.execute("UPDATE jobs SET undone_at = :now WHERE job_id = :job_id", {"now": time.time(), "job_id": job_id})
            # People's views of the dataset are now stale: make their next save reload first.
            conn.execute("UPDATE datasets SET revision = revision + 1 WHERE dataset_id = :dataset_id",
                         {"dataset_id": job.dataset_id})
            return restored


def refuse_replace_during_jobs(conn: Connection, dataset_id: int) -> None:
    """An import that replaces a dataset's tracks is refused while a job on that dataset is queued or running: the
    job's tracks would vanish under it (it would fail, or write onto ids the import reuses). Called inside the
    import's own write transaction, so no job can start between the check and the delete."""
    rows = conn.execute(
        "SELECT job_id, owner FROM jobs WHERE dataset_id = :dataset_id AND status IN (:state_queued, :state_running)"
        " ORDER BY job_id",
        {**STATES, "dataset_id": dataset_id},
    ).fetchall()
    if rows:
        jobs = ", ".join(f"{job_id} ({owner or 'unknown owner'})" for job_id, owner in rows)
        raise EditError(
            f"tracking job(s) {jobs} are working on this video: wait for them to end or cancel them, then import "
            "with 'replace' again (an import that adds tracks works now)"
        )


def _check_tracks_still_there(conn, job_id: int, track_ids: set[int]) -> None:
    # A person may delete a track while a job tracks it: say so, rather than fail on the foreign key.
    params = {f"t{i}": track_id for i, track_id in enumerate(sorted(track_ids))}
    present = {row[0] for row in conn.execute(
        f"SELECT track_id FROM tracks WHERE track_id IN ({', '.join(':' + name for name in params)})", params)}
    missing = sorted(track_ids - present)
    if missing:
        raise EditError(f"job {job_id}: track(s) {', '.join(map(str, missing))} were deleted while the job ran, so "
                        "it stopped; what it tracked on its other tracks is kept")


def _known(value: int | None) -> list[int]:
    return [] if value is None else [value]


def _frames_done_among(conn, job_id: int, frames: list[int]) -> set[int]:
    rows = conn.execute(
        "SELECT frame_idx FROM job_frames WHERE job_id = :job_id AND frame_idx BETWEEN :first AND :last",
        {"job_id": job_id, "first": frames[0], "last": frames[-1]},
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
        "INSERT INTO job_changes (job_id, track_id, frame_idx, prior) VALUES (:job_id, :track_id, :frame_idx, :prior)"
        " ON CONFLICT (job_id, track_id, frame_idx) DO NOTHING",
        {"job_id": job_id, "track_id": result.track_id, "frame_idx": result.frame_idx,
         "prior": None if existing is None else json.dumps(list(existing))},
    )
    put_feature_row(conn, feature_values(new))


def _repoint_newer_undo(conn, newer_job: int, track_id: int, frame_idx: int, job_id: int, prior: str | None) -> None:
    row = conn.execute(
        "SELECT prior FROM job_changes WHERE job_id = :job_id AND track_id = :track_id AND frame_idx = :frame_idx",
        {"job_id": newer_job, "track_id": track_id, "frame_idx": frame_idx},
    ).fetchone()
    if row is not None and row[0] is not None and json.loads(row[0])[4] == job_id:
        conn.execute(
            "UPDATE job_changes SET prior = :prior WHERE job_id = :job_id AND track_id = :track_id"
            " AND frame_idx = :frame_idx",
            {"prior": prior, "job_id": newer_job, "track_id": track_id, "frame_idx": frame_idx},
        )

