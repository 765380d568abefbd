"""Liveness, ownership and stopping through real consumer processes and the real server-side functions.

- Two consumers serving one queue, with a store write held longer than the old 10 s staleness window in between,
  never fail or steal each other's jobs.
- A consumer restarted under the same pid as its dead predecessor picks the predecessor's job up.
- Only a job's owner or the admin follows, cancels or undoes it; the admin cancels an orphaned queued job; a queued
  job no longer blocks removing its model.
- Turning SAM2 off stops queued and running jobs, keeping committed frames, with a message for their owners.
"""

from __future__ import annotations

import dataclasses
import socket
import sqlite3
import time

import pytest

from queues import jobs_api
from queues.config import STALE_AFTER_S
from queues.dispatch import enqueue_model_removal, enqueue_tracking_job, validate_job_spec
from sam2_tracking.store import EditError
from sam2_tracking.store.core import BUSY_TIMEOUT_S
from sam2_tracking.testing.queue_harness import TEST_MODEL_NAME, QueueHarness
from sam2_tracking.testing.wait import wait_for
from sam2_tracking.types import JobSpec

ALICE = jobs_api.Caller("alice", is_admin=False)
BOB = jobs_api.Caller("bob", is_admin=False)
ADMIN = jobs_api.Caller("admin", is_admin=True)


@pytest.fixture()
def harness(tmp_path, shared_model_dir):
    h = QueueHarness(tmp_path, shared_model_dir, queues=("cpu", "gpu"))
    h.register_model()
    yield h
    h.close()
    from queues.config import forget_instances

    forget_instances()


def _spec(dataset, track_ids, queue="cpu", frames=20, batch=10) -> JobSpec:
    return JobSpec(dataset_id=dataset.dataset_id, track_ids=tuple(track_ids), start_frame_idx=0,
                   model_name=TEST_MODEL_NAME, queue=queue, num_frames=frames, batch_size=batch, notify_percent=10)


def _wait_status(h: QueueHarness, job_id: int, statuses: tuple[str, ...], timeout_s: float = 240):
    return wait_for(lambda: h.store.get_job(job_id) if h.store.get_job(job_id).status in statuses else None,
                    timeout_s, f"job {job_id} to reach {statuses} (now {h.store.get_job(job_id).status}; "
                    f"logs: {h.logs()})", 0.2)


OLD_STALE_AFTER_S = 10  # the staleness window before it was made to outlast the store's busy timeout


def _beats_older_than(h: QueueHarness, queue: str, consumers: int, age_s: float) -> bool:
    """The queue has `consumers` workers and every one's last heartbeat is more than age_s old."""
    workers = h.store.list_workers(queue=queue, max_age_s=None)
    return len(workers) == consumers and all(time.time() - w.heartbeat_at > age_s for w in workers)


def test_the_staleness_window_outlasts_any_store_wait():
    assert STALE_AFTER_S > BUSY_TIMEOUT_S


