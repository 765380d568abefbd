"""The app side of the queues: bad job specs refused before anything is queued; model downloads through a consumer."""

from __future__ import annotations

import dataclasses

import pytest

from queues.dispatch import JobSpecError, enqueue_model_download, enqueue_model_removal, enqueue_tracking_job
from sam2_tracking.store import NotFound, UpsertKeyframe
from sam2_tracking.testing.queue_harness import TEST_MODEL_NAME, QueueHarness
from sam2_tracking.testing.wait import wait_for
from sam2_tracking.types import Box, JobSpec


@pytest.fixture()
def harness(tmp_path):
    h = QueueHarness(tmp_path, tmp_path / "models")
    yield h
    h.close()
    from queues.config import forget_instances

    forget_instances()


def _queued_task_count(h: QueueHarness) -> int:
    from queues.config import get_huey

    return sum(get_huey(h.settings, queue).pending_count() for queue in h.settings.queue_names)


def test_bad_specs_are_refused_and_nothing_is_queued(harness):
    dataset, tracks = harness.add_sample()
    harness.store.upsert_model(TEST_MODEL_NAME, "configs/sam2.1/sam2.1_hiera_t.yaml", "http://127.0.0.1:9/x.pt",
                               is_default=False, status="ready")
    harness.store.upsert_model("absent-model", "configs/sam2.1/sam2.1_hiera_t.yaml", "http://127.0.0.1:9/y.pt",
                               is_default=False, status="absent")
    # A second video's track, and a track on the sample without any seed.
    other, other_tracks = harness.add_sample("sample_sequence.zip")
    bare = harness.store.create_track(dataset.dataset_id, "no seed")
    good = JobSpec(dataset_id=dataset.dataset_id, track_ids=(tracks[0],), start_frame_idx=0,
                   model_name=TEST_MODEL_NAME, queue="cpu", num_frames=10)
    cases = {
        "unknown dataset 999": dataclasses.replace(good, dataset_id=999),
        "unknown track 999": dataclasses.replace(good, track_ids=(999,)),
        "unknown model 'nope'": dataclasses.replace(good, model_name="nope"),
        "unknown queue 'tpu'": dataclasses.replace(good, queue="tpu"),
        "model 'absent-model' is not downloaded": dataclasses.replace(good, model_name="absent-model"),
        "start frame 150 is outside the video": dataclasses.replace(good, start_frame_idx=150),
        f"track {bare.track_id} has no saved box": dataclasses.replace(good, track_ids=(bare.track_id,)),
        f"track {tracks[0]} has no saved box, mask or clicks on frame 5": dataclasses.replace(good,
                                                                                              start_frame_idx=5),
        f"track {other_tracks[0]} belongs to dataset {other.dataset_id}": dataclasses.replace(
            good, track_ids=(other_tracks[0],)),
    }
    for expected, spec in cases.items():
        with pytest.raises(JobSpecError) as excinfo:
            enqueue_tracking_job(harness.settings, harness.store, spec)
        assert expected in str(excinfo.value)
    for field, value, expected in [("batch_size", 50, "batch size must be one of"),
                                   ("notify_percent", 0, "notification percent must be between 1 and 50"),
                                   ("notify_percent", 51, "notification percent must be between 1 and 50")]:
        with pytest.raises(ValueError, match=expected):
            dataclasses.replace(good, **{field: value})
    assert harness.store.list_jobs() == []
    assert _queued_task_count(harness) == 0


def test_a_seed_box_outside_the_frame_is_refused(harness):
    dataset, tracks = harness.add_sample()
    harness.store.upsert_model(TEST_MODEL_NAME, "c", "http://127.0.0.1:9/x.pt", is_default=False, status="ready")
    revision = harness.store.get_revision(dataset.dataset_id)
    harness.store.save_edits(dataset.dataset_id, revision,
                             [UpsertKeyframe(tracks[0], 3, box=Box(700, 10, 760, 50))])
    spec = JobSpec(dataset_id=dataset.dataset_id, track_ids=(tracks[0],), start_frame_idx=3,
                   model_name=TEST_MODEL_NAME, queue="cpu")
    with pytest.raises(JobSpecError, match="outside the 640x360 frame"):
        enqueue_tracking_job(harness.settings, harness.store, spec)
    assert harness.store.list_jobs() == []


@pytest.mark.slow
def test_model_download_force_redownload_and_removal_through_a_consumer(harness, model_server):
    harness.store.upsert_model(TEST_MODEL_NAME, model_server.url + "/config.yaml",
                               model_server.url + "/checkpoint.pt", is_default=False, status="absent")
    warning = enqueue_model_download(harness.settings, harness.store, TEST_MODEL_NAME, "cpu")
    assert warning.startswith("no worker is listening on cpu")
    assert harness.store.get_model(TEST_MODEL_NAME).status == "queued"
    harness.start_consumer("cpu")
    record = wait_for(lambda: harness.store.get_model(TEST_MODEL_NAME)
                      if harness.store.get_model(TEST_MODEL_NAME).status in ("ready", "failed") else None,
                      120, "the download to finish")
    assert record.status == "ready", record.error
    checkpoint = harness.settings.model_dir / TEST_MODEL_NAME / "checkpoint.pt"
    assert record.size == checkpoint.stat().st_size and record.progress_bytes == record.size
    first_mtime = checkpoint.stat().st_mtime_ns

    assert enqueue_model_download(harness.settings, harness.store, TEST_MODEL_NAME, "cpu", force=True) is None
    wait_for(lambda: checkpoint.exists() and checkpoint.stat().st_mtime_ns != first_mtime
             and harness.store.get_model(TEST_MODEL_NAME).status == "ready", 120, "the forced re-download")

    enqueue_model_removal(harness.settings, harness.store, TEST_MODEL_NAME, "cpu")
    wait_for(lambda: not checkpoint.parent.exists(), 60, "the model folder to be removed")
    wait_for(lambda: TEST_MODEL_NAME not in [m.name for m in harness.store.list_models()], 5,
             "the catalogue entry to go")
    with pytest.raises(NotFound):
        harness.store.get_model(TEST_MODEL_NAME)


@pytest.mark.slow
def test_unreachable_checkpoint_url_fails_the_download_with_a_message(harness):
    harness.store.upsert_model("broken", "configs/sam2.1/sam2.1_hiera_t.yaml", "http://127.0.0.1:9/missing.pt",
                               is_default=False, status="absent")
    harness.start_consumer("cpu")
    enqueue_model_download(harness.settings, harness.store, "broken", "cpu")
    record = wait_for(lambda: harness.store.get_model("broken") if harness.store.get_model("broken").status
                      == "failed" else None, 60, "the download to fail")
    assert "127.0.0.1:9" in record.error
