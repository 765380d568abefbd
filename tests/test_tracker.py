"""The streaming tracker against the stock SAM2VideoPredictor, on the real SAM2.1 Tiny architecture (random weights).

Fair comparison: the stock predictor only reads a folder of JPEGs (through PIL). Our tracker reads the very same
folder as an image sequence, so both start from identical pixels; our lazy loader must then produce bit-identical
input tensors, and every mask must match. One test also runs our tracker on an MP4 (decoded by PyAV) against a stock
folder written losslessly from those decoded frames (PNG data in files named .jpg, which PIL opens by content).

Clips are 40 frames so outputs are pruned (the model reads 16 frames back) and batch seams are crossed.
The clip and the comparison helpers are tests/tracker_clip.py; the tracker's bookkeeping is tested in
test_tracker_runs.py, the same comparisons on a CUDA GPU in test_tracker_gpu.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from sam2_tracking.engine.video import open_video
from sam2_tracking.types import Box, Direction, ObjectSeeds, Seed
from tests.tracker_clip import (
    EQUALITY_CASES,
    SHAPES,
    H,
    N,
    W,
    as_arrays,
    assert_identical,
    box_seed,
    check_batches,
    load_test_predictor,
    run_ours,
    stock_masks,
    write_clip_dir,
    write_mp4,
)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    return write_clip_dir(tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="module")
def predictor(test_model_dir: Path):
    return load_test_predictor(test_model_dir, "cpu")


@pytest.mark.slow
@pytest.mark.parametrize("case", list(EQUALITY_CASES))
def test_masks_identical_to_stock(predictor, clip_dir: Path, case: str) -> None:
    objects, start, num_frames, direction, batch_sizes = EQUALITY_CASES[case]
    stock = stock_masks(predictor, clip_dir, objects, start, num_frames, direction)
    for batch_size in batch_sizes:
        batches = run_ours(predictor, clip_dir, objects, start, num_frames, direction, batch_size)
        check_batches(batches, objects, batch_size)
        assert_identical(stock, as_arrays(batches, len(objects)))
    if direction is Direction.BOTH:
        assert len(stock) == len(as_arrays(batches, len(objects)))  # the start frame once


@pytest.mark.slow
def test_mp4_source_matches_stock_on_the_same_decoded_frames(predictor, tmp_path: Path) -> None:
    video = write_mp4(tmp_path / "clip.mp4", 24, gop=6)
    lossless = tmp_path / "frames"
    lossless.mkdir()
    with open_video(video) as source:
        for idx, rgb in source.iter_frames():
            Image.fromarray(rgb).save(lossless / f"{idx:05d}.jpg", format="PNG")
    objects = [ObjectSeeds(7, (Seed(20, box=Box(*SHAPES[1])),))]
    stock = stock_masks(predictor, lossless, objects, 20, None, Direction.BOTH)
    assert_identical(stock, as_arrays(run_ours(predictor, video, objects, 20, None, Direction.BOTH, 10), 1))


def test_lazy_frames_equal_stock_tensors(clip_dir: Path) -> None:
    import torch
    from sam2.utils.misc import load_video_frames

    from sam2_tracking.engine.tracker import LazyFrames

    images, height, width = load_video_frames(str(clip_dir), 256, True, compute_device=torch.device("cpu"))
    with open_video(clip_dir) as source:
        lazy = LazyFrames(source, 256)
        assert (len(lazy), height, width) == (N, H, W)
        for i in (0, 1, 17, N - 1):
            assert torch.equal(lazy[i], images[i]), f"frame {i}"


@pytest.mark.slow
def test_absent_object_reported_without_mask(predictor, test_model_dir: Path, clip_dir: Path, tmp_path: Path) -> None:
    """Random weights score every object as present; shift the object-score head's bias so some frames score <= 0."""
    import torch

    from sam2_tracking.models.catalogue import load_predictor

    folder = tmp_path / "shifted"
    folder.mkdir()
    shutil.copy(test_model_dir / "config.yaml", folder / "config.yaml")
    checkpoint = torch.load(test_model_dir / "checkpoint.pt", weights_only=True)
    checkpoint["model"]["sam_mask_decoder.pred_obj_score_head.layers.2.bias"] -= 0.15
    torch.save(checkpoint, folder / "checkpoint.pt")
    shifted = load_predictor(folder, "cpu")
    objects = [ObjectSeeds(1, (box_seed(0, 1),)), ObjectSeeds(2, (box_seed(0, 2),))]
    stock = stock_masks(shifted, clip_dir, objects, 0, 12, Direction.FORWARD)
    batches = run_ours(shifted, clip_dir, objects, 0, 12, Direction.FORWARD, 5)
    check_batches(batches, objects, 5)
    assert_identical(stock, as_arrays(batches, 2))
    results = [fm for batch in batches for fm in batch]
    absent = [fm for fm in results if not fm.present]
    assert absent and len(absent) < len(results), "expected a mix of present and absent frames"
    for fm in absent:
        assert fm.score <= 0 and not stock[fm.frame_idx][fm.track_id - 1].any()
