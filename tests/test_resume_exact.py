"""Exact resume through real consumers: a consumer SIGKILLed in the middle of a job, a new consumer that finishes it
from the saved tracking state, and every frame compared with an uninterrupted run of the same job."""

from __future__ import annotations

import numpy as np
import pytest

from queues.dispatch import enqueue_tracking_job
from queues.runner import resume_point_path
from sam2_tracking.testing.queue_harness import TEST_MODEL_NAME, QueueHarness
from sam2_tracking.testing.wait import wait_for
from sam2_tracking.types import Direction, JobSpec

pytestmark = pytest.mark.slow

FRAMES = 40


@pytest.fixture
def harness(tmp_path, shared_model_dir):
    h = QueueHarness(tmp_path, shared_model_dir)
    h.register_model()
    yield h
    h.close()
    from queues.config import forget_instances

    forget_instances()


def uninterrupted_masks(harness: QueueHarness, spec: JobSpec, video_path) -> dict[tuple[int, int], np.ndarray]:
    """The same job (model, video, seeds, frames) tracked in one go in this process."""
    import torch

    from sam2_tracking.engine.tracker import track_objects
    from sam2_tracking.engine.video import open_video
    from sam2_tracking.jobs.seeds import seeds_from_json
    from sam2_tracking.models.catalogue import load_predictor
    from sam2_tracking.types import ObjectSeeds

    seeds = seeds_from_json(spec.extra["seeds"])
    objects = [ObjectSeeds(track_id, tuple(seeds[track_id])) for track_id in spec.track_ids]
    predictor = load_predictor(harness.settings.model_dir / TEST_MODEL_NAME, "cpu")
    out = {}
    # The consumers run with one torch thread (the harness sets OMP_NUM_THREADS=1); CPU kernels sum in another order
    # with more threads, so the uninterrupted run uses one thread too.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with open_video(video_path) as frames:
            for batch in track_objects(predictor, frames, objects, spec.start_frame_idx, spec.num_frames,
                                       spec.direction, 100):
                for fm in batch:
                    out[(fm.frame_idx, fm.track_id)] = fm.mask_array() if fm.present else None
    finally:
        torch.set_num_threads(threads)
    return out


def test_sigkilled_consumer_resumes_bit_identically(harness):
    dataset, tracks = harness.add_sample()
    first = harness.start_consumer("cpu")
    spec = JobSpec(dataset_id=dataset.dataset_id, track_ids=tuple(tracks), start_frame_idx=0,
                   model_name=TEST_MODEL_NAME, queue="cpu", num_frames=FRAMES, direction=Direction.FORWARD,
                   batch_size=10, notify_percent=10)
    enqueued = enqueue_tracking_job(harness.settings, harness.store, spec)
    saved = resume_point_path(harness.settings, enqueued.job_id)
    # Killed in the middle of a batch, after at least one commit saved its tracking state.
    wait_for(lambda: harness.store.get_job(enqueued.job_id).frames_done >= 10 and saved.exists(), 240,
             f"a batch to commit ({harness.logs()})")
    harness.kill(first)
    committed_at_kill = harness.store.job_frames_written(enqueued.job_id)
    assert 10 <= len(committed_at_kill) < FRAMES
    harness.start_consumer("cpu")
    job = wait_for(lambda: (j := harness.store.get_job(enqueued.job_id)).status in ("done", "failed") and j, 300,
                   f"the resumed job to end ({harness.logs()})", 0.2)
    assert job.status == "done", job.error
    assert job.resumed_count >= 1 and job.frames_done == FRAMES
    assert "resuming from its saved tracking state" in harness.logs()
    assert not saved.exists(), "the saved tracking state outlives the job"
    expected = uninterrupted_masks(harness, harness.store.get_job(enqueued.job_id).spec, dataset.path)
    for track_id in tracks:
        features = harness.store.get_features(track_id)
        assert [f.frame_idx for f in features] == list(range(FRAMES)), "each frame exactly once per track"
        for feature in features:
            want = expected[(feature.frame_idx, track_id)]
            got = feature.mask if feature.present else None
            assert (want is None) == (got is None), f"track {track_id} frame {feature.frame_idx}: presence differs"
            if want is not None:
                assert np.array_equal(got, want), f"track {track_id} frame {feature.frame_idx}: mask differs"
