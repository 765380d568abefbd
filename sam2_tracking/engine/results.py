"""Turns SAM2's per-frame mask logits into FrameMasks carrying COCO RLE, for the tracker.

On CUDA a frame's masks and scores are copied to the host without blocking and encoded one frame later, while the
model computes the next frame. A batch then holds a few KB per mask, whatever the frame size.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import numpy as np

from sam2_tracking.engine.feeder import FrameFeeder
from sam2_tracking.engine.sam2_state import Sam2State
from sam2_tracking.types import Box, FrameMask, ObjectSeeds


class FrameResults:
    """Turns each frame's mask logits into FrameMasks carrying RLE. On CUDA a frame's masks and scores are copied to
    the host without blocking and encoded one frame later, while the model computes the next frame."""

    def __init__(self, state: Sam2State, objects: list[ObjectSeeds], device: Any, preview_frames: Collection[int],
                 on_preview: Callable[[int, np.ndarray, list[FrameMask]], None] | None,
                 feeder: FrameFeeder) -> None:
        self.state = state
        self.objects = objects
        self.preview_frames = frozenset(preview_frames)
        self.on_preview = on_preview
        self.feeder = feeder
        self.asynchronous = str(device).startswith("cuda")
        self.pending: tuple | None = None

    def add(self, frame_idx: int, video_res_masks: Any) -> list[FrameMask]:
        import torch

        scores = torch.cat([self.state.score_logit(k, frame_idx) for k in range(len(self.objects))]).float()
        # (objects, width, height) uint8, C order: on the host it is pycocotools' (height, width, objects) Fortran
        # layout, so all objects are encoded in one call without a transposing copy.
        bits = (video_res_masks[:, 0] > 0.0).transpose(1, 2).contiguous().to(torch.uint8)
        done = self.flush()
        if self.asynchronous:
            bits_host = bits.to("cpu", non_blocking=True)
            scores_host = scores.to("cpu", non_blocking=True)
            event = torch.cuda.Event()
            event.record()
            self.pending = (frame_idx, bits_host, scores_host, event)
            return done
        return done + self._encode(frame_idx, bits.numpy(), scores.numpy())

    def flush(self) -> list[FrameMask]:
        if self.pending is None:
            return []
        frame_idx, bits, scores, event = self.pending
        self.pending = None
        event.synchronize()
        return self._encode(frame_idx, bits.numpy(), scores.numpy())

    def _encode(self, frame_idx: int, bits: np.ndarray, scores: np.ndarray) -> list[FrameMask]:
        from pycocotools import mask as mask_utils

        present = [k for k in range(len(self.objects)) if float(scores[k]) > 0]
        rles = mask_utils.encode(bits[present].transpose(2, 1, 0)) if present else []
        encoded = dict(zip(present, rles, strict=True))
        results = []
        for k, obj in enumerate(self.objects):
            score = float(scores[k])
            rle = encoded.get(k)
            if rle is None:
                results.append(FrameMask(frame_idx, obj.track_id, False, score))
                continue
            x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
            box = Box(x, y, x + w, y + h) if w > 0 and h > 0 else None
            as_str = {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}
            results.append(FrameMask(frame_idx, obj.track_id, True, score, box=box, rle=as_str))
        if frame_idx in self.preview_frames and self.on_preview is not None:
            self.on_preview(frame_idx, self.feeder.take_rgb(frame_idx), results)
        return results


