"""Data types passed between modules. Each validates itself in __post_init__ so bad input fails where it enters.

Conventions: `*_id` is a stored or user-facing identifier, `*_idx` a position (frame index, 0-based).
Boxes are (x1, y1, x2, y2) in pixels of the video frame: left, top, right, bottom (DIVE's `bounds`).
Masks are numpy bool arrays of shape (height, width) at video resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

ALLOWED_BATCH_SIZES = (10, 100, 300, 500, 1000)
NOTIFY_PERCENT_RANGE = (1, 50)


class SeedError(ValueError):
    """A seed (box, mask, clicks) cannot be used; the message says what is wrong and where."""


class Direction(str, Enum):
    FORWARD = "forward"
    BACKWARD = "backward"
    BOTH = "both"


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in frame pixels; x2 > x1 and y2 > y1."""

    x1: float
    y1: float
    x2: float
    y2: float

    def __post_init__(self) -> None:
        values = (self.x1, self.y1, self.x2, self.y2)
        if not all(isinstance(v, (int, float, np.integer, np.floating)) and math.isfinite(v) for v in values):
            raise SeedError(f"box coordinates must be finite numbers, got {values}")
        if self.x2 <= self.x1 or self.y2 <= self.y1:
            raise SeedError(
                f"box ({self.x1:g}, {self.y1:g}, {self.x2:g}, {self.y2:g}) is empty or inverted: "
                "x2 must be greater than x1 and y2 greater than y1"
            )

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    def as_list(self) -> list[float]:
        return [self.x1, self.y1, self.x2, self.y2]

    def as_xywh(self) -> list[float]:
        return [self.x1, self.y1, self.x2 - self.x1, self.y2 - self.y1]

    def check_inside(self, width: int, height: int) -> None:
        """Raise SeedError unless the box overlaps the frame (a box partly outside is clipped by SAM2, that is fine)."""
        if self.x2 <= 0 or self.y2 <= 0 or self.x1 >= width or self.y1 >= height:
            raise SeedError(f"box {self.as_list()} lies outside the {width}x{height} frame")


@dataclass(frozen=True)
class Click:
    """A point prompt in frame pixels; positive=True means 'this is the object', False 'this is not'."""

    x: float
    y: float
    positive: bool = True

    def __post_init__(self) -> None:
        if not (math.isfinite(self.x) and math.isfinite(self.y)):
            raise SeedError(f"click coordinates must be finite, got ({self.x}, {self.y})")


@dataclass(frozen=True, eq=False)
class Seed:
    """A person's prompt for one object on one frame: a box, a mask, clicks, or a box plus clicks.

    mask: bool array (height, width) at video resolution. A mask seed cannot be combined with a box or clicks
    (SAM2 takes either a mask or points/box on a frame).
    """

    frame_idx: int
    box: Box | None = None
    mask: np.ndarray | None = None
    clicks: tuple[Click, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.frame_idx, (int, np.integer)) or self.frame_idx < 0:
            raise SeedError(f"seed frame must be a non-negative integer, got {self.frame_idx!r}")
        if self.box is None and self.mask is None and not self.clicks:
            raise SeedError(f"seed on frame {self.frame_idx} has no box, mask or clicks")
        if self.mask is not None:
            if self.box is not None or self.clicks:
                raise SeedError(f"seed on frame {self.frame_idx}: give a mask, or a box and/or clicks, not both")
            mask = np.asarray(self.mask)
            if mask.ndim != 2:
                raise SeedError(f"seed mask on frame {self.frame_idx} must be 2-D (height, width), got {mask.shape}")
            if not mask.any():
                raise SeedError(f"seed mask on frame {self.frame_idx} is empty")
            object.__setattr__(self, "mask", mask.astype(bool, copy=False))
        object.__setattr__(self, "clicks", tuple(self.clicks))

    def check_fits(self, width: int, height: int, frame_count: int) -> None:
        """Raise SeedError if this seed cannot apply to a video of this size and length."""
        if self.frame_idx >= frame_count:
            raise SeedError(f"seed frame {self.frame_idx} is past the end of the video ({frame_count} frames)")
        if self.box is not None:
            self.box.check_inside(width, height)
        if self.mask is not None and self.mask.shape != (height, width):
            raise SeedError(
                f"seed mask on frame {self.frame_idx} is {self.mask.shape[1]}x{self.mask.shape[0]}, "
                f"the video is {width}x{height}"
            )
        for click in self.clicks:
            if not (0 <= click.x < width and 0 <= click.y < height):
                raise SeedError(f"click ({click.x:g}, {click.y:g}) on frame {self.frame_idx} is outside the frame")


