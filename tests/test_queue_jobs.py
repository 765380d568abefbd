"""Tracking jobs through real consumer processes, on SQLite and on a real redis-server.

Each test starts `python -m queues.consumer` subprocesses over a fresh data folder; the model is the random-weight
SAM2.1 Tiny test model, downloaded once over loopback HTTP into a shared model store.
"""

from __future__ import annotations

import pytest

from queues.dispatch import cancel_job, enqueue_tracking_job
from sam2_tracking.jobs.plan import expected_notifications
from sam2_tracking.testing.queue_harness import TEST_MODEL_NAME, QueueHarness
from sam2_tracking.testing.redis_server import running_redis
from sam2_tracking.testing.wait import wait_for
from sam2_tracking.types import JobSpec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    with running_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(params=["sqlite", "redis"])
def harness(request, tmp_path, shared_model_dir):
    queue_url = ""
    if request.param == "redis":
        queue_url = request.getfixturevalue("redis_url")
        import redis

        redis.Redis.from_url(queue_url).flushdb()
    h = QueueHarness(tmp_path, shared_model_dir, queue_url=queue_url)
    h.register_model()
    yield h
    h.close()
    from queues.config import forget_instances

    forget_instances()


def _spec(dataset, track_ids, queue="cpu", frames=20, batch=10, percent=10, **kw) -> JobSpec:
    return JobSpec(dataset_id=dataset.dataset_id, track_ids=tuple(track_ids), start_frame_idx=0,
                   model_name=TEST_MODEL_NAME, queue=queue, num_frames=frames, batch_size=batch,
                   notify_percent=percent, **kw)


def _job(h: QueueHarness, job_id: int):
    return h.store.get_job(job_id)


def _wait_status(h: QueueHarness, job_id: int, statuses: tuple[str, ...], timeout_s: float = 180):
    return wait_for(lambda: _job(h, job_id) if _job(h, job_id).status in statuses else None, timeout_s,
                    f"job {job_id} to reach {statuses} (now {_job(h, job_id).status}; logs: {h.logs()})", 0.2)


def test_job_completes_with_expected_notifications(harness):
    dataset, tracks = harness.add_sample()
    harness.start_consumer("cpu")
    enqueued = enqueue_tracking_job(harness.settings, harness.store, _spec(dataset, tracks[:1], percent=10))
    assert enqueued.warning is None
    job = _wait_status(harness, enqueued.job_id, ("done", "failed"))
    assert job.status == "done", job.error
    assert job.frames_done == job.frames_total == 20
    assert job.notifications_count == expected_notifications(20, 10) == 10
    assert job.notification.frame_idx == 19 and job.notification.preview_jpeg[:2] == b"\xff\xd8"
    assert harness.store.job_frames_written(job.job_id) == set(range(20))
    features = harness.store.get_features(tracks[0])
    assert [f.frame_idx for f in features] == list(range(20))
    assert features[0].keyframe and features[0].box is not None  # the seed keeps its box and gains a mask
    assert all(f.job_id == job.job_id for f in features)
    # A standalone consumer's log is quiet: no sam2 missing-extension warning, no tqdm bars, no request lines.
    output = "\n".join(p.read_text() for p in harness.tmp_path.glob("consumer-*.log"))
    noise = [line for line in output.splitlines() if "_C" in line or "it/s]" in line or "HTTP Request" in line]
    assert not noise, noise


def test_notifications_include_the_final_frame(harness):
    dataset, tracks = harness.add_sample()
    harness.start_consumer("cpu")
    # 23 frames at 10 %: interval ceil(2.3) = 3, so frames 3, 6, ... 21, plus the final 23rd.
    enqueued = enqueue_tracking_job(harness.settings, harness.store, _spec(dataset, tracks[:1], frames=23))
    job = _wait_status(harness, enqueued.job_id, ("done", "failed"))
    assert job.status == "done", job.error
    assert job.notifications_count == expected_notifications(23, 10) == 8
    assert job.notification.frames_done == 23 and job.notification.frame_idx == 22


def test_previews_arrive_before_the_batch_commits(harness):
    dataset, tracks = harness.add_sample()
    harness.start_consumer("cpu")
    # 30 frames in one batch of 100: nothing commits before the end, yet every 10 % (3 frames) brings a preview.
    spec = _spec(dataset, tracks[:1], frames=30, batch=100, percent=10)
    enqueued = enqueue_tracking_job(harness.settings, harness.store, spec)
    early = wait_for(lambda: (lambda job: job if job.notification or job.finished else None)(_job(harness, enqueued.job_id)),
                     180, "the job's first notification", 0.05)
    note = early.notification
    assert note is not None and early.frames_done == 0, (early.status, early.frames_done, harness.logs())
    assert note.preview_jpeg[:2] == b"\xff\xd8" and note.frames_total == 30
    assert note.frames_done % 3 == 0 and 3 <= note.frames_done < 30 and note.frame_idx == note.frames_done - 1
    job = _wait_status(harness, enqueued.job_id, ("done", "failed"))
    assert job.status == "done", job.error
    assert job.frames_done == 30 and job.notifications_count == expected_notifications(30, 10) == 10
    assert job.notification.frames_done == 30 and job.notification.frame_idx == 29


