"""The one data type every format converts to and from: an AnnotationSet of TrackData, each with its Features.

Features are the store's own Feature records (masks as COCO RLE), so exporting never decodes a mask that the
format can carry as RLE, and importing hands the store exactly what it will save.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

from ..store.records import Feature


class FormatError(ValueError):
    """A file cannot be read as the format it claims; the message names the track, frame or field at fault."""


@dataclass(frozen=True)
class TrackData:
    """One track and its features in frame order. track_id is the id in the file (or the store, on export)."""

    track_id: int
    confidence_pairs: tuple[tuple[str, float], ...]
    features: tuple[Feature, ...] = ()
    attributes: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

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
    """All tracks of one video. width/height/frame_count/fps are None when the file does not say (DIVE JSON)."""

    tracks: tuple[TrackData, ...]
    width: int | None = None
    height: int | None = None
    frame_count: int | None = None
    fps: float | None = None
    name: str = ""
    groups: dict = field(default_factory=dict)

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


def read_json(path: str | os.PathLike):
    """Parse a JSON annotation file; a file that is not UTF-8 JSON raises FormatError naming it."""
    from pathlib import Path

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{path} is not valid JSON: {exc}") from exc


def check_number(value, where: str, *, integer: bool = False, minimum: float | None = None) -> float | int:
    """Validate a JSON number, naming where it came from; bool is refused (JSON true is not a coordinate)."""
    ok_types = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_types) or not math.isfinite(value):
        kind = "an integer" if integer else "a finite number"
        raise FormatError(f"{where} must be {kind}, got {value!r}")
    if minimum is not None and value < minimum:
        raise FormatError(f"{where} must be at least {minimum:g}, got {value!r}")
    return value


def check_dict(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise FormatError(f"{where} must be an object, got {type(value).__name__}")
    return value


def check_list(value, where: str) -> list:
    if not isinstance(value, list):
        raise FormatError(f"{where} must be a list, got {type(value).__name__}")
    return value


def parse_int_key(key: str, where: str) -> int:
    """Track ids and frames appear as JSON object keys and zip path parts: plain non-negative integers only."""
    if not isinstance(key, str) or not key.isdigit() or (len(key) > 1 and key[0] == "0") or len(key) > 12:
        raise FormatError(f"{where}: {key!r} is not a non-negative integer without leading zeros")
    return int(key)
