"""The streaming tracker: SAM2 video propagation in constant memory, with masks identical to the stock predictor.

How it stays exact and flat (see DESIGN.md section 3):
- One inference state per job, built like `SAM2VideoPredictor.init_state` but over a FrameFeeder (feeder.py): frames
  are decoded and preprocessed ahead in worker threads, in the order SAM2 will ask for them, and normalised on the
  model's device exactly as stock does (stock loads every frame up front).
- Seeds go through the stock `add_new_points_or_box` / `add_new_mask`, propagation through the stock
  `propagate_in_video`: we do not re-implement SAM2, we only feed it frames and drop what it can no longer read.
- After each frame, non-conditioning outputs further back than the model reads (6 memory frames, 15 object
  pointers) are deleted. For `both`, the forward pass keeps its outputs near the start frame, because the reverse
  pass reads them (stock runs the reverse pass on the same state).
- Masks leave the model as COCO RLE (FrameMask.rle): on CUDA a frame's masks are copied back without blocking and
  encoded while the model computes the next frame. A batch holds a few KB per mask, whatever its size.
- Every batch carries a ResumePoint: what SAM2 still reads at that point (the pruned outputs and the conditioning
  frames' outputs). Restoring one into a fresh state and propagating on gives masks bit-identical to a run that was
  never interrupted, because SAM2's computation of a frame depends only on those outputs and the frame itself.
Batching only groups results for the caller; it does not change what the model computes.

SAM2's inference-state dict is read only through engine/sam2_state.py; compiled mode is in compiled.py, the
RLE encoding of each frame's masks in results.py.

Stopping (should_cancel() true) keeps every frame tracked: the frames since the last batch are yielded as a last,
shorter batch with its ResumePoint, then TrackingCancelled is raised.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sam2_tracking.engine.feeder import IMG_MEAN, IMG_STD, FrameFeeder
from sam2_tracking.engine.plan import FramePlan
from sam2_tracking.engine.results import FrameResults
from sam2_tracking.engine.resume import ResumePoint
from sam2_tracking.engine.sam2_state import Sam2State
from sam2_tracking.engine.video import FrameSource
from sam2_tracking.types import Direction, FrameMask, ObjectSeeds, SeedError, TrackingProgress

__all__ = ["IMG_MEAN", "IMG_STD", "LazyFrames", "ResumePoint", "TrackedBatch", "TrackingCancelled", "add_seeds",
           "track_objects"]


class TrackingCancelled(Exception):  # noqa: N818 - the name other modules code against
    """should_cancel() returned True; every batch yielded before (the last one holding the frames tracked since the
    batch before it) stays valid."""


class TrackedBatch(list):
    """A batch of FrameMasks (a list), plus the ResumePoint after its last frame and, for benchmarks, the seconds the
    model's thread has waited for frames since the run started (frames_wait_s)."""

    resume_point: ResumePoint | None = None
    frames_wait_s: float = 0.0


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
    *,
    feeder_threads: int | None = None,
    preview_frames: Collection[int] = (),
    on_preview: Callable[[int, np.ndarray, list[FrameMask]], None] | None = None,
    resume: ResumePoint | None = None,
) -> Iterator[TrackedBatch]:
    """Track `objects` through `frames` from start_frame_idx and yield results one batch at a time.

    num_frames: frames per direction, the start frame included (None: to the last frame, or to frame 0 backward).
    direction: forward, backward, or both (forward first, then backward; the start frame is reported once).
    Each yielded TrackedBatch holds a FrameMask for every object on each of up to batch_size frames, frame by frame
    in processing order, objects in the order given, and the ResumePoint after its last frame. Masks travel as COCO
    RLE (FrameMask.rle, mask_array() decodes) with their box; an object SAM2 scores as absent (object score logit
    <= 0) has present=False and no mask.
    on_progress gets a TrackingProgress after every frame; should_cancel is checked before every frame: when it
    returns True the frames tracked since the last batch are yielded as one more batch, then the iterator raises
    TrackingCancelled (a stop loses no tracked frame).
    feeder_threads: threads decoding ahead (None: from the CPU count). For each frame in preview_frames,
    on_preview(frame_idx, rgb, results) gets the full-resolution frame the feeder already decoded and its results.
    resume: a ResumePoint from an earlier run of the same job (same objects and seeds): tracking continues after it
    and yields only the frames after it, bit-identical to an uninterrupted run.

    Everything is validated here, before any work: bad seeds raise SeedError, bad arguments ValueError.
    """
    plan = _checked_plan(frames, objects, start_frame_idx, num_frames, Direction(direction), batch_size)
    if resume is not None:
        _check_resume(resume, plan, objects)
    options = _Options(feeder_threads, frozenset(int(i) for i in preview_frames), on_preview, resume)
    return _run(predictor, frames, list(objects), plan, int(batch_size), on_progress, should_cancel, options)


