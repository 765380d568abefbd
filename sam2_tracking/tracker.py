"""The streaming tracker: SAM2 video propagation in constant memory, with masks identical to the stock predictor.

How it stays exact and flat (see DESIGN.md section 3):
- One inference state per job, built like `SAM2VideoPredictor.init_state` but with a lazy `images` sequence that
  decodes and preprocesses a frame when the model asks for it (stock loads every frame up front).
- Seeds go through the stock `add_new_points_or_box` / `add_new_mask`, propagation through the stock
  `propagate_in_video`: we do not re-implement SAM2, we only feed it frames and drop what it can no longer read.
- After each frame, non-conditioning outputs further back than the model reads (6 memory frames, 15 object
  pointers) are deleted. For `both`, the forward pass keeps its outputs near the start frame, because the reverse
  pass reads them (stock runs the reverse pass on the same state).
Batching only groups results for the caller; it does not change what the model computes.

This is the only module that imports sam2.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from .masks import mask_to_box
from .types import Direction, FrameMask, ObjectSeeds, SeedError, TrackingProgress
from .video import FrameSource

# ImageNet statistics, as sam2.utils.misc.load_video_frames normalises frames.
IMG_MEAN = (0.485, 0.456, 0.406)
IMG_STD = (0.229, 0.224, 0.225)


class TrackingCancelled(Exception):  # noqa: N818 - the name other modules code against
    """should_cancel() returned True; batches yielded before stay valid."""


def track_objects(
    predictor: Any,
    frames: FrameSource,
    objects: Sequence[ObjectSeeds],
    start_frame_idx: int,
    num_frames: int | None = None,
    direction: Direction | str = Direction.FORWARD,
    batch_size: int = 100,
    on_progress: Callable[[TrackingProgress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> Iterator[list[FrameMask]]:
    """Track `objects` through `frames` from start_frame_idx and yield results one batch at a time.

    num_frames: frames per direction, the start frame included (None: to the last frame, or to frame 0 backward).
    direction: forward, backward, or both (forward first, then backward; the start frame is reported once).
    Each yielded list holds a FrameMask for every object on each of up to batch_size frames, frame by frame in
    processing order, objects in the order given. Masks are bool (height, width) at video resolution; an object
    SAM2 scores as absent (object score logit <= 0) has present=False and no mask.
    on_progress gets a TrackingProgress after every frame; should_cancel is checked before every frame and makes
    the iterator raise TrackingCancelled.

    Everything is validated here, before any work: bad seeds raise SeedError, bad arguments ValueError.
    """
    plan = _plan(frames, objects, start_frame_idx, num_frames, Direction(direction), batch_size)
    return _run(predictor, frames, list(objects), plan, batch_size, on_progress, should_cancel)


class _Plan:
    def __init__(self, start: int, forward: range | None, backward: range | None) -> None:
        self.start = start
        self.forward = forward
        self.backward = backward
        both = forward is not None and backward is not None
        self.total = len(forward or ()) + len(backward or ()) - (1 if both else 0)
        self.both = both


def _plan(
    frames: FrameSource,
    objects: Sequence[ObjectSeeds],
    start: int,
    num_frames: int | None,
    direction: Direction,
    batch_size: int,
) -> _Plan:
    count = frames.frame_count
    if not objects:
        raise SeedError("nothing to track: give at least one object with a seed")
    track_ids = [obj.track_id for obj in objects]
    if len(set(track_ids)) != len(track_ids):
        raise SeedError(f"each object must be a different track, got track ids {track_ids}")
    for obj in objects:
        if not isinstance(obj, ObjectSeeds):
            raise TypeError(f"objects must be ObjectSeeds, got {type(obj).__name__}")
        for seed in obj.seeds:
            try:
                seed.check_fits(frames.width, frames.height, count)
            except SeedError as exc:
                raise SeedError(f"track {obj.track_id}: {exc}") from None
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or not 0 <= start < count:
        raise SeedError(f"start frame {start!r} is not in the video (frames 0 to {count - 1})")
    if num_frames is not None and (isinstance(num_frames, bool) or int(num_frames) < 1):
        raise ValueError(f"number of frames must be at least 1 (or None for all), got {num_frames!r}")
    if isinstance(batch_size, bool) or int(batch_size) < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size!r}")
    start = int(start)
    span = count if num_frames is None else int(num_frames)
    forward = range(start, min(start + span, count)) if direction in (Direction.FORWARD, Direction.BOTH) else None
    backward = range(start, max(start - span, -1), -1) if direction in (Direction.BACKWARD, Direction.BOTH) else None
    return _Plan(start, forward, backward)


def _run(
    predictor: Any,
    frames: FrameSource,
    objects: list[ObjectSeeds],
    plan: _Plan,
    batch_size: int,
    on_progress: Callable[[TrackingProgress], None] | None,
    should_cancel: Callable[[], bool] | None,
) -> Iterator[list[FrameMask]]:
    import torch

    from .models import inference_context

    device = predictor.device
    keep = _memory_reach(predictor)
    loader = LazyFrames(frames, predictor.image_size)
    state = new_inference_state(predictor, loader, frames.width, frames.height)
    started = time.perf_counter()
    frames_done = 0
    batch: list[FrameMask] = []
    batch_frames = 0
    try:
        if should_cancel and should_cancel():
            raise TrackingCancelled("tracking cancelled before it started")
        with torch.inference_mode(), inference_context(device):
            add_seeds(predictor, state, objects)
        passes = []
        if plan.forward is not None:
            passes.append((plan.forward, False))
        if plan.backward is not None and not (plan.both and plan.start == 0):
            passes.append((plan.backward, True))
        for order, reverse in passes:
            # Stock skips a reverse pass from frame 0; a backward job from frame 0 still reports frame 0, computed
            # as the one-frame pass it is.
            run_reverse = reverse and plan.start > 0
            loader.expect(order)
            steps = predictor.propagate_in_video(
                state, start_frame_idx=plan.start, max_frame_num_to_track=len(order) - 1, reverse=run_reverse
            )
            protect = range(plan.start, plan.start + keep + 1) if (plan.both and not reverse) else range(0)
            try:
                while True:
                    if should_cancel and should_cancel():
                        raise TrackingCancelled(f"tracking cancelled after {frames_done} of {plan.total} frames")
                    with inference_context(device):
                        step = next(steps, None)
                    if step is None:
                        break
                    frame_idx, _obj_ids, video_res_masks = step
                    if not (plan.both and reverse and frame_idx == plan.start):
                        batch.extend(_frame_results(state, objects, frame_idx, video_res_masks))
                        batch_frames += 1
                        frames_done += 1
                        if on_progress:
                            elapsed = max(time.perf_counter() - started, 1e-9)
                            on_progress(TrackingProgress(frames_done, plan.total, frame_idx, frames_done / elapsed))
                    del video_res_masks, step
                    prune_outputs(state, frame_idx, run_reverse, keep, protect)
                    if batch_frames == batch_size:
                        out, batch, batch_frames = batch, [], 0
                        yield out
            finally:
                steps.close()
            if batch:
                out, batch, batch_frames = batch, [], 0
                yield out
    finally:
        state.clear()
        loader.close()


def _memory_reach(predictor: Any) -> int:
    """How many frames back (in processing order) SAM2 reads non-conditioning outputs, plus a margin of one."""
    stride = max(1, int(getattr(predictor, "memory_temporal_stride_for_eval", 1)))
    mem = stride * max(1, int(predictor.num_maskmem)) + 1
    ptrs = int(predictor.max_obj_ptrs_in_encoder) if predictor.use_obj_ptrs_in_encoder else 0
    return max(mem, ptrs) + 1


def new_inference_state(predictor: Any, images: Any, width: int, height: int) -> dict:
    """An inference state as SAM2VideoPredictor.init_state builds it, over a lazy `images` sequence, without its
    warm-up pass on frame 0 (features are recomputed on demand, identically)."""
    device = predictor.device
    return {
        "images": images,
        "num_frames": len(images),
        "offload_video_to_cpu": False,
        "offload_state_to_cpu": False,
        "video_height": height,
        "video_width": width,
        "device": device,
        "storage_device": device,
        "point_inputs_per_obj": {},
        "mask_inputs_per_obj": {},
        "cached_features": {},
        "constants": {},
        "obj_id_to_idx": OrderedDict(),
        "obj_idx_to_id": OrderedDict(),
        "obj_ids": [],
        "output_dict_per_obj": {},
        "temp_output_dict_per_obj": {},
        "frames_tracked_per_obj": {},
    }


def add_seeds(predictor: Any, state: dict, objects: Sequence[ObjectSeeds]) -> None:
    """Give every seed to the predictor through its public API; obj_id is the track id."""
    for obj in objects:
        for seed in sorted(obj.seeds, key=lambda s: s.frame_idx):
            if seed.mask is not None:
                predictor.add_new_mask(state, frame_idx=seed.frame_idx, obj_id=obj.track_id, mask=seed.mask)
                continue
            points = labels = None
            if seed.clicks:
                points = np.array([[c.x, c.y] for c in seed.clicks], dtype=np.float32)
                labels = np.array([1 if c.positive else 0 for c in seed.clicks], dtype=np.int32)
            box = np.array(seed.box.as_list(), dtype=np.float32) if seed.box is not None else None
            predictor.add_new_points_or_box(
                state, frame_idx=seed.frame_idx, obj_id=obj.track_id, points=points, labels=labels, box=box
            )


def prune_outputs(state: dict, frame_idx: int, reverse: bool, keep: int, protect: range) -> None:
    """Delete non-conditioning outputs `keep` or more frames behind frame_idx in processing order (but not those in
    `protect`); conditioning (seeded) frames are always kept."""
    for obj_idx, obj_out in state["output_dict_per_obj"].items():
        non_cond = obj_out["non_cond_frame_outputs"]
        tracked = state["frames_tracked_per_obj"][obj_idx]
        if reverse:
            stale = [t for t in non_cond if t >= frame_idx + keep and t not in protect]
        else:
            stale = [t for t in non_cond if t <= frame_idx - keep and t not in protect]
        for t in stale:
            del non_cond[t]
            tracked.pop(t, None)


def _frame_results(state: dict, objects: list[ObjectSeeds], frame_idx: int, video_res_masks: Any) -> list[FrameMask]:
    masks = (video_res_masks > 0.0).cpu().numpy()[:, 0]
    results = []
    for obj_idx, obj in enumerate(objects):
        if state["obj_idx_to_id"][obj_idx] != obj.track_id:  # the predictor numbers objects in the order added
            raise RuntimeError("object order in the SAM2 state does not match the job's objects")
        out = state["output_dict_per_obj"][obj_idx]
        current = out["cond_frame_outputs"].get(frame_idx) or out["non_cond_frame_outputs"].get(frame_idx)
        score = float(current["object_score_logits"].float().reshape(-1)[0])
        if score > 0:
            mask = masks[obj_idx].copy()
            results.append(FrameMask(frame_idx, obj.track_id, True, score, mask, mask_to_box(mask)))
        else:
            results.append(FrameMask(frame_idx, obj.track_id, False, score))
    return results


class LazyFrames:
    """The `images` entry of an inference state: frame i preprocessed exactly as sam2's load_video_frames does
    (PIL resize to image_size x image_size, /255 in float64, to float32, minus mean, over std), made on demand.

    expect(order) tells it the order the model will ask for frames in, so a backward pass over a video file
    decodes blocks forward instead of seeking for every frame."""

    def __init__(self, source: FrameSource, image_size: int) -> None:
        import torch

        self._torch = torch
        self.source = source
        self.image_size = int(image_size)
        self._mean = torch.tensor(IMG_MEAN, dtype=torch.float32)[:, None, None]
        self._std = torch.tensor(IMG_STD, dtype=torch.float32)[:, None, None]
        self._plan: Iterator[tuple[int, np.ndarray]] | None = None
        self._plan_next: int | None = None
        self._plan_step = 1

    def __len__(self) -> int:
        return self.source.frame_count

    def expect(self, order: range) -> None:
        self._plan = self.source.iter_frames(order.start, order.stop, order.step) if len(order) else None
        self._plan_next = order.start if len(order) else None
        self._plan_step = order.step

    def __getitem__(self, frame_idx: int) -> Any:
        return self.to_tensor(self._rgb(int(frame_idx)))

    def _rgb(self, idx: int) -> np.ndarray:
        if self._plan is not None and idx == self._plan_next:
            got = next(self._plan, None)
            if got is not None and got[0] == idx:
                self._plan_next = idx + self._plan_step
                return got[1]
            self._plan = self._plan_next = None
        return self.source.read(idx)

    def to_tensor(self, rgb: np.ndarray) -> Any:
        from PIL import Image

        torch = self._torch
        resized = np.array(Image.fromarray(rgb).resize((self.image_size, self.image_size)))
        image = torch.from_numpy(resized / 255.0).permute(2, 0, 1).float()
        image -= self._mean
        image /= self._std
        return image

    def close(self) -> None:
        self._plan = None
