"""What the readers share: JSON reading, checks of numbers, ids, objects and lists that name the field at fault
(FormatError), the report of what a reader dropped, and the plain JSON numbers the writers write.

The data every format converts to and from is sam2_tracking.annotation_set (AnnotationSet, TrackData, Feature).
"""

from __future__ import annotations

import json
import math
import os

from sam2_tracking.annotation_set import FormatError


def read_json(path: str | os.PathLike):
    """Parse a JSON annotation file; a file that is not UTF-8 JSON raises FormatError naming it."""
    from pathlib import Path

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:  # ValueError: JSON errors and over-long integers
        raise FormatError(f"{path} is not valid JSON: {json_error_text(exc)}") from None
    except RecursionError:
        raise FormatError(f"{path} nests its data too deeply to be an annotation file") from None


def json_error_text(exc: Exception) -> str:
    """A JSON parse error in words a person can act on (Python's text for over-long integers names sys calls)."""
    if "int_max_str_digits" in str(exc) or "integer string conversion" in str(exc):
        return "it holds a number with more digits than any frame, box or id"
    return str(exc)[:200]


def check_number(value, where: str, *, integer: bool = False, minimum: float | None = None) -> float | int:
    """Validate a JSON number, naming where it came from; bool is refused (JSON true is not a coordinate)."""
    ok_types = (int,) if integer else (int, float)
    try:
        finite = isinstance(value, ok_types) and math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        finite = False
    if isinstance(value, bool) or not finite:
        kind = "an integer" if integer else "a finite number"
        raise FormatError(f"{where} must be {kind}, got {str(value)[:40]}")
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
    if not isinstance(key, str) or not (key.isascii() and key.isdigit()) or (len(key) > 1 and key[0] == "0") or len(key) > 12:
        raise FormatError(f"{where}: {key!r} is not a non-negative integer without leading zeros")
    return int(key)


class Dropped:
    """What a reader could not keep, counted per kind, so a person is told instead of losing it silently."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[int, set]] = {}

    def add(self, what: str, track_id=None, count: int = 1) -> None:
        n, tracks = self._items.get(what, (0, set()))
        if track_id is not None:
            tracks.add(track_id)
        self._items[what] = (n + count, tracks)

    def warnings(self) -> tuple[str, ...]:
        out = []
        for what, (n, tracks) in self._items.items():
            shown = ", ".join(str(t) for t in sorted(tracks)[:5]) + (", ..." if len(tracks) > 5 else "")
            out.append(f"{what}: {n} dropped" + (f" (track {shown})" if tracks else ""))
        return tuple(out)


def plain(value: float) -> int | float:
    """A coordinate as JSON should show it: 12, not 12.0 (so a file read and written again is the same bytes)."""
    value = float(value)
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def parse_bool(value, where: str) -> bool:
    """JSON booleans, and the strings DIVE's server turns them into ("True", "false", ...)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise FormatError(f"{where} must be true or false, got {str(value)[:40]!r}")


def parse_id(value, where: str) -> int:
    """A track id: a non-negative integer, or such an integer written as a string (DIVE-DSA's SAM2 writer)."""
    if isinstance(value, str):
        return parse_int_key(value.strip(), where)
    return int(check_number(value, where, integer=True, minimum=0))
