"""One-frame SAM2 preview: the mask a seed gives on its frame, exactly as a tracking job's first frame computes it.

Why it equals the job bit for bit: the state is built by Sam2State.new over tracker.LazyFrames (the
same preprocessing), seeded by tracker.add_seeds (the stock `add_new_points_or_box` / `add_new_mask`), and the mask
is what the stock `propagate_in_video` yields for the seeded start frame, thresholded as the tracker does (logit
> 0; present when the object score logit > 0). The only difference from a job is that the state's frame sequence serves one frame: SAM2 asks for no
other frame when it propagates zero frames past the seed.

Why it is fast on the next click: SAM2 keeps the frame's image features in its state (Sam2State.has_features). A
PreviewEngine keeps a few states, keyed by (model, video, frame) in an LRU bounded in bytes, and resets only their
prompts and outputs (`reset_state`) between requests, so a further click on the same frame runs the prompt encoder,
mask decoder and memory encoder but not the image encoder.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sam2_tracking.types import FrameMask, ObjectSeeds, Seed, SeedError

# A state's image features: 7.4 MB measured for the Tiny architecture at image size 256, growing with the square of
# the image size (about 120 MB at 1024): five frames at 1024 fit, dozens at 256.
DEFAULT_CACHE_BYTES = 640 * 1024 * 1024


@dataclass(frozen=True)
class Preview:
    """The preview of one seed: `result` is the FrameMask a job would write for the seed frame (present, score,
    mask bool (height, width) at video resolution, box); `encoded` says whether the image encoder ran for it."""

    result: FrameMask
    encoded: bool
    compute_ms: float


class _OneFrameSource:
    """A FrameSource with a single readable frame; its length is the video's, so frame indices match the job's."""

    def __init__(self, frame_idx: int, frame_count: int, frame: np.ndarray | Callable[[], np.ndarray]) -> None:
        self.frame_idx = frame_idx
        self.frame_count = frame_count
        self._frame = frame

    def read(self, frame_idx: int) -> np.ndarray:
        if frame_idx != self.frame_idx:
            raise RuntimeError(f"the preview state holds frame {self.frame_idx}, SAM2 asked for {frame_idx}")
        if self._frame is None:
            # The engine drops a state whose request failed, so a fresh one (with the frame) serves the next request.
            raise RuntimeError(f"frame {frame_idx} of this preview state was already turned into SAM2 features")
        frame = self._frame() if callable(self._frame) else self._frame
        # SAM2 keeps the features it computed from the frame; the RGB copy is only needed once.
        self._frame = None
        return frame


class _Entry:
    def __init__(self, predictor: Any, state: Any, size: tuple[int, int]) -> None:  # state: a Sam2State
        self.predictor_ref = weakref.ref(predictor)
        self.state = state
        self.size = size
        self.nbytes = 0


class PreviewEngine:
    """Previews seeds on frames, keeping recent frames' SAM2 states (with their image features) in an LRU bounded
    by max_bytes. Thread-safe: requests are served one at a time (the states are not shareable)."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.max_bytes = int(max_bytes)
        self._states: OrderedDict[tuple, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def cached_bytes(self) -> int:
        return sum(entry.nbytes for entry in self._states.values())

    def __len__(self) -> int:
        return len(self._states)

    def preview(
        self,
        predictor: Any,
        video_key: Hashable,
        frame_count: int,
        width: int,
        height: int,
        seed: Seed,
        frame: np.ndarray | Callable[[], np.ndarray],
        obj_id: int = 1,
    ) -> Preview:
        """The mask SAM2 gives `seed` on its frame.

        video_key identifies the video's content (e.g. path, size and modification time): states are reused only
        for the same predictor, video_key and frame. frame is the seed frame as uint8 RGB (height, width, 3) at
        video resolution, or a function returning it (called only when the frame's features are not cached).
        obj_id is the track id the job will use. Raises SeedError for a seed that does not fit the video.
        """
        import torch

        from sam2_tracking.engine.tracker import add_seeds
        from sam2_tracking.models.catalogue import inference_context

        if not isinstance(seed, Seed):
            raise TypeError(f"seed must be a Seed, got {type(seed).__name__}")
        seed.check_fits(int(width), int(height), int(frame_count))
        objects = [ObjectSeeds(int(obj_id), (seed,))]
        frame_idx = int(seed.frame_idx)
        with self._lock:
            started = time.perf_counter()
            entry = self._entry(predictor, (id(predictor), video_key, frame_idx), frame_idx, frame_count,
                                (int(width), int(height)), frame)
            state = entry.state
            encoded = not state.has_features(frame_idx)
            try:
                predictor.reset_state(state.raw)
                device = predictor.device
                with torch.inference_mode(), inference_context(device):
                    add_seeds(predictor, state, objects)
                    # The job's first frame is what propagation yields for the seeded start frame (it also runs the
                    # memory encoder there); zero further frames are tracked, so no other frame is read.
                    steps = predictor.propagate_in_video(state.raw, start_frame_idx=frame_idx, max_frame_num_to_track=0)
                    try:
                        step_frame_idx, _obj_ids, video_res_masks = next(steps)
                    finally:
                        steps.close()
                if step_frame_idx != frame_idx:
                    raise RuntimeError(f"SAM2 answered for frame {step_frame_idx}, not {frame_idx}")
                result = _frame_mask(state, int(obj_id), frame_idx, video_res_masks)
            except BaseException:
                self._drop(entry)  # a state left half-seeded must not serve the next request
                raise
            finally:
                if encoded:
                    entry.nbytes = state.cached_bytes()
                    self._evict()
            return Preview(result, encoded, (time.perf_counter() - started) * 1000.0)

    def clear(self) -> None:
        with self._lock:
            self._states.clear()

    def _entry(self, predictor: Any, key: tuple, frame_idx: int, frame_count: int, size: tuple[int, int],
               frame: np.ndarray | Callable[[], np.ndarray]) -> _Entry:
        from sam2_tracking.engine.sam2_state import Sam2State
        from sam2_tracking.engine.tracker import LazyFrames

        entry = self._states.get(key)
        if entry is not None and entry.predictor_ref() is predictor and entry.size == size and \
                entry.state.num_frames == frame_count and entry.state.has_features(frame_idx):
            self._states.move_to_end(key)
            return entry
        if callable(frame):
            frame = _checked_loader(frame, size)
        else:
            _check_frame(frame, size)
        loader = LazyFrames(_OneFrameSource(frame_idx, frame_count, frame), predictor.image_size)
        entry = _Entry(predictor, Sam2State.new(predictor, loader, size[0], size[1]), size)
        self._states[key] = entry
        return entry

    def _drop(self, entry: _Entry) -> None:
        for key, value in list(self._states.items()):
            if value is entry:
                del self._states[key]

    def _evict(self) -> None:
        # Keep at least the newest state: a single frame larger than the bound is still served, then dropped next.
        while len(self._states) > 1 and self.cached_bytes > self.max_bytes:
            self._states.popitem(last=False)


def _frame_mask(state: Any, obj_id: int, frame_idx: int, video_res_masks: Any) -> FrameMask:
    """The FrameMask a job writes for the seed frame: mask where the logits are > 0, present when SAM2's object
    score logit is > 0 (the one object of a preview state is obj_idx 0)."""
    from sam2_tracking.engine.masks import mask_to_box

    score = float(state.score_logit(0, frame_idx).float()[0])
    if score <= 0:
        return FrameMask(frame_idx, obj_id, False, score)
    mask = (video_res_masks[0, 0] > 0.0).cpu().numpy()
    return FrameMask(frame_idx, obj_id, True, score, mask, mask_to_box(mask))


def _check_frame(frame: np.ndarray, size: tuple[int, int]) -> None:
    width, height = size
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.shape != (height, width, 3):
        shape = getattr(frame, "shape", None)
        raise SeedError(f"the preview frame must be uint8 RGB of shape ({height}, {width}, 3), got {shape}")


def _checked_loader(load: Callable[[], np.ndarray], size: tuple[int, int]) -> Callable[[], np.ndarray]:
    def load_checked() -> np.ndarray:
        frame = load()
        _check_frame(frame, size)
        return frame

    return load_checked
