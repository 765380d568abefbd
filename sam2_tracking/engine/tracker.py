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

This is the only module that imports sam2.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sam2_tracking.engine.feeder import IMG_MEAN, IMG_STD, FrameFeeder
from sam2_tracking.engine.masks import mask_to_box
from sam2_tracking.engine.resume import ResumePoint, capture, load_resume_point, restore, save_resume_point
from sam2_tracking.engine.video import FrameSource
from sam2_tracking.types import Box, Direction, FrameMask, ObjectSeeds, SeedError, TrackingProgress

__all__ = ["IMG_MEAN", "IMG_STD", "LazyFrames", "ResumePoint", "TrackedBatch", "TrackingCancelled", "compiled_predictor",
           "load_resume_point", "save_resume_point", "track_objects"]

class TrackingCancelled(Exception):  # noqa: N818 - the name other modules code against
    """should_cancel() returned True; batches yielded before stay valid."""


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
    on_progress gets a TrackingProgress after every frame; should_cancel is checked before every frame and makes
    the iterator raise TrackingCancelled.
    feeder_threads: threads decoding ahead (None: from the CPU count). For each frame in preview_frames,
    on_preview(frame_idx, rgb, results) gets the full-resolution frame the feeder already decoded and its results.
    resume: a ResumePoint from an earlier run of the same job (same objects and seeds): tracking continues after it
    and yields only the frames after it, bit-identical to an uninterrupted run.

    Everything is validated here, before any work: bad seeds raise SeedError, bad arguments ValueError.
    """
    plan = _plan(frames, objects, start_frame_idx, num_frames, Direction(direction), batch_size)
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


def _passes(plan: _Plan) -> list[tuple[range, bool]]:
    """(processing order, reverse) per propagation pass. Stock skips a reverse pass from frame 0; a backward job from
    frame 0 still reports frame 0, computed as the one-frame pass it is."""
    passes = []
    if plan.forward is not None:
        passes.append((plan.forward, False))
    if plan.backward is not None and not (plan.both and plan.start == 0):
        passes.append((plan.backward, True))
    return passes


def _plan_key(plan: _Plan) -> list[list[int]]:
    return [[r.start, r.stop, r.step] if r is not None else [] for r in (plan.forward, plan.backward)]


def _run(
    predictor: Any,
    frames: FrameSource,
    objects: list[ObjectSeeds],
    plan: _Plan,
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
    state = new_inference_state(predictor, feeder, frames.width, frames.height)
    out = _Results(state, objects, device, options, feeder)
    started = time.perf_counter()
    resume = options.resume
    track_ids = [obj.track_id for obj in objects]
    frames_done = resume.frames_done if resume else 0
    frames_at_start = frames_done
    batch = TrackedBatch()
    batch_frames = 0
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
            predictor.propagate_in_video_preflight(state)
            if resume is not None:
                restore(state, resume)
        for run_idx, (pass_idx, order, reverse) in enumerate(runs):
            run_reverse = reverse and plan.start > 0
            if run_idx:
                feeder.expect(_frames_asked(conds, order))
            steps = predictor.propagate_in_video(
                state, start_frame_idx=order[0], max_frame_num_to_track=len(order) - 1, reverse=run_reverse
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
                        batch.extend(out.add(frame_idx, video_res_masks))
                        batch_frames += 1
                        frames_done += 1
                        if on_progress:
                            elapsed = max(time.perf_counter() - started, 1e-9)
                            fps = (frames_done - frames_at_start) / elapsed
                            on_progress(TrackingProgress(frames_done, plan.total, frame_idx, fps))
                    del video_res_masks, step
                    prune_outputs(state, frame_idx, run_reverse, keep, protect)
                    if batch_frames == batch_size:
                        batch.extend(out.flush())
                        batch.resume_point = capture(state, pass_idx, frame_idx, frames_done, track_ids, _plan_key(plan))
                        batch.frames_wait_s = feeder.wait_seconds
                        full, batch, batch_frames = batch, TrackedBatch(), 0
                        yield full
                        del full
            finally:
                steps.close()
            batch.extend(out.flush())
            if batch:
                batch.resume_point = capture(state, pass_idx, order[-1], frames_done, track_ids, _plan_key(plan))
                batch.frames_wait_s = feeder.wait_seconds
                full, batch, batch_frames = batch, TrackedBatch(), 0
                yield full
                del full
    finally:
        state.clear()
        feeder.close()


def _check_resume(point: ResumePoint, plan: _Plan, objects: Sequence[ObjectSeeds]) -> None:
    if not isinstance(point, ResumePoint):
        raise TypeError(f"resume must be a ResumePoint, got {type(point).__name__}")
    if point.track_ids != [o.track_id for o in objects] or point.plan != _plan_key(plan):
        raise ValueError("the saved tracking state belongs to another job (objects or frames differ)")
    passes = _passes(plan)
    if not (0 <= point.pass_idx < len(passes)) or point.frame_idx not in passes[point.pass_idx][0]:
        raise ValueError(f"the saved tracking state points at frame {point.frame_idx}, outside the job")


def _runs(plan: _Plan, resume: ResumePoint | None) -> list[tuple[int, range, bool]]:
    """(pass index, frames, reverse) of the propagation passes still to run: all of them, or those after a
    ResumePoint."""
    runs = []
    for pass_idx, (order, reverse) in enumerate(_passes(plan)):
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


class _Results:
    """Turns each frame's mask logits into FrameMasks carrying RLE. On CUDA a frame's masks and scores are copied to
    the host without blocking and encoded one frame later, while the model computes the next frame."""

    def __init__(self, state: dict, objects: list[ObjectSeeds], device: Any, options: _Options,
                 feeder: FrameFeeder) -> None:
        self.state = state
        self.objects = objects
        self.options = options
        self.feeder = feeder
        self.asynchronous = str(device).startswith("cuda")
        self.pending: tuple | None = None

    def add(self, frame_idx: int, video_res_masks: Any) -> list[FrameMask]:
        import torch

        for obj_idx, obj in enumerate(self.objects):
            if self.state["obj_idx_to_id"][obj_idx] != obj.track_id:  # the predictor numbers objects as added
                raise RuntimeError("object order in the SAM2 state does not match the job's objects")
        logits = []
        for obj_idx in range(len(self.objects)):
            obj_out = self.state["output_dict_per_obj"][obj_idx]
            current = obj_out["cond_frame_outputs"].get(frame_idx) or obj_out["non_cond_frame_outputs"].get(frame_idx)
            logits.append(current["object_score_logits"].reshape(-1)[:1])
        scores = torch.cat(logits).float()
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
        if frame_idx in self.options.preview_frames and self.options.on_preview is not None:
            self.options.on_preview(frame_idx, self.feeder.take_rgb(frame_idx), results)
        return results


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


class LazyFrames(FrameFeeder):
    """Frames made on demand in the caller's thread (no workers, tensors on the CPU), for one-frame states such as
    the seed preview; preprocessing is the feeder's, so identical to a job's."""

    def __init__(self, source: Any, image_size: int) -> None:
        super().__init__(source, image_size, "cpu", threads=1)
