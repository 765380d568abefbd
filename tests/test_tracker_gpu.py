"""The tracker on a CUDA GPU (marker gpu: skipped where torch sees no GPU, the only skip the suite allows).

- The feeder on the GPU hands SAM2 the very tensors stock's frame loader makes on the GPU (its exactness argument is
  about the arithmetic on the device, which differs from the CPU's).
- Our tracker on CUDA gives stock's masks bit for bit, both under the bf16 autocast Meta's demo uses.
- Compiled mode (sam2's SAM2VideoPredictorVOS: torch.compile of the model's parts) tracks the same objects as stock:
  fused kernels change rounding, so it is compared by overlap, not bit for bit.
Same synthetic clip and test model (SAM2.1 Tiny architecture, random weights) as tests/test_tracker.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from sam2_tracking.engine.video import open_video
from sam2_tracking.types import Direction, ObjectSeeds, Seed
from tests.tracker_clip import (
    EQUALITY_CASES,
    N,
    as_arrays,
    assert_identical,
    box_seed,
    check_batches,
    disc_mask,
    load_test_predictor,
    run_ours,
    stock_masks,
    write_clip_dir,
)

pytestmark = [pytest.mark.gpu, pytest.mark.slow]


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    return write_clip_dir(tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="module")
def cuda_predictor(test_model_dir: Path):
    return load_test_predictor(test_model_dir, "cuda")


def test_feeder_on_cuda_gives_stock_tensors(clip_dir: Path) -> None:
    import torch
    from sam2.utils.misc import load_video_frames

    from sam2_tracking.engine.feeder import FrameFeeder

    cuda = torch.device("cuda")
    images, _height, _width = load_video_frames(str(clip_dir), 256, offload_video_to_cpu=False, compute_device=cuda)
    with open_video(clip_dir) as source:
        feeder = FrameFeeder(source, 256, cuda, threads=2)
        try:
            feeder.expect(list(range(N)))  # a forward pass: decoded ahead by two worker threads
            for idx in range(N):
                tensor = feeder[idx]
                assert tensor.device.type == "cuda" and tensor.dtype == torch.float32
                assert torch.equal(tensor, images[idx]), (
                    f"frame {idx}: {int((tensor != images[idx]).sum())} values differ from stock's, by up to "
                    f"{float((tensor - images[idx]).abs().max()):.3g}")
        finally:
            feeder.close()


@pytest.mark.parametrize("case", ["forward_1obj_box", "both_3obj_box_mask_clicks", "seeds_on_two_frames"])
def test_masks_identical_to_stock_on_cuda(cuda_predictor, clip_dir: Path, case: str) -> None:
    objects, start, num_frames, direction, batch_sizes = EQUALITY_CASES[case]
    stock = stock_masks(cuda_predictor, clip_dir, objects, start, num_frames, direction)
    for batch_size in batch_sizes:
        batches = run_ours(cuda_predictor, clip_dir, objects, start, num_frames, direction, batch_size,
                           feeder_threads=2)
        check_batches(batches, objects, batch_size)
        assert_identical(stock, as_arrays(batches, len(objects)))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def test_compiled_mode_tracks_what_stock_tracks_on_cuda(test_model_dir: Path, clip_dir: Path, tmp_path: Path) -> None:
    """Compiled mode converts its predictor in place, so it gets its own (a copy of the model folder: load_predictor
    caches one predictor per folder); the uncompiled one gives stock's reference on the same GPU."""
    from sam2.sam2_video_predictor import SAM2VideoPredictorVOS

    from sam2_tracking.engine.compiled import compiled_predictor

    folder = tmp_path / "model"
    shutil.copytree(test_model_dir, folder)
    reference = load_test_predictor(test_model_dir, "cuda")
    compiled = compiled_predictor(load_test_predictor(folder, "cuda"))
    assert isinstance(compiled, SAM2VideoPredictorVOS) and compiled is not reference
    assert compiled_predictor(compiled) is compiled  # warmed up once per process

    objects = [ObjectSeeds(1, (box_seed(0, 1),)), ObjectSeeds(2, (Seed(0, mask=disc_mask(112, 62, 12)),))]
    stock = stock_masks(reference, clip_dir, objects, 0, None, Direction.FORWARD)
    batches = run_ours(compiled, clip_dir, objects, 0, None, Direction.FORWARD, 10, feeder_threads=2)
    check_batches(batches, objects, 10)
    ours = as_arrays(batches, len(objects))
    assert list(ours) == list(stock) == list(range(N))
    overlaps = [iou(stock[idx][k], ours[idx][k]) for idx in stock for k in range(len(objects))]
    # Rounding differences may move a few boundary pixels, never the object: every mask overlaps stock's closely.
    assert min(overlaps) >= 0.8 and float(np.mean(overlaps)) >= 0.95, (
        f"IoU with stock: min {min(overlaps):.3f}, mean {np.mean(overlaps):.3f}")
