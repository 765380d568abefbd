"""The one wrapper around SAM2's private inference state (engine/sam2_state.py): pinned to the sam2 version it was
written against, its keys checked against a real `init_state`, and its pruning/resume bookkeeping on a real state."""

from __future__ import annotations

from importlib.metadata import version

import numpy as np

from sam2_tracking.engine.sam2_state import SAM2_VERSION, STATE_KEYS, Sam2State


def test_written_against_the_installed_sam2() -> None:
    # A sam2 upgrade must come with a review of sam2_state.py (every private key it reads), then a new pin here.
    assert version("sam2") == SAM2_VERSION


def test_keys_match_what_stock_init_state_builds() -> None:
    import inspect
    from types import SimpleNamespace

    from sam2.sam2_video_predictor import SAM2VideoPredictor

    ours = Sam2State.new(SimpleNamespace(device="cpu"), np.zeros((3, 1)), 64, 48).raw
    assert set(ours) == STATE_KEYS
    assert (ours["num_frames"], ours["video_width"], ours["video_height"]) == (3, 64, 48)
    # Stock builds the same dict from a video path in init_state: every key we build and read is one it writes.
    source = inspect.getsource(SAM2VideoPredictor.init_state)
    written = {key for key in STATE_KEYS if f'inference_state["{key}"]' in source}
    assert written == STATE_KEYS


def test_prune_keeps_what_the_model_reads() -> None:
    def state_with(frames):
        return Sam2State({
            "output_dict_per_obj": {0: {"cond_frame_outputs": {0: "seed"},
                                        "non_cond_frame_outputs": dict.fromkeys(frames, "x")}},
            "frames_tracked_per_obj": {0: dict.fromkeys(frames, {"reverse": False})},
        })

    state = state_with(range(1, 41))
    state.prune(40, reverse=False, keep=17, protect=range(0, 18))
    assert sorted(state.raw["output_dict_per_obj"][0]["non_cond_frame_outputs"]) == [*range(1, 18), *range(24, 41)]
    assert sorted(state.raw["frames_tracked_per_obj"][0]) == [*range(1, 18), *range(24, 41)]
    assert state.raw["output_dict_per_obj"][0]["cond_frame_outputs"] == {0: "seed"}
    state = state_with(range(10, 60))
    state.prune(10, reverse=True, keep=17, protect=range(0))
    assert sorted(state.raw["output_dict_per_obj"][0]["non_cond_frame_outputs"]) == list(range(10, 27))


def test_capture_then_restore_gives_back_the_outputs() -> None:
    def state_with(frames):
        return Sam2State({
            "output_dict_per_obj": {0: {"cond_frame_outputs": {0: "seed"},
                                        "non_cond_frame_outputs": dict.fromkeys(frames, "x")}},
            "frames_tracked_per_obj": {0: {f: {"reverse": False} for f in frames}},
        })

    state = state_with(range(1, 10))
    point = state.capture(0, 9, 10, [7], [[0, 10, 1], []])
    state.prune(9, reverse=False, keep=2, protect=range(0))  # the point is a copy: later pruning leaves it whole
    assert sorted(point.outputs[0]["non_cond_frame_outputs"]) == list(range(1, 10))
    fresh = state_with([])
    fresh.restore(point)
    assert sorted(fresh.raw["output_dict_per_obj"][0]["non_cond_frame_outputs"]) == list(range(1, 10))
    assert fresh.raw["frames_tracked_per_obj"][0][5] == {"reverse": False}
    assert (point.pass_idx, point.frame_idx, point.frames_done, point.track_ids) == (0, 9, 10, [7])
