"""Compiled mode: the predictor run as sam2's SAM2VideoPredictorVOS (torch.compile of its parts), CUDA only."""

from __future__ import annotations

import threading
import weakref
from typing import Any

import numpy as np

from sam2_tracking.types import Box, Direction, ObjectSeeds

_warmed: weakref.WeakSet = weakref.WeakSet()
_warm_lock = threading.Lock()


def compiled_predictor(predictor: Any) -> Any:
    """The predictor run compiled, as sam2's SAM2VideoPredictorVOS (`build_sam2_video_predictor(...,
    vos_optimized=True)`): torch.compile (max-autotune) of the image encoder, memory encoder, memory attention,
    prompt encoder and mask decoder. CUDA only (ValueError elsewhere, with what to do). Converts the loaded predictor
    in place, keeping its weights, and warms it up once per process on a short synthetic clip, so the first job does
    not pay for compilation frame by frame; later calls return at once."""
    import torch

    device = torch.device(predictor.device)
    if device.type != "cuda":
        raise ValueError(
            f"compiled mode needs a CUDA GPU (torch.compile with max-autotune of SAM2 for the GPU); the model runs on "
            f"{device}: run this consumer without --compile, or on a GPU with --device cuda"
        )
    from sam2.sam2_video_predictor import SAM2VideoPredictorVOS

    with _warm_lock:
        if predictor in _warmed:
            return predictor
        if not isinstance(predictor, SAM2VideoPredictorVOS):
            # What SAM2VideoPredictorVOS.__init__ and SAM2Base(compile_image_encoder=True) add to a built model.
            predictor.__class__ = SAM2VideoPredictorVOS
            predictor.image_encoder.forward = torch.compile(
                predictor.image_encoder.forward, mode="max-autotune", fullgraph=True, dynamic=False
            )
            predictor._compile_all_components()
        _warm_up(predictor)
        _warmed.add(predictor)
    return predictor


def _warm_up(predictor: Any) -> None:
    """Track a box through a few synthetic frames: compiles every graph a job uses (the memory attention is
    compiled for a varying number of memories, so the clip is longer than the memory)."""
    import tempfile

    from PIL import Image

    from sam2_tracking.engine.tracker import track_objects
    from sam2_tracking.engine.video import open_video
    from sam2_tracking.types import Seed

    frames = 12
    with tempfile.TemporaryDirectory(prefix="sam2t-warmup-") as tmp:
        for idx in range(frames):
            frame = np.full((256, 256, 3), 60, np.uint8)
            frame[40 + idx * 4 : 120 + idx * 4, 60:140] = (220, 40, 40)
            Image.fromarray(frame).save(f"{tmp}/{idx:03d}.png")
        objects = [ObjectSeeds(1, (Seed(0, box=Box(60, 40, 140, 120)),))]
        with open_video(tmp) as source:
            for _batch in track_objects(predictor, source, objects, 0, frames, Direction.FORWARD, frames,
                                        feeder_threads=1):
                pass