@pytest.mark.slow
def test_two_consumers_on_one_queue_survive_a_long_store_write(harness):
    dataset, tracks = harness.add_sample()
    harness.start_consumer("cpu")
    harness.start_consumer("cpu")
    jobs = [enqueue_tracking_job(harness.settings, harness.store, _spec(dataset, [track], frames=60), owner="alice")
            for track in tracks[:2]]
    wait_for(lambda: all(harness.store.get_job(j.job_id).frames_done >= 10 for j in jobs) or None, 240,
             "both jobs to commit a batch")
    workers = {harness.store.get_job(j.job_id).worker for j in jobs}
    assert len(workers) == 2, "each consumer runs one of the jobs"
    # Hold the store's write lock longer than the old 10 s staleness window (an import of a large file does this):
    # both consumers' heartbeats and batch commits wait behind it.
    blocker = sqlite3.connect(harness.settings.store_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        # Held until both consumers' last recorded heartbeats are older than that window (they cannot beat meanwhile).
        wait_for(lambda: _beats_older_than(harness, "cpu", 2, OLD_STALE_AFTER_S + 1), 60,
                 f"both consumers' heartbeats to be {OLD_STALE_AFTER_S + 1} s old", 0.5)
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    for enqueued in jobs:
        job = _wait_status(harness, enqueued.job_id, ("done", "failed", "cancelled"))
        assert job.status == "done", job.error
        assert job.error is None and job.resumed_count == 0, "no consumer took the other's job over"
        assert harness.store.job_frames_written(job.job_id) == set(range(60))
    assert {harness.store.get_job(j.job_id).worker for j in jobs} == workers


@pytest.mark.slow
def test_a_consumer_restarted_under_its_predecessors_pid_picks_up_the_dead_job(harness):
    dataset, tracks = harness.add_sample()
    consumer = harness.start_consumer("cpu", wait=False)
    # The dead predecessor: same host, same pid (PID 1 in a container restarts as PID 1), its own start nonce; it
    # claimed a job and beat for the last time long ago.
    dead_id = f"{socket.gethostname()}:{consumer.pid}:cpu:0123abcd"
    spec = _spec(dataset, tracks[:1])
    _, seeds = validate_job_spec(harness.settings, harness.store, spec)
    job = harness.store.create_job(dataclasses.replace(spec, extra={"seeds": seeds}), frames_total=20, owner="alice")
    assert harness.store.claim_job(job.job_id, dead_id)
    harness.store.record_heartbeat(dead_id, "cpu", socket.gethostname(), consumer.pid, "cpu", job.job_id)
    # What the dead process left behind: its last beats are older than the staleness window.
    stale = time.time() - STALE_AFTER_S - 60
    with sqlite3.connect(harness.settings.store_path, isolation_level=None) as conn:
        conn.execute("UPDATE workers SET heartbeat_at = ?, started_at = ? WHERE worker_id = ?", (stale, stale, dead_id))
        conn.execute("UPDATE jobs SET heartbeat_at = ? WHERE job_id = ?", (stale, job.job_id))
    finished = _wait_status(harness, job.job_id, ("done", "failed"))
    assert finished.status == "done", finished.error
    assert finished.worker != dead_id and finished.worker.split(":")[1] == str(consumer.pid)
    assert finished.resumed_count == 1
    assert harness.store.job_frames_written(job.job_id) == set(range(20))


def test_only_the_owner_or_the_admin_acts_on_a_job(harness):
    dataset, tracks = harness.add_sample()
    mine = enqueue_tracking_job(harness.settings, harness.store, _spec(dataset, tracks[:1], queue="gpu"),
                                owner="alice").job_id
    theirs = enqueue_tracking_job(harness.settings, harness.store, _spec(dataset, tracks[1:], queue="gpu"),
                                  owner="bob").job_id
    assert [v.job_id for v in jobs_api.list_my_jobs(harness.store, ALICE)] == [mine]
    assert [v.job_id for v in jobs_api.list_my_jobs(harness.store, ADMIN)] == [theirs, mine]
    view = jobs_api.follow_job(harness.store, ALICE, mine)
    assert view.status == "queued" and view.owner == "alice" and view.frames_total == 20
    assert "no worker is listening on gpu" in view.message
    for action in (lambda: jobs_api.follow_job(harness.store, BOB, mine),
                   lambda: jobs_api.cancel_job_by_id(harness.settings, harness.store, BOB, mine),
                   lambda: jobs_api.undo_job_by_id(harness.store, BOB, mine)):
        with pytest.raises(jobs_api.JobAccessError, match="only its owner or the admin"):
            action()
    assert harness.store.get_job(mine).status == "queued", "a refused cancel changed nothing"
    with pytest.raises(jobs_api.JobAccessError, match="does not exist"):
        jobs_api.follow_job(harness.store, ALICE, 999)
    with pytest.raises(jobs_api.JobAccessError, match="not a job number"):
        jobs_api.follow_job(harness.store, ALICE, "1; DROP TABLE jobs")
    with pytest.raises(EditError, match="cancel it or wait"):
        jobs_api.undo_job_by_id(harness.store, ALICE, mine)
    assert jobs_api.cancel_job_by_id(harness.settings, harness.store, ALICE, mine).status == "cancelled"
    view, restored = jobs_api.undo_job_by_id(harness.store, ALICE, mine)
    assert view.undone and restored == 0
    # The admin cancels someone else's queued job (say its owner left), and the owner reads who did it.
    view = jobs_api.cancel_job_by_id(harness.settings, harness.store, ADMIN, theirs)
    assert view.status == "cancelled" and view.message == "cancelled by admin"
    with pytest.raises(jobs_api.JobAccessError, match="only the admin sees model downloads"):
        jobs_api.list_downloads(harness.store, ALICE)
    assert jobs_api.list_downloads(harness.store, ADMIN) == []


def test_a_job_from_before_owners_answers_to_the_admin_only(harness):
    dataset, tracks = harness.add_sample()
    legacy = enqueue_tracking_job(harness.settings, harness.store, _spec(dataset, tracks[:1], queue="gpu")).job_id
    with pytest.raises(jobs_api.JobAccessError, match="only its owner or the admin"):
        jobs_api.cancel_job_by_id(harness.settings, harness.store, jobs_api.Caller("anonymous", False), legacy)
    assert harness.store.get_job(legacy).status == "queued", "the refused cancel changed nothing"
    assert jobs_api.cancel_job_by_id(harness.settings, harness.store, ADMIN, legacy).status == "cancelled"


def test_anonymous_callers_get_stable_ids_and_bad_tokens_are_ignored():
    assert jobs_api.Caller.from_login(None, False).user == "anonymous"
    assert jobs_api.Caller.from_login("", False, anonymous_id="a1b2c3d4e5f6").user == "anon:a1b2c3d4e5f6"
    assert jobs_api.Caller.from_login(None, False, anonymous_id="../../x" * 3).user == "anonymous"
    assert jobs_api.Caller.from_login("carol", True, anonymous_id="a1b2c3d4e5f6") == jobs_api.Caller("carol", True)


def test_a_queued_job_no_longer_blocks_removing_its_model(harness):
    dataset, tracks = harness.add_sample()
    job_id = enqueue_tracking_job(harness.settings, harness.store, _spec(dataset, tracks[:1], queue="gpu"),
                                  owner="alice").job_id
    enqueue_model_removal(harness.settings, harness.store, TEST_MODEL_NAME, "gpu")
    view = jobs_api.follow_job(harness.store, ALICE, job_id)
    assert view.status == "cancelled" and f"removed the model '{TEST_MODEL_NAME}'" in view.message


def test_an_import_with_replace_waits_for_the_jobs_on_that_video(harness):
    from sam2_tracking.annotation_set import AnnotationSet

    dataset, tracks = harness.add_sample()
    job_id = enqueue_tracking_job(harness.settings, harness.store, _spec(dataset, tracks[:1], queue="gpu"),
                                  owner="alice").job_id
    annotations = harness.store.export_annotations(dataset.dataset_id)
    before = harness.store.list_tracks(dataset.dataset_id)
    with pytest.raises(EditError, match=rf"job\(s\) {job_id} \(alice\) are working on this video"):
        harness.store.import_annotations(dataset.dataset_id, annotations, replace_existing=True)
    assert harness.store.list_tracks(dataset.dataset_id) == before
    # Adding tracks is fine meanwhile, and replacing works once the job has ended.
    harness.store.import_annotations(dataset.dataset_id, AnnotationSet((), dataset.width, dataset.height,
                                                                       dataset.frame_count, dataset.fps, "x"))
    jobs_api.cancel_job_by_id(harness.settings, harness.store, ALICE, job_id)
    harness.store.create_track(dataset.dataset_id, "added after the export")
    harness.store.import_annotations(dataset.dataset_id, annotations, replace_existing=True)
    # Replaced: the exported tracks only, the one added since gone.
    after = harness.store.list_tracks(dataset.dataset_id)
    assert [(t.label, t.begin, t.end) for t in after] == [(t.label, t.begin, t.end) for t in before]


@pytest.mark.slow
def test_turning_sam2_off_stops_running_and_queued_jobs_keeping_their_frames(harness):
    from ui.admin import SAM2_OFF_MESSAGE, set_sam2_enabled

    dataset, tracks = harness.add_sample()
    harness.start_consumer("cpu")
    running = enqueue_tracking_job(harness.settings, harness.store, _spec(dataset, tracks[:1], frames=150),
                                   owner="alice").job_id
    queued = enqueue_tracking_job(harness.settings, harness.store, _spec(dataset, tracks[1:], queue="gpu"),
                                  owner="bob").job_id
    wait_for(lambda: harness.store.get_job(running).frames_done >= 10, 240, f"a batch to commit ({harness.logs()})")
    # Logins are off in these settings, so the request-less call is the local admin's, as in `python app.py`.
    message = set_sam2_enabled(harness.settings, harness.store, False, None)
    assert f"stopped job(s) {queued}, {running}" in message
    stopped = _wait_status(harness, running, ("cancelled", "done", "failed"), 60)
    # The reason is the message its owner reads (a stop, not a failure: no error).
    assert stopped.status == "cancelled" and stopped.message == SAM2_OFF_MESSAGE and stopped.error is None
    written = harness.store.job_frames_written(running)
    assert 10 <= len(written) < 150
    assert [f.frame_idx for f in harness.store.get_features(tracks[0])] == sorted(written)
    bob_view = jobs_api.follow_job(harness.store, BOB, queued)
    assert bob_view.status == "cancelled" and bob_view.message == SAM2_OFF_MESSAGE
