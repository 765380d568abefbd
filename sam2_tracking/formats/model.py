"""Validation helpers shared by the readers, and the data type every format converts to and from.

AnnotationSet / TrackData / Feature live in the domain module sam2_tracking.annotations (the store uses the same
records, masks as COCO RLE), so exporting never decodes a mask a format can carry as RLE and importing hands the
store exactly what it will save. They are re-exported here for the readers' convenience.
"""

from __future__ import annotations

import json
import math
import os

from ..annotations import AnnotationSet, Feature, FormatError, TrackData

__all__ = ["AnnotationSet", "Feature", "FormatError", "TrackData"]


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
