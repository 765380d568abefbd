"""Seed previews through real consumer processes (`python -m queues.consumer`), on SQLite and on a real redis-server.

The page's side (queues.seed_preview.request_preview) runs in the test process, the model in the consumer, as in the app.
"""

from __future__ import annotations

import numpy as np
import pytest

from queues.dispatch import enqueue_tracking_job
from queues.seed_preview import PreviewError, preview_huey, request_preview
from sam2_tracking.store import CreateTrack, UpsertKeyframe
from sam2_tracking.testing.db_snapshot import snapshot
from sam2_tracking.testing.queue_harness import TEST_MODEL_NAME, QueueHarness
from sam2_tracking.testing.redis_server import running_redis
from sam2_tracking.testing.wait import wait_for
from sam2_tracking.types import Box, Click, JobSpec

pytestmark = pytest.mark.slow

FRAME_IDX = 3
BOX = [30.0, 20.0, 120.0, 90.0]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, model_server):
    """The test model downloaded through the real download path once."""
    from sam2_tracking.models.catalogue import custom_model_entry, download_model

    folder = tmp_path_factory.mktemp("models")
    entry = custom_model_entry(TEST_MODEL_NAME, model_server.url + "/config.yaml", model_server.url + "/checkpoint.pt")
    download_model(entry, folder)
    return folder


def make_harness(tmp_path, model_dir, queue_url=""):
    h = QueueHarness(tmp_path, model_dir, queue_url=queue_url)
    h.register_model()
    return h


@pytest.fixture()
def harness(tmp_path, model_dir):
    h = make_harness(tmp_path, model_dir)
    yield h
    h.close()
    _forget()


def _forget() -> None:
    from queues import seed_preview as preview
    from queues.config import forget_instances

    forget_instances()
    preview._hueys.clear()  # noqa: SLF001 - each test has its own queue files


def new_track(h: QueueHarness, dataset) -> int:
    saved = h.store.save_edits(dataset.dataset_id, h.store.get_dataset(dataset.dataset_id).revision,
                               [CreateTrack(label="preview")])
    return saved.track_ids[-1]


def ask(h: QueueHarness, dataset, track_id, queue="cpu", **prompt):
    return request_preview(h.settings, h.store, queue, TEST_MODEL_NAME, dataset.dataset_id,
                           prompt.pop("frame_idx", FRAME_IDX), track_id=track_id, **prompt)


def job_spec(dataset, track_id, frames, queue="cpu") -> JobSpec:
    return JobSpec(dataset_id=dataset.dataset_id, track_ids=(track_id,), start_frame_idx=FRAME_IDX,
                   model_name=TEST_MODEL_NAME, queue=queue, num_frames=frames, batch_size=10, notify_percent=10)


def wait_job(h: QueueHarness, job_id: int, statuses=("done", "failed")):
    return wait_for(lambda: h.store.get_job(job_id) if h.store.get_job(job_id).status in statuses else None, 180,
                    f"job {job_id} to end ({h.logs()})", 0.2)


def store_rows(h: QueueHarness) -> dict:
    rows = snapshot(h.settings.store_path)
    return {table: value for table, value in rows.items() if "worker" not in table}  # heartbeats tick on


def test_preview_refines_and_the_accepted_seed_tracks_to_the_same_mask(harness):
    h = harness
    dataset, _tracks = h.add_sample()
    track_id = new_track(h, dataset)
    h.start_consumer("cpu")
    before = store_rows(h)

    first = ask(h, dataset, track_id, box=BOX, clicks=[[70, 50, True]])
    assert first.encoded and first.frame_idx == FRAME_IDX
    clicks = [[70, 50, True], [100, 80, False]]
    refined = ask(h, dataset, track_id, box=BOX, clicks=clicks)
    assert not refined.encoded  # the frame's image features were kept by the consumer
    assert refined.present and refined.mask.shape == (dataset.height, dataset.width) and refined.mask.any()
    assert store_rows(h) == before  # previews save nothing

    # "Accept": the prompts become the keyframe, then a job tracks from it; its first frame is the preview.
    revision = h.store.get_dataset(dataset.dataset_id).revision
    h.store.save_edits(dataset.dataset_id, revision, [UpsertKeyframe(
        track_id=track_id, frame_idx=FRAME_IDX, box=Box(*BOX), clicks=tuple(Click(x, y, p) for x, y, p in clicks))])
    job = wait_job(h, enqueue_tracking_job(h.settings, h.store, job_spec(dataset, track_id, 3)).job_id)
    assert job.status == "done", job.error
    tracked = {f.frame_idx: f for f in h.store.get_features(track_id)}
    assert np.array_equal(tracked[FRAME_IDX].mask, refined.mask)


def test_a_preview_is_answered_while_a_long_job_runs_on_the_same_queue(harness):
    h = harness
    dataset, tracks = h.add_sample()
    h.start_consumer("cpu")
    long_job = enqueue_tracking_job(h.settings, h.store, JobSpec(
        dataset_id=dataset.dataset_id, track_ids=(tracks[0],), start_frame_idx=0, model_name=TEST_MODEL_NAME,
        queue="cpu", num_frames=None, batch_size=10, notify_percent=10))
    wait_for(lambda: h.store.get_job(long_job.job_id).status == "running", 120, "the long job to start")
    answer = ask(h, dataset, tracks[1], clicks=[[70, 50, True]])
    assert answer.encoded
    job = h.store.get_job(long_job.job_id)
    assert job.status == "running" and job.frames_done < job.frames_total, "the preview waited for the job"