@dataclass(frozen=True)
class _Options:
    feeder_threads: int | None
    preview_frames: frozenset[int]
    on_preview: Callable[[int, np.ndarray, list[FrameMask]], None] | None
    resume: ResumePoint | None


def _checked_plan(
    frames: FrameSource,
    objects: Sequence[ObjectSeeds],
    start: int,
    num_frames: int | None,
    direction: Direction,
    batch_size: int,
) -> FramePlan:
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
    if isinstance(batch_size, bool) or int(batch_size) < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size!r}")
    return FramePlan(int(start), count, num_frames, direction)


class _Batcher:
    """Collects a run's FrameMasks into TrackedBatches, each closed with the ResumePoint after its last frame."""

    def __init__(self, state: Sam2State, out: FrameResults, feeder: FrameFeeder, track_ids: list[int],
                 plan: FramePlan, frames_done: int) -> None:
        self.state, self.out, self.feeder, self.track_ids, self.plan_key = state, out, feeder, track_ids, plan.key()
        self.frames_done = frames_done
        self.batch = TrackedBatch()
        self.frames = 0

    def add(self, results: list[FrameMask]) -> None:
        self.batch.extend(results)
        self.frames += 1
        self.frames_done += 1

    def close(self, pass_idx: int, frame_idx: int) -> TrackedBatch | None:
        """The batch so far (None when empty), with the ResumePoint after frame_idx of pass pass_idx."""
        self.batch.extend(self.out.flush())
        if not self.batch:
            return None
        full, self.batch, self.frames = self.batch, TrackedBatch(), 0
        full.resume_point = self.state.capture(pass_idx, frame_idx, self.frames_done, self.track_ids, self.plan_key)
        full.frames_wait_s = self.feeder.wait_seconds
        return full


def _run(
    predictor: Any,
    frames: FrameSource,
    objects: list[ObjectSeeds],
    plan: FramePlan,
    batch_size: int,
    on_progress: Callable[[TrackingProgress], None] | None,
    should_cancel: Callable[[], bool] | None,
    options: _Options,
) -> Iterator[TrackedBatch]:
    import torch

    from sam2_tracking.models.catalogue import inference_context

    device = predictor.device
    keep = _memory_reach(predictor)
    keep_rgb = options.preview_frames if options.on_preview is not None else ()
    feeder = FrameFeeder(frames, predictor.image_size, device, options.feeder_threads, keep_rgb)
    state = Sam2State.new(predictor, feeder, frames.width, frames.height)
    out = FrameResults(state, objects, device, options.preview_frames, options.on_preview, feeder)
    started = time.perf_counter()
    resume = options.resume
    frames_at_start = resume.frames_done if resume else 0
    batcher = _Batcher(state, out, feeder, [obj.track_id for obj in objects], plan, frames_at_start)
    runs = _runs(plan, resume)
    # A frame every object has a seed on is served from SAM2's own outputs during propagation: never planned.
    conds = [{seed.frame_idx for seed in obj.seeds} for obj in objects]
    try:
        if should_cancel and should_cancel():
            raise TrackingCancelled("tracking cancelled before it started")
        if runs:
            # Seeding reads the start frame first: plan it ahead of the first pass, so a backward job decodes the
            # start frame's GOP once, in the same block as the frames before it.
            seeded_start = all(plan.start in cond for cond in conds)
            feeder.expect(([plan.start] if seeded_start else []) + _frames_asked(conds, runs[0][1]))
        with torch.inference_mode(), inference_context(device):
            add_seeds(predictor, state, objects)
            # The predictor numbers objects in the order added; results are matched by position (checked once).
            state.check_object_order([obj.track_id for obj in objects])
            predictor.propagate_in_video_preflight(state.raw)
            if resume is not None:
                state.restore(resume)
        for run_idx, (pass_idx, order, reverse) in enumerate(runs):
            run_reverse = reverse and plan.start > 0
            if run_idx:
                feeder.expect(_frames_asked(conds, order))
            steps = predictor.propagate_in_video(
                state.raw, start_frame_idx=order[0], max_frame_num_to_track=len(order) - 1, reverse=run_reverse
            )
            protect = range(plan.start, plan.start + keep + 1) if (plan.both and not reverse) else range(0)
            last_idx = None
            try:
                while True:
                    if should_cancel and should_cancel():
                        # Everything tracked so far is handed over before the stop: nothing tracked is lost.
                        if last_idx is not None and (kept := batcher.close(pass_idx, last_idx)) is not None:
                            yield kept
                        raise TrackingCancelled(
                            f"tracking cancelled after {batcher.frames_done} of {plan.total} frames")
                    with inference_context(device):
                        step = next(steps, None)
                    if step is None:
                        break
                    frame_idx, _obj_ids, video_res_masks = step
                    last_idx = frame_idx
                    if not (plan.both and reverse and frame_idx == plan.start):
                        batcher.add(out.add(frame_idx, video_res_masks))
                        if on_progress:
                            elapsed = max(time.perf_counter() - started, 1e-9)
                            fps = (batcher.frames_done - frames_at_start) / elapsed
                            on_progress(TrackingProgress(batcher.frames_done, plan.total, frame_idx, fps))
                    del video_res_masks, step
                    state.prune(frame_idx, run_reverse, keep, protect)
                    if batcher.frames == batch_size and (full := batcher.close(pass_idx, frame_idx)) is not None:
                        yield full
                        del full
            finally:
                steps.close()
            if (full := batcher.close(pass_idx, order[-1])) is not None:
                yield full
                del full
    finally:
        state.clear()
        feeder.close()


