"""The one-frame preview engine against the real tracker on the real SAM2.1 Tiny architecture (random weights, 256).

The preview must be the mask a tracking job writes on its seed frame, bit for bit, for every kind of prompt; a
further click on the same frame must not run the image encoder again; cached states stay within their byte bound.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sam2_tracking.engine.preview import PreviewEngine
from sam2_tracking.engine.tracker import track_objects
from sam2_tracking.engine.video import open_video
from sam2_tracking.types import Box, Click, ObjectSeeds, Seed, SeedError

FRAME_IDX = 4
TRACK_ID = 7


@pytest.fixture(scope="module")
def predictor(test_model_dir: Path):
    from sam2_tracking.models.catalogue import load_predictor

    return load_predictor(test_model_dir, "cpu")


@pytest.fixture(scope="module")
def frames(sample_video: Path):
    with open_video(sample_video) as source:
        yield source


@pytest.fixture()
def encoder_calls(predictor, monkeypatch) -> list[int]:
    """Counts runs of SAM2's image encoder (the real one, called through)."""
    calls: list[int] = []
    real = predictor.forward_image

    def counted(image):
        calls.append(1)
        return real(image)

    monkeypatch.setattr(predictor, "forward_image", counted)
    return calls


def preview(engine: PreviewEngine, predictor, frames, seed: Seed, video_key="sample"):
    return engine.preview(predictor, video_key, frames.frame_count, frames.width, frames.height, seed,
                          lambda: frames.read(seed.frame_idx), obj_id=TRACK_ID)


def job_first_frame(predictor, frames, seed: Seed):
    batches = track_objects(predictor, frames, [ObjectSeeds(TRACK_ID, (seed,))], seed.frame_idx, num_frames=2)
    first = next(iter(batches))[0]
    assert first.frame_idx == seed.frame_idx
    return first


def assert_same(preview_result, job_result) -> None:
    assert preview_result.present == job_result.present
    assert preview_result.score == job_result.score  # the logit itself, not a rounded copy
    if job_result.present:
        job_mask = job_result.mask_array()
        assert preview_result.mask.dtype == bool and preview_result.mask.shape == job_mask.shape
        assert np.array_equal(preview_result.mask, job_mask)
        assert preview_result.box == job_result.box


def sample_mask(frames) -> np.ndarray:
    mask = np.zeros((frames.height, frames.width), bool)
    mask[20:70, 30:110] = True
    return mask


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["box", "box+clicks", "clicks", "mask"])
def test_preview_equals_the_jobs_first_frame(predictor, frames, kind):
    seed = {
        "box": Seed(FRAME_IDX, box=Box(30, 20, 120, 90)),
        "box+clicks": Seed(FRAME_IDX, box=Box(30, 20, 120, 90), clicks=(Click(70, 50), Click(100, 80, False))),
        "clicks": Seed(FRAME_IDX, clicks=(Click(70, 50), Click(20, 15, False), Click(75, 55))),
        "mask": Seed(FRAME_IDX, mask=sample_mask(frames)),
    }[kind]
    engine = PreviewEngine()
    got = preview(engine, predictor, frames, seed)
    assert got.encoded
    assert_same(got.result, job_first_frame(predictor, frames, seed))
    # Served again from the cached state (after clicks on it were reset), the answer is still the job's.
    again = preview(engine, predictor, frames, Seed(FRAME_IDX, clicks=(Click(5, 5),)))
    assert not again.encoded
    assert_same(preview(engine, predictor, frames, seed).result, got.result)


@pytest.mark.slow
def test_further_clicks_reuse_the_frames_features(predictor, frames, encoder_calls):
    engine = PreviewEngine()
    positive = Seed(FRAME_IDX, clicks=(Click(70, 50),))
    first = preview(engine, predictor, frames, positive)
    assert first.encoded and len(encoder_calls) == 1
    refined = Seed(FRAME_IDX, clicks=(Click(70, 50), Click(100, 80, False)))
    second = preview(engine, predictor, frames, refined)
    assert not second.encoded and len(encoder_calls) == 1
    assert_same(second.result, job_first_frame(predictor, frames, refined))
    assert len(encoder_calls) == 3  # the job encodes its own two frames
    # Another frame is encoded once; going back to the first frame is still cached.
    preview(engine, predictor, frames, Seed(FRAME_IDX + 1, clicks=(Click(70, 50),)))
    assert len(encoder_calls) == 4
    assert not preview(engine, predictor, frames, positive).encoded and len(encoder_calls) == 4
    # Another video (same frame index) does not share features.
    assert preview(engine, predictor, frames, positive, video_key="other").encoded
    assert len(encoder_calls) == 5 and len(engine) == 3


@pytest.mark.slow
def test_cached_states_stay_within_their_byte_bound(predictor, frames, encoder_calls):
    probe = PreviewEngine()
    preview(probe, predictor, frames, Seed(0, clicks=(Click(70, 50),)))
    one_state = probe.cached_bytes
    assert one_state > 1_000_000  # image features at 256 are megabytes: the bound counts them
    engine = PreviewEngine(max_bytes=int(one_state * 2.5))
    for frame_idx in range(4):
        preview(engine, predictor, frames, Seed(frame_idx, clicks=(Click(70, 50),)))
        assert engine.cached_bytes <= engine.max_bytes
    assert len(engine) == 2
    calls = len(encoder_calls)
    assert not preview(engine, predictor, frames, Seed(3, clicks=(Click(70, 50),))).encoded
    assert preview(engine, predictor, frames, Seed(0, clicks=(Click(70, 50),))).encoded  # evicted
    assert len(encoder_calls) == calls + 1


@pytest.mark.slow
def test_bad_seeds_are_refused_before_any_work(predictor, frames, encoder_calls):
    engine = PreviewEngine()
    for seed, words in [
        (Seed(FRAME_IDX, clicks=(Click(frames.width + 5, 10),)), "outside the frame"),
        (Seed(FRAME_IDX, box=Box(frames.width + 1, 0, frames.width + 50, 40)), "outside"),
        (Seed(frames.frame_count, clicks=(Click(5, 5),)), "past the end"),
        (Seed(FRAME_IDX, mask=np.ones((10, 10), bool)), "the video is"),
    ]:
        with pytest.raises(SeedError, match=words):
            preview(engine, predictor, frames, seed)
    with pytest.raises(SeedError, match="uint8 RGB"):
        engine.preview(predictor, "v", frames.frame_count, frames.width, frames.height,
                       Seed(FRAME_IDX, clicks=(Click(5, 5),)), np.zeros((4, 4, 3), np.uint8))
    assert encoder_calls == [] and len(engine) == 0
    # The engine still serves after the refusals.
    assert preview(engine, predictor, frames, Seed(FRAME_IDX, clicks=(Click(5, 5),))).encoded
