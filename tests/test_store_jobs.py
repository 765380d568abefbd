"""The store's side of a job on both backends: batches and the keyframe rules they keep, exactly-once writes,
undo, the job's lifecycle and lease, and several processes writing at once."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest

from sam2_tracking.states import JobState, Lease
from sam2_tracking.store import DeleteTrack, EditError, NotFound, UpdateTrack, UpsertKeyframe, open_store
from sam2_tracking.testing.db_snapshot import snapshot
from sam2_tracking.types import Box, JobSpec
from tests.store_data import H, W, disc, results, running_job


@pytest.fixture()
def dataset(store):
    return store.add_dataset("clip", "/videos/clip.mp4", "video", 50, 30.0, W, H)


def test_job_batches_keep_keyframes_and_record_absence(store, dataset):
    ds = dataset.dataset_id
    track = store.create_track(ds, "fish")
    tid = track.track_id
    store.save_edits(ds, 0, [UpsertKeyframe(tid, 0, box=Box(3, 3, 20, 20), attributes={"note": "seed"})])
    job = running_job(store, dataset, [tid])
    store.write_job_batch(job.job_id, results(tid, range(0, 5)))
    store.write_job_batch(job.job_id, results(tid, range(5, 8), present=False))
    features = store.get_features(tid)
    assert [f.frame_idx for f in features] == list(range(8))
    seed = features[0]
    assert seed.keyframe and seed.box == Box(3, 3, 20, 20) and seed.attributes == {"note": "seed"}
    assert seed.job_id == job.job_id and np.array_equal(seed.mask, disc(10, 20)) and seed.score == 2.5
    assert not features[1].keyframe and features[1].job_id == job.job_id
    assert features[1].box == Box(5, 14, 18, 27)
    assert all(not f.present and f.mask is None and f.box is None for f in features[5:])
    assert store.get_track(tid).end == 4  # absent frames do not extend the track
    job = store.get_job(job.job_id)
    assert job.frames_done == 8 and job.last_committed_frame_idx == 7 and job.committed_forward_idx == 7
    assert store.job_frames_written(job.job_id) == set(range(8))
    # The re-track seed is still the person's box, not the job's mask.
    assert store.keyframe_seeds(tid)[0].box == Box(3, 3, 20, 20)


def test_person_mask_on_keyframe_is_never_replaced(store, dataset):
    tid = store.create_track(dataset.dataset_id).track_id
    store.save_edits(dataset.dataset_id, 0, [UpsertKeyframe(tid, 2, mask=disc(40, 30))])
    job = running_job(store, dataset, [tid], start=2)
    store.write_job_batch(job.job_id, results(tid, [2, 3]))
    feature = store.get_features(tid, 2, 3)[0]
    assert np.array_equal(feature.mask, disc(40, 30)) and feature.job_id is None


def test_newer_job_replaces_older_and_not_the_reverse(store, dataset):
    tid = store.create_track(dataset.dataset_id).track_id
    old = running_job(store, dataset, [tid])
    new = running_job(store, dataset, [tid])
    store.write_job_batch(old.job_id, results(tid, range(0, 4)))
    store.write_job_batch(new.job_id, results(tid, range(2, 6), shift=5))
    store.write_job_batch(old.job_id, results(tid, range(4, 8)))  # the old job resumes late
    by_frame = {f.frame_idx: f for f in store.get_features(tid)}
    assert [by_frame[f].job_id for f in range(8)] == [old.job_id] * 2 + [new.job_id] * 4 + [old.job_id] * 2
    assert np.array_equal(by_frame[3].mask, disc(10 + 3 + 5, 20))


def test_batches_are_exactly_once(store, dataset):
    tid = store.create_track(dataset.dataset_id).track_id
    job = running_job(store, dataset, [tid])
    store.write_job_batch(job.job_id, results(tid, range(0, 3)))
    store.write_job_batch(job.job_id, results(tid, range(0, 5)))  # a resumed run repeats frames 0-2
    assert store.get_job(job.job_id).frames_done == 5
    assert store.job_frames_written(job.job_id) == set(range(5))


def test_write_batch_refuses_unclaimed_or_foreign_track(store, dataset):
    tid = store.create_track(dataset.dataset_id).track_id
    other = store.create_track(dataset.dataset_id).track_id
    job = store.create_job(JobSpec(dataset.dataset_id, (tid,), 0, "tiny", "cpu"), 5)
    with pytest.raises(EditError, match="queued, not running"):
        store.write_job_batch(job.job_id, results(tid, [0]))
    store.claim_job(job.job_id, "w")
    with pytest.raises(EditError, match=f"track {other}"):
        store.write_job_batch(job.job_id, results(tid, [0]) + results(other, [0]))
    assert store.get_features(tid) == []


def test_undo_job_restores_exactly(store, dataset, tmp_path):
    ds = dataset.dataset_id
    tid = store.create_track(ds).track_id
    store.save_edits(ds, 0, [UpsertKeyframe(tid, 0, box=Box(3, 3, 20, 20))])
    first = running_job(store, dataset, [tid])
    store.write_job_batch(first.job_id, results(tid, range(0, 6)))
    store.update_job(first.job_id, status="done")
    before_second = snapshot(store)
    second = running_job(store, dataset, [tid])
    store.write_job_batch(second.job_id, results(tid, range(0, 10), shift=3))
    with pytest.raises(EditError, match="still running"):
        store.undo_job(second.job_id)
    store.update_job(second.job_id, status="done")
    assert store.undo_job(second.job_id) == 10
    after = snapshot(store)
    assert after["features"] == before_second["features"]
    with pytest.raises(EditError, match="already undone"):
        store.undo_job(second.job_id)
    assert store.undo_job(first.job_id) == 6
    [seed] = store.get_features(tid)
    assert seed.keyframe and seed.mask is None and seed.job_id is None and seed.box == Box(3, 3, 20, 20)


def test_undo_older_job_after_newer_one_does_not_resurrect(store, dataset):
    tid = store.create_track(dataset.dataset_id).track_id
    old = running_job(store, dataset, [tid])
    store.write_job_batch(old.job_id, results(tid, range(0, 4)))
    new = running_job(store, dataset, [tid])
    store.write_job_batch(new.job_id, results(tid, range(2, 6), shift=5))
    for job in (old, new):
        store.update_job(job.job_id, status="done")
    assert store.undo_job(old.job_id) == 2  # frames 0-1; 2-3 now belong to the newer job
    assert store.undo_job(new.job_id) == 4
    assert store.get_features(tid) == []


def test_undo_leaves_a_persons_later_edit(store, dataset):
    tid = store.create_track(dataset.dataset_id).track_id
    job = running_job(store, dataset, [tid])
    store.write_job_batch(job.job_id, results(tid, range(0, 3)))
    store.update_job(job.job_id, status="done")
    store.save_edits(dataset.dataset_id, 0, [UpsertKeyframe(tid, 1, box=Box(1, 1, 9, 9))])
    rev = store.get_revision(dataset.dataset_id)
    assert store.undo_job(job.job_id) == 2
    assert [(f.frame_idx, f.keyframe) for f in store.get_features(tid)] == [(1, True)]
    assert store.get_revision(dataset.dataset_id) == rev + 1


def test_job_lifecycle(store, dataset):
    tid = store.create_track(dataset.dataset_id).track_id
    job = store.create_job(JobSpec(dataset.dataset_id, (tid,), 3, "tiny", "gpu", num_frames=10, direction="both"), 19)
    assert job.status is JobState.QUEUED and job.spec.direction.value == "both" and job.frames_total == 19
    assert store.claim_job(job.job_id, "w1") and not store.claim_job(job.job_id, "w2")
    started_at = store.get_job(job.job_id).started_at
    # Claimed again by its holder (to fetch the model, then to track): not a resume.
    assert store.claim_job(job.job_id, "w1")
    assert store.get_job(job.job_id).resumed_count == 0 and store.get_job(job.job_id).started_at == started_at
    assert store.claim_job(job.job_id, "w2", stale_after_s=-1)  # w1 stopped heart-beating: taken over
    job = store.get_job(job.job_id)
    assert job.worker == "w2" and job.resumed_count == 1
    assert store.claim_job(job.job_id, "w2") and store.get_job(job.job_id).resumed_count == 1
    store.write_job_batch(job.job_id, results(tid, [3, 4, 5]))
    store.write_job_batch(job.job_id, results(tid, [2, 1]))
    job = store.update_job(job.job_id, fps=2.5, eta_s=4.0, notification={
        "frame_idx": 1, "frames_done": 5, "frames_total": 19, "percent": 26.3, "preview_jpeg": b"\xff\xd8", "at": 1.0})
    assert (job.committed_forward_idx, job.committed_backward_idx, job.last_committed_frame_idx) == (5, 1, 1)
    assert job.notification.preview_jpeg == b"\xff\xd8" and job.notifications_count == 1 and job.fps == 2.5
    with pytest.raises(ValueError, match="unknown or read-only"):
        store.update_job(job.job_id, committed_forward_idx=3)
    # A progress note is the job's message; error stays for failures.
    job = store.update_job(job.job_id, message="fetching model tiny onto h")
    assert (job.message, job.error) == ("fetching model tiny onto h", None)
    assert store.requeue_job(job.job_id, expected_worker="w2") and store.get_job(job.job_id).status is JobState.QUEUED
    assert store.list_jobs(dataset.dataset_id, statuses=["queued"])[0].job_id == job.job_id
    store.request_cancel(job.job_id)
    assert store.is_cancel_requested(job.job_id) and not store.claim_job(job.job_id, "w3")
    assert store.cancel_if_queued(job.job_id)
    job = store.get_job(job.job_id)
    assert job.status is JobState.CANCELLED and job.finished_at is not None
    with pytest.raises(NotFound):
        store.get_job(12345)


def _writer_process(path: str, job_id: int, track_id: int, frames: list[int]) -> None:
    store = open_store(path)
    for start in range(0, len(frames), 5):
        store.write_job_batch(job_id, results(track_id, frames[start : start + 5]))
        store.record_heartbeat(f"w{job_id}", "cpu", "h", 1, "cpu", job_id)
    store.close()


def test_several_processes_write_at_once(store_location):
    path = store_location
    store = open_store(path)
    ds = store.add_dataset("clip", "/c.mp4", "video", 50, 30, W, H)
    tracks = [store.create_track(ds.dataset_id).track_id for _ in range(3)]
    jobs = [running_job(store, ds, [t]).job_id for t in tracks]
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer_process, args=(str(path), j, t, list(range(40)))) for j, t in zip(jobs, tracks, strict=True)]
    for p in procs:
        p.start()
    for _ in range(20):  # the app keeps saving while consumers write
        rev = store.get_revision(ds.dataset_id)
        store.save_edits(ds.dataset_id, rev, [UpdateTrack(tracks[0], attributes={"rev": rev})])
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert all(store.get_job(j).frames_done == 40 for j in jobs)
    assert all(len(store.get_features(t)) == 40 for t in tracks)
    assert store.get_revision(ds.dataset_id) == 20
    store.close()


def test_a_worker_that_lost_its_job_cannot_write_or_end_it(store, dataset):
    from sam2_tracking.store.jobs import LeaseLost

    tid = store.create_track(dataset.dataset_id).track_id
    job = running_job(store, dataset, [tid])  # held by w1
    assert store.job_lease(job.job_id, "w1") is Lease.OK
    assert store.requeue_job(job.job_id, expected_worker="w1") and store.claim_job(job.job_id, "w2")
    assert store.job_lease(job.job_id, "w1") is Lease.LOST
    with pytest.raises(LeaseLost):
        store.write_job_batch(job.job_id, results(tid, [0, 1]), worker="w1")
    assert not store.finish_job(job.job_id, "w1", "failed", error="boom")
    store.write_job_batch(job.job_id, results(tid, [0, 1]), worker="w2")
    store.request_cancel(job.job_id)
    assert store.job_lease(job.job_id, "w2") is Lease.CANCEL
    assert store.finish_job(job.job_id, "w2", "cancelled")
    job = store.get_job(job.job_id)
    assert job.status is JobState.CANCELLED and job.error is None and store.job_frames_written(job.job_id) == {0, 1}


def test_a_track_deleted_mid_job_fails_its_next_batch_with_a_message(store, dataset):
    tid = store.create_track(dataset.dataset_id).track_id
    job = running_job(store, dataset, [tid])
    store.save_edits(dataset.dataset_id, store.get_revision(dataset.dataset_id), [DeleteTrack(tid)])
    with pytest.raises(EditError, match=f"track\\(s\\) {tid} were deleted while the job ran"):
        store.write_job_batch(job.job_id, results(tid, [0]))