@dataclass(frozen=True)
class ObjectSeeds:
    """One object to track: the stored track it belongs to and its seeds (one or more frames)."""

    track_id: int
    seeds: tuple[Seed, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "seeds", tuple(self.seeds))
        if not self.seeds:
            raise SeedError(f"track {self.track_id} has no seed")
        frames = [s.frame_idx for s in self.seeds]
        if len(set(frames)) != len(frames):
            raise SeedError(f"track {self.track_id} has two seeds on the same frame")


@dataclass(frozen=True, eq=False)
class FrameMask:
    """The tracker's result for one object on one frame.

    present: SAM2's object score says the object is visible; when False, mask, rle and box are None.
    score: SAM2's object score logit (> 0 means present).
    mask: bool (height, width) at video resolution, or None when absent or when the mask travels as `rle`.
    rle: the mask as COCO compressed RLE ({"size": [h, w], "counts": str}); the tracker hands masks over this way
        (a few KB instead of height x width bytes), so a batch's memory does not grow with the frame size.
    Use mask_array() to get the bool array whichever way the mask travels.
    """

    frame_idx: int
    track_id: int
    present: bool
    score: float
    mask: np.ndarray | None = None
    box: Box | None = None
    rle: dict | None = None

    def __post_init__(self) -> None:
        if self.present and self.mask is None and self.rle is None:
            raise ValueError(f"frame {self.frame_idx}, track {self.track_id}: present but no mask")
        if not self.present and (self.mask is not None or self.rle is not None):
            raise ValueError(f"frame {self.frame_idx}, track {self.track_id}: absent but carries a mask")

    def mask_array(self) -> np.ndarray | None:
        """The mask as bool (height, width), decoding `rle` (made by our tracker, so trusted) when needed."""
        if self.mask is not None or self.rle is None:
            return self.mask
        from pycocotools import mask as mask_utils

        encoded = {"size": list(self.rle["size"]), "counts": self.rle["counts"].encode("ascii")}
        return mask_utils.decode(encoded).astype(bool)


@dataclass(frozen=True)
class TrackingProgress:
    """Reported by the tracker after every frame."""

    frames_done: int
    frames_total: int
    frame_idx: int
    fps: float


@dataclass(frozen=True)
class JobSpec:
    """What an annotator asks for when pressing the track button.

    num_frames: how many frames to track from start_frame_idx (None: to the end, or to the start for backward).
    """

    dataset_id: int
    track_ids: tuple[int, ...]
    start_frame_idx: int
    model_name: str
    queue: str
    num_frames: int | None = None
    direction: Direction = Direction.FORWARD
    batch_size: int = 100
    notify_percent: int = 5
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "track_ids", tuple(int(t) for t in self.track_ids))
        object.__setattr__(self, "direction", Direction(self.direction))
        if not self.track_ids:
            raise ValueError("a tracking job needs at least one track")
        if self.batch_size not in ALLOWED_BATCH_SIZES:
            raise ValueError(f"batch size must be one of {ALLOWED_BATCH_SIZES}, got {self.batch_size}")
        low, high = NOTIFY_PERCENT_RANGE
        if not (low <= self.notify_percent <= high):
            raise ValueError(f"notification percent must be between {low} and {high}, got {self.notify_percent}")
        if self.start_frame_idx < 0:
            raise ValueError(f"start frame must be 0 or more, got {self.start_frame_idx}")
        if self.num_frames is not None and self.num_frames < 1:
            raise ValueError(f"number of frames must be at least 1, got {self.num_frames}")
