"""The annotations of one video as one value, shared by the store and the file formats: AnnotationSet (all tracks),
TrackData (one track), Feature (a track on one frame), and FormatError for data that does not fit them.

The store hands these out and accepts them; formats/ converts them to and from files. Neither imports the other:
both import this module (DESIGN.md section 2, one-way imports).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from sam2_tracking.engine.masks import rle_to_mask
from sam2_tracking.types import Box, Click


class FormatError(ValueError):
    """A file cannot be read as the format it claims; the message names the track, frame or field at fault."""


@dataclass(frozen=True)
class Feature:
    """A track on one frame.

    keyframe: a person made it (a tracking job never overwrites its box, clicks or attributes; it may add a mask).
    job_id: the job whose result this is (for a keyframe: the job that gave it its mask), None if a person's alone.
    present: False records "the tracker found the object absent here" (then box and mask are None).
    score: SAM2's object score logit for a tracked frame (> 0: present), None when no model scored it.
    rle: the mask as COCO compressed RLE, or None; `.mask` decodes it to a bool (height, width) array.
    """

    track_id: int
    frame_idx: int
    box: Box | None = None
    rle: dict | None = None
    present: bool = True
    score: float | None = None
    keyframe: bool = False
    clicks: tuple[Click, ...] = ()
    attributes: dict = field(default_factory=dict)
    job_id: int | None = None

    @cached_property
    def mask(self) -> np.ndarray | None:
        return None if self.rle is None else rle_to_mask(self.rle)

    @property
    def has_mask(self) -> bool:
        return self.rle is not None


@dataclass(frozen=True)
class TrackData:
    """One track and its features in frame order. track_id is the id in the file (or the store, on export).

    masks_elsewhere: {frame: DIVE bounds} of the frames the file marks as masked (DIVE `hasMask`) without carrying
    the masks (they travel in the mask zip); kept so DIVE JSON -> DIVE JSON keeps `hasMask` and the mask's bounds.
    """

    track_id: int
    confidence_pairs: tuple[tuple[str, float], ...]
    features: tuple[Feature, ...] = ()
    attributes: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    masks_elsewhere: dict[int, tuple[int, int, int, int]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.confidence_pairs[0][0] if self.confidence_pairs else "object"

    @property
    def present_features(self) -> tuple[Feature, ...]:
        return tuple(f for f in self.features if f.present)

    @property
    def begin(self) -> int | None:
        present = self.present_features
        return present[0].frame_idx if present else None

    @property
    def end(self) -> int | None:
        present = self.present_features
        return present[-1].frame_idx if present else None


@dataclass(frozen=True)
class AnnotationSet:
    """All tracks of one video. width/height/frame_count/fps are None when the file does not say (DIVE JSON).

    name: the video's file name (or image folder's name); frame_names: the image file of each frame for an image
    sequence, () for a video file. warnings: what reading the file could not keep (shown to the person importing).
    """

    tracks: tuple[TrackData, ...]
    width: int | None = None
    height: int | None = None
    frame_count: int | None = None
    fps: float | None = None
    name: str = ""
    groups: dict = field(default_factory=dict)
    frame_names: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def track(self, track_id: int) -> TrackData:
        for track in self.tracks:
            if track.track_id == track_id:
                return track
        raise KeyError(f"no track {track_id} in these annotations")

    def frame_size(self) -> tuple[int, int] | None:
        """(height, width) from the set itself or from its first mask."""
        if self.width and self.height:
            return self.height, self.width
        for track in self.tracks:
            for feature in track.features:
                if feature.rle is not None:
                    return int(feature.rle["size"][0]), int(feature.rle["size"][1])
        return None