def test_cancel_while_queued(harness):
    dataset, tracks = harness.add_sample()
    enqueued = enqueue_tracking_job(harness.settings, harness.store, _spec(dataset, tracks[:1]))
    assert "no worker is listening on cpu" in enqueued.warning
    assert cancel_job(harness.settings, harness.store, enqueued.job_id) == "cancelled"
    harness.start_consumer("cpu")
    # A job queued after it on the same queue: the consumer (one worker, first in first out) has taken the cancelled
    # task off the queue before this one runs, so once this one is done the cancelled one was seen and skipped.
    later = enqueue_tracking_job(harness.settings, harness.store, _spec(dataset, tracks[1:2], frames=2))
    assert _wait_status(harness, later.job_id, ("done", "failed")).status == "done"
    job = _job(harness, enqueued.job_id)
    assert job.status == "cancelled" and job.worker is None and job.frames_done == 0
    assert harness.store.job_frames_written(job.job_id) == set()


def test_cancel_while_running_keeps_every_tracked_frame(harness):
    dataset, tracks = harness.add_sample()
    harness.start_consumer("cpu")
    enqueued = enqueue_tracking_job(harness.settings, harness.store, _spec(dataset, tracks[:1], frames=150))
    wait_for(lambda: _job(harness, enqueued.job_id).frames_done >= 10, 120, "the first batch to commit")
    assert cancel_job(harness.settings, harness.store, enqueued.job_id) in ("running", "cancelled")
    job = _wait_status(harness, enqueued.job_id, ("cancelled", "done", "failed"), 60)
    assert job.status == "cancelled"
    written = harness.store.job_frames_written(job.job_id)
    # Every frame tracked before the stop is kept, the ones since the last batch of 10 included.
    assert 10 <= len(written) < 150 and written == set(range(len(written)))
    assert job.frames_done == len(written)


def test_killed_consumer_job_resumes_and_every_frame_is_written_once(harness):
    dataset, tracks = harness.add_sample()
    first = harness.start_consumer("cpu")
    enqueued = enqueue_tracking_job(harness.settings, harness.store, _spec(dataset, tracks, frames=40))
    wait_for(lambda: _job(harness, enqueued.job_id).frames_done >= 10, 150, "a batch to commit")
    harness.kill(first)
    done_before_kill = harness.store.job_frames_written(enqueued.job_id)
    assert _job(harness, enqueued.job_id).status == "running"
    harness.start_consumer("cpu")
    job = _wait_status(harness, enqueued.job_id, ("done", "failed"))
    assert job.status == "done", job.error
    assert job.resumed_count >= 1
    assert harness.store.job_frames_written(job.job_id) == set(range(40))
    assert done_before_kill < set(range(40))
    for track_id in tracks:
        frames = [f.frame_idx for f in harness.store.get_features(track_id)]
        assert frames == list(range(40)), "each frame exactly once per track"
    assert job.frames_done == 40
    # Frames tracked but not committed before the kill had their notification: the resumed run does not repeat it.
    assert job.notifications_count == expected_notifications(40, 10) == 10


def test_two_queues_run_jobs_at_the_same_time(harness):
    dataset, tracks = harness.add_sample()
    harness.start_consumer("cpu")
    harness.start_consumer("gpu")  # a gpu-queue consumer on the CPU: the queue, not the device, is under test
    a = enqueue_tracking_job(harness.settings, harness.store, _spec(dataset, tracks[:1], queue="cpu", frames=20))
    b = enqueue_tracking_job(harness.settings, harness.store, _spec(dataset, tracks[1:], queue="gpu", frames=20))
    wait_for(lambda: _job(harness, a.job_id).status == "running" and _job(harness, b.job_id).status == "running"
             or None, 120, "both jobs to be running at once")
    job_a = _wait_status(harness, a.job_id, ("done", "failed"))
    job_b = _wait_status(harness, b.job_id, ("done", "failed"))
    assert job_a.status == job_b.status == "done"
    assert job_a.worker.split(":")[2] == "cpu" and job_b.worker.split(":")[2] == "gpu"


def test_job_on_a_queue_without_consumer_waits_with_a_warning(harness):
    dataset, tracks = harness.add_sample()
    harness.start_consumer("cpu")
    enqueued = enqueue_tracking_job(harness.settings, harness.store, _spec(dataset, tracks[:1], queue="gpu"))
    assert enqueued.warning.startswith("no worker is listening on gpu: the job will wait")
    # The cpu consumer runs a cpu job queued after it meanwhile, and leaves the gpu job alone.
    cpu_job = enqueue_tracking_job(harness.settings, harness.store, _spec(dataset, tracks[1:2], frames=2))
    assert _wait_status(harness, cpu_job.job_id, ("done", "failed")).status == "done"
    assert _job(harness, enqueued.job_id).status == "queued" and _job(harness, enqueued.job_id).worker is None
    harness.start_consumer("gpu")
    job = _wait_status(harness, enqueued.job_id, ("done", "failed"))
    assert job.status == "done", job.error