def _check_resume(point: ResumePoint, plan: FramePlan, objects: Sequence[ObjectSeeds]) -> None:
    if not isinstance(point, ResumePoint):
        raise TypeError(f"resume must be a ResumePoint, got {type(point).__name__}")
    if point.track_ids != [o.track_id for o in objects] or point.plan != plan.key():
        raise ValueError("the saved tracking state belongs to another job (objects or frames differ)")
    passes = plan.passes()
    if not (0 <= point.pass_idx < len(passes)) or point.frame_idx not in passes[point.pass_idx][0]:
        raise ValueError(f"the saved tracking state points at frame {point.frame_idx}, outside the job")


def _runs(plan: FramePlan, resume: ResumePoint | None) -> list[tuple[int, range, bool]]:
    """(pass index, frames, reverse) of the propagation passes still to run: all of them, or those after a
    ResumePoint."""
    runs = []
    for pass_idx, (order, reverse) in enumerate(plan.passes()):
        if resume is not None and pass_idx < resume.pass_idx:
            continue
        if resume is not None and pass_idx == resume.pass_idx:
            order = order[order.index(resume.frame_idx) + 1 :]
        if len(order):
            runs.append((pass_idx, order, reverse))
    return runs


def _frames_asked(conds: list[set[int]], order: range) -> list[int]:
    """The frames of `order` SAM2 will read images for: all but those every object has a conditioning output on
    (its seeded frames, which propagation serves from its own outputs)."""
    return [idx for idx in order if not all(idx in cond for cond in conds)]


def _memory_reach(predictor: Any) -> int:
    """How many frames back (in processing order) SAM2 reads non-conditioning outputs, plus a margin of one."""
    stride = max(1, int(getattr(predictor, "memory_temporal_stride_for_eval", 1)))
    mem = stride * max(1, int(predictor.num_maskmem)) + 1
    ptrs = int(predictor.max_obj_ptrs_in_encoder) if predictor.use_obj_ptrs_in_encoder else 0
    return max(mem, ptrs) + 1


def add_seeds(predictor: Any, state: Sam2State, objects: Sequence[ObjectSeeds]) -> None:
    """Give every seed to the predictor through its public API; obj_id is the track id."""
    for obj in objects:
        for seed in sorted(obj.seeds, key=lambda s: s.frame_idx):
            if seed.mask is not None:
                predictor.add_new_mask(state.raw, frame_idx=seed.frame_idx, obj_id=obj.track_id, mask=seed.mask)
                continue
            points = labels = None
            if seed.clicks:
                points = np.array([[c.x, c.y] for c in seed.clicks], dtype=np.float32)
                labels = np.array([1 if c.positive else 0 for c in seed.clicks], dtype=np.int32)
            box = np.array(seed.box.as_list(), dtype=np.float32) if seed.box is not None else None
            predictor.add_new_points_or_box(
                state.raw, frame_idx=seed.frame_idx, obj_id=obj.track_id, points=points, labels=labels, box=box
            )


class LazyFrames(FrameFeeder):
    """Frames made on demand in the caller's thread (no workers, tensors on the CPU), for one-frame states such as
    the seed preview; preprocessing is the feeder's, so identical to a job's."""

    def __init__(self, source: Any, image_size: int) -> None:
        super().__init__(source, image_size, "cpu", threads=1)