def test_a_consumer_without_the_model_fetches_it_for_previews_and_says_so(tmp_path, model_server, test_model_dir):
    """A consumer on another machine (its own empty model folder): the first preview starts a background fetch of
    the ready model from the catalogue's URL and says so at once; once fetched, previews run."""
    import hashlib

    from sam2_tracking.models.catalogue import model_status

    checkpoint = test_model_dir / "checkpoint.pt"
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    h = QueueHarness(tmp_path, tmp_path / "consumer-models", queues=("cpu",))
    try:
        h.store.upsert_model(TEST_MODEL_NAME, model_server.url + "/config.yaml", model_server.url + "/checkpoint.pt",
                             is_default=False, status="ready", size=checkpoint.stat().st_size, sha256=digest)
        dataset, tracks = h.add_sample()
        h.start_consumer("cpu")
        with pytest.raises(PreviewError, match="being fetched onto this consumer"):
            ask(h, dataset, tracks[0], box=BOX)
        wait_for(lambda: model_status(h.settings.model_dir, TEST_MODEL_NAME), 120, f"the fetch ({h.logs()})", 0.2)
        assert model_status(h.settings.model_dir, TEST_MODEL_NAME)["sha256"] == digest
        answer = ask(h, dataset, tracks[0], box=BOX)
        assert answer.mask.shape == (dataset.height, dataset.width)
    finally:
        h.close()
        _forget()


def test_bad_requests_get_a_message_and_change_nothing(harness):
    h = harness
    dataset, tracks = h.add_sample()
    consumer = h.start_consumer("cpu")
    before = store_rows(h)
    refused = [
        (dict(clicks=[[dataset.width + 3, 10, True]]), "outside the frame"),
        (dict(clicks=[[-1, 10, True]]), "outside the frame"),
        (dict(box=[dataset.width + 1, 0, dataset.width + 40, 30]), "outside"),
        (dict(box=[50, 50, 40, 60]), "empty or inverted"),
        (dict(clicks=[[float("nan"), 3, True]]), "finite"),
        (dict(clicks=[["x", 3, True]]), "not a valid prompt"),
        (dict(clicks=[]), "no box, mask or clicks"),
        (dict(frame_idx=dataset.frame_count, clicks=[[5, 5, True]]), "past the end"),
        (dict(mask=np.ones((4, 4), bool)), "the video is"),
        (dict(clicks=[[5, 5, True]] * 65), "at most 64"),
    ]
    for prompt, words in refused:
        with pytest.raises(PreviewError, match=words):
            ask(h, dataset, tracks[0], **prompt)
    with pytest.raises(PreviewError, match="no worker is listening on gpu"):
        ask(h, dataset, tracks[0], queue="gpu", clicks=[[5, 5, True]])
    with pytest.raises(PreviewError, match="unknown queue"):
        ask(h, dataset, tracks[0], queue="tpu", clicks=[[5, 5, True]])
    h.store.upsert_model("absent-model", "http://127.0.0.1:9/c.yaml", "http://127.0.0.1:9/c.pt", is_default=False,
                         status="absent")
    with pytest.raises(PreviewError, match="not ready"):
        request_preview(h.settings, h.store, "cpu", "absent-model", dataset.dataset_id, 0, clicks=[[5, 5, True]])
    with pytest.raises(PreviewError, match="unknown video"):
        request_preview(h.settings, h.store, "cpu", TEST_MODEL_NAME, 999, 0, clicks=[[5, 5, True]])
    with pytest.raises(PreviewError, match="unknown track"):
        ask(h, dataset, 999, clicks=[[5, 5, True]])
    assert preview_huey(h.settings, "cpu")[0].pending_count() == 0  # none of these reached the queue
    del before["models"]
    after = store_rows(h)
    del after["models"]
    assert after == before
    # The consumer is alive and serves the next good request.
    assert ask(h, dataset, tracks[0], clicks=[[5, 5, True]]).frame_idx == FRAME_IDX

    # A worker that stopped answering (killed; its last heartbeat is still fresh, so the request is sent): the
    # page's wait ends with a message, and the request is revoked so a consumer that starts later skips it.
    h.kill(consumer)
    with pytest.raises(PreviewError, match="no preview from the cpu worker within 2 s"):
        ask(h, dataset, tracks[0], clicks=[[5, 5, True]], timeout_s=2)
    assert preview_huey(h.settings, "cpu")[0].pending_count() == 1


@pytest.mark.redis
def test_preview_over_redis(tmp_path, model_dir, redis_url):
    h = make_harness(tmp_path, model_dir, queue_url=redis_url)
    try:
        dataset, tracks = h.add_sample()
        h.start_consumer("cpu")
        first = ask(h, dataset, tracks[0], clicks=[[70, 50, True]])
        again = ask(h, dataset, tracks[0], clicks=[[70, 50, True], [20, 15, False]])
        assert first.encoded and not again.encoded
    finally:
        h.close()
        _forget()


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    with running_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url
