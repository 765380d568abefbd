"""The one wrapper around SAM2's inference state: every key of its private, string-keyed dict is read or written here
and nowhere else, so a sam2 upgrade that renames one breaks one module (and tests/test_sam2_state.py, which pins the
sam2 version and the keys `init_state` builds).

Written against sam2 1.1.0 (facebookresearch/sam2 at 2b90b9f). The predictor's public methods (add_new_points_or_box,
add_new_mask, propagate_in_video, reset_state) take `Sam2State.raw`.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from sam2_tracking.engine.resume import ResumePoint

SAM2_VERSION = "1.1.0"

# The keys SAM2VideoPredictor.init_state builds; tests/test_sam2_state.py checks a real init_state against this set.
STATE_KEYS = frozenset({
    "images", "num_frames", "offload_video_to_cpu", "offload_state_to_cpu", "video_height", "video_width", "device",
    "storage_device", "point_inputs_per_obj", "mask_inputs_per_obj", "cached_features", "constants",
    "obj_id_to_idx", "obj_idx_to_id", "obj_ids", "output_dict_per_obj", "temp_output_dict_per_obj",
    "frames_tracked_per_obj",
})


class Sam2State:
    """One video's SAM2 inference state, over a lazy frame sequence."""

    def __init__(self, raw: dict) -> None:
        self.raw = raw

    @classmethod
    def new(cls, predictor: Any, images: Any, width: int, height: int) -> Sam2State:
        """A state as SAM2VideoPredictor.init_state builds it, over a lazy `images` sequence (it needs only
        __getitem__ and __len__), without its warm-up pass on frame 0 (features are recomputed on demand,
        identically)."""
        device = predictor.device
        return cls({
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
        })

    @property
    def num_frames(self) -> int:
        return int(self.raw["num_frames"])

    def has_features(self, frame_idx: int) -> bool:
        """True when the image encoder's output for frame_idx is cached (the next prompt on it is cheap)."""
        return frame_idx in self.raw["cached_features"]

    def check_object_order(self, track_ids: list[int]) -> None:
        """The predictor numbers objects in the order they were added: obj_idx k must be track_ids[k]."""
        if [self.raw["obj_idx_to_id"].get(k) for k in range(len(track_ids))] != list(track_ids):
            raise RuntimeError("object order in the SAM2 state does not match the job's objects")

    def score_logit(self, obj_idx: int, frame_idx: int) -> Any:
        """SAM2's object score logit (a one-element tensor) of object obj_idx on frame_idx: > 0 means present."""
        out = self.raw["output_dict_per_obj"][obj_idx]
        current = out["cond_frame_outputs"].get(frame_idx) or out["non_cond_frame_outputs"].get(frame_idx)
        return current["object_score_logits"].reshape(-1)[:1]

    def prune(self, frame_idx: int, reverse: bool, keep: int, protect: range) -> None:
        """Delete non-conditioning outputs `keep` or more frames behind frame_idx in processing order (but not those
        in `protect`); conditioning (seeded) frames are always kept."""
        for obj_idx, obj_out in self.raw["output_dict_per_obj"].items():
            non_cond = obj_out["non_cond_frame_outputs"]
            tracked = self.raw["frames_tracked_per_obj"][obj_idx]
            if reverse:
                stale = [t for t in non_cond if t >= frame_idx + keep and t not in protect]
            else:
                stale = [t for t in non_cond if t <= frame_idx - keep and t not in protect]
            for t in stale:
                del non_cond[t]
                tracked.pop(t, None)

    def capture(self, pass_idx: int, frame_idx: int, frames_done: int, track_ids: list[int],
                plan: list[list[int]]) -> ResumePoint:
        """The ResumePoint after frame_idx (cheap: no tensor is copied)."""
        # Shallow copies: SAM2 adds and we delete per-frame entries, but never change a stored output in place, so
        # the point stays what it was at this frame while tracking goes on.
        outputs = {
            obj_idx: {"cond_frame_outputs": dict(obj_out["cond_frame_outputs"]),
                      "non_cond_frame_outputs": dict(obj_out["non_cond_frame_outputs"])}
            for obj_idx, obj_out in self.raw["output_dict_per_obj"].items()
        }
        tracked = {obj_idx: {t: dict(v) for t, v in frames.items()}
                   for obj_idx, frames in self.raw["frames_tracked_per_obj"].items()}
        return ResumePoint(pass_idx, int(frame_idx), int(frames_done), list(track_ids), plan, outputs, tracked)

    def restore(self, point: ResumePoint) -> None:
        """Put a ResumePoint's outputs into this freshly seeded (and consolidated) state of the same objects."""
        per_obj = self.raw["output_dict_per_obj"]
        if sorted(per_obj) != sorted(point.outputs):
            raise ValueError("the saved tracking state is for other objects")
        for obj_idx, saved in point.outputs.items():
            per_obj[obj_idx]["cond_frame_outputs"] = dict(saved["cond_frame_outputs"])
            per_obj[obj_idx]["non_cond_frame_outputs"] = dict(saved["non_cond_frame_outputs"])
            self.raw["frames_tracked_per_obj"][obj_idx] = {t: dict(v) for t, v in point.tracked[obj_idx].items()}

    def cached_bytes(self) -> int:
        """Bytes held by the cached image features and constants (what a kept preview state costs)."""
        import torch

        seen: set[int] = set()
        total = 0

        def walk(value: Any) -> None:
            nonlocal total
            if isinstance(value, torch.Tensor):
                key = value.untyped_storage().data_ptr()
                if key not in seen:
                    seen.add(key)
                    total += value.untyped_storage().nbytes()
            elif isinstance(value, dict):
                for item in value.values():
                    walk(item)
            elif isinstance(value, (list, tuple)):
                for item in value:
                    walk(item)

        walk(self.raw["cached_features"])
        walk(self.raw["constants"])
        return total

    def clear(self) -> None:
        self.raw.clear()
