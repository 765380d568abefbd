"""The frame viewer's value (the gr.HTML component's value the page's JS reads and writes) as one validated type.

The page sends this value with every Annotate event and gets it back from the handlers. Its JSON shape belongs to
the page (web/static/viewer/ documents it) and stays exactly this:

    {"dataset": {"id", "name", "frame_count", "width", "height", "fps"} | null,
     "revision": opaque text or number (any change makes the page reload masks and timeline),
     "base_revision": the saved revision the page's view is based on,
     "tracks": [{"id", "label", "colour", "begin", "end"}], "active": track id | null,
     "selected": [track ids], "hidden": [track ids], "frame_idx": the frame on screen,
     "pending": {"<frame>": {"<track>": {"box": [x1, y1, x2, y2] | null, "clicks": [[x, y, positive]]}}},
     "seek": frame | null, "reset_pending": bool, "job": {"id", "dataset_id", "status", "start", "current",
     "frames"} | null, "poll": bool}

It comes from the browser (or a script), so ViewerValue.from_json checks every field (types, ranges, sizes) and
raises ViewerValueError with a message a person can read; handlers work on the typed value and answer to_json().
A missing or null key takes its default (a script may send only what it needs). What depends on the video (a frame
past its end, a box outside the frame) is checked where the server knows the video: viewer.pending_edits.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, fields

from sam2_tracking.states import JobState

MAX_ID = 2**63 - 1  # store ids are 64-bit integers
MAX_FRAME_IDX = 2**31 - 1
MAX_TRACKS = 100_000  # tracks of one video sent to the page (imports add up to SAM2T_MAX_TRACKS_PER_IMPORT each)
MAX_SEEDS = 10_000  # unsaved (frame, track) seeds in one value
MAX_CLICKS_PER_SEED = 64
MAX_TEXT_CHARS = 10_000  # a track label or a video name; the server shortens what it sends to fit (fit_text)
MAX_REVISION_CHARS = 100
_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")


class ViewerValueError(ValueError):
    """The page sent a viewer value the server cannot use; the message names the field and what is wrong."""


def fit_text(text: str) -> str:
    """Text the server puts into a value, shortened so that the value it sends always reads back."""
    return text[:MAX_TEXT_CHARS]


@dataclass(frozen=True)
class DatasetInfo:
    id: int
    name: str = ""
    frame_count: int = 0
    width: int = 0
    height: int = 0
    fps: float | None = None


@dataclass(frozen=True)
class TrackInfo:
    id: int
    label: str
    colour: str
    begin: int | None
    end: int | None


@dataclass(frozen=True)
class JobOverlay:
    """A running job's span and position, drawn on the page's timeline."""

    id: int
    dataset_id: int
    status: JobState
    start: int
    current: int | None
    frames: tuple[int, ...]  # [first, last] frame the job covers, or empty


@dataclass(frozen=True)
class PendingSeed:
    """One unsaved box and/or clicks of one track on one frame, as drawn (clamped to the frame when saved)."""

    frame_idx: int
    track_id: int
    box: tuple[float, float, float, float] | None
    clicks: tuple[tuple[float, float, bool], ...]

    @property
    def empty(self) -> bool:
        return self.box is None and not self.clicks


@dataclass(frozen=True)
class ViewerValue:
    dataset: DatasetInfo | None = None
    revision: str | int = 0
    base_revision: int = 0
    tracks: tuple[TrackInfo, ...] = ()
    active: int | None = None
    selected: tuple[int, ...] = ()
    hidden: tuple[int, ...] = ()
    frame_idx: int = 0
    pending: tuple[PendingSeed, ...] = ()
    seek: int | None = None
    reset_pending: bool = False
    job: JobOverlay | None = None
    poll: bool = False

    @property
    def dataset_id(self) -> int | None:
        return None if self.dataset is None else self.dataset.id

    @property
    def has_unsaved(self) -> bool:
        return any(not seed.empty for seed in self.pending)

    def chosen_tracks(self) -> list[int]:
        """The tracks an action works on: the ticked ones, else the active one."""
        return sorted(set(self.selected) or ({self.active} - {None}))

    @classmethod
    def from_json(cls, raw: object) -> ViewerValue:
        """The value as the page (or a script) sent it; raises ViewerValueError naming the first bad field."""
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise ViewerValueError(f"the viewer's value must be a JSON object, got {type(raw).__name__}")

        def get(key: str, default):
            return _get(raw, key, default)

        return cls(
            dataset=None if raw.get("dataset") is None else _dataset(raw["dataset"]),
            revision=_revision(get("revision", 0)),
            base_revision=_int(get("base_revision", 0), "base_revision", 0, MAX_ID),
            tracks=tuple(_track(t) for t in _items(get("tracks", []), "tracks", MAX_TRACKS)),
            active=None if raw.get("active") is None else _int(raw["active"], "the active track", 0, MAX_ID),
            selected=_ids(get("selected", []), "selected"),
            hidden=_ids(get("hidden", []), "hidden"),
            frame_idx=_int(get("frame_idx", 0), "the viewer's frame", 0, MAX_FRAME_IDX),
            pending=_pending(get("pending", {})),
            seek=None if raw.get("seek") is None else _int(raw["seek"], "seek", 0, MAX_FRAME_IDX),
            reset_pending=_bool(get("reset_pending", False), "reset_pending"),
            job=None if raw.get("job") is None else _job(raw["job"]),
            poll=_bool(get("poll", False), "poll"),
        )

    def to_json(self) -> dict:
        """The value in the page's JSON shape (every key, always)."""
        pending: dict[str, dict[str, dict]] = {}
        for seed in self.pending:
            pending.setdefault(str(seed.frame_idx), {})[str(seed.track_id)] = {
                "box": None if seed.box is None else list(seed.box),
                "clicks": [[x, y, positive] for x, y, positive in seed.clicks]}
        return {
            "dataset": None if self.dataset is None else _plain(self.dataset),
            "revision": self.revision, "base_revision": self.base_revision,
            "tracks": [_plain(t) for t in self.tracks], "active": self.active,
            "selected": list(self.selected), "hidden": list(self.hidden), "frame_idx": self.frame_idx,
            "pending": pending, "seek": self.seek, "reset_pending": self.reset_pending,
            "job": None if self.job is None else {**_plain(self.job), "status": self.job.status.value,
                                                  "frames": list(self.job.frames)},
            "poll": self.poll,
        }


def _plain(record) -> dict:
    return {f.name: getattr(record, f.name) for f in fields(record)}


# ---- field readers: each raises ViewerValueError naming the field ---------------------------------------------------

def _short(value: object) -> str:
    return repr(value)[:40]


def _int(value: object, where: str, low: int, high: int) -> int:
    """A whole number in [low, high]; JSON has one number type, so 3.0 is 3, but text and true are not numbers."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ViewerValueError(f"{where} must be a whole number, got {_short(value)}")
    if value < low:
        raise ViewerValueError(f"{where} must be {low} or more, got {value}")
    if value > high:
        raise ViewerValueError(f"{where} must be at most {high}, got {value}")
    return value


def _optional_int(value: object, where: str, low: int, high: int) -> int | None:
    return None if value is None else _int(value, where, low, high)


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ViewerValueError(f"{where}: not a number")
    return float(value)


def _bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise ViewerValueError(f"{where} must be true or false, got {_short(value)}")
    return value


def _text(value: object, where: str, limit: int = MAX_TEXT_CHARS) -> str:
    if not isinstance(value, str):
        raise ViewerValueError(f"{where} must be text, got {_short(value)}")
    if len(value) > limit:
        raise ViewerValueError(f"{where} is longer than {limit} characters")
    return value


def _get(raw: dict, key: str, default):
    """A key's value; missing or null is the default (but a wrong type is still refused by the reader)."""
    value = raw.get(key)
    return default if value is None else value


def _object(value: object, where: str) -> dict:
    if not isinstance(value, dict):
        raise ViewerValueError(f"{where} must be a JSON object, got {_short(value)}")
    return value


def _items(value: object, where: str, limit: int) -> list:
    if not isinstance(value, list):
        raise ViewerValueError(f"{where} must be a list, got {_short(value)}")
    if len(value) > limit:
        raise ViewerValueError(f"{where} holds {len(value)} items, more than the {limit} allowed")
    return value


def _ids(value: object, where: str) -> tuple[int, ...]:
    return tuple(_int(item, f"{where}: a track id", 0, MAX_ID) for item in _items(value, where, MAX_TRACKS))


def _revision(value: object) -> str | int:
    if isinstance(value, str):
        return _text(value, "revision", MAX_REVISION_CHARS)
    return _int(value, "revision", -1, MAX_ID)


def _dataset(value: object) -> DatasetInfo:
    raw = _object(value, "dataset")
    fps = raw.get("fps")
    if fps is not None and (_number(fps, "dataset fps") < 0):
        raise ViewerValueError("dataset fps must be 0 or more")
    return DatasetInfo(
        id=_int(raw.get("id"), "dataset id", 0, MAX_ID),
        name=_text(_get(raw, "name", ""), "dataset name"),
        frame_count=_int(_get(raw, "frame_count", 0), "dataset frame_count", 0, MAX_FRAME_IDX),
        width=_int(_get(raw, "width", 0), "dataset width", 0, 2**20),
        height=_int(_get(raw, "height", 0), "dataset height", 0, 2**20),
        fps=None if fps is None else float(fps),
    )


def _track(value: object) -> TrackInfo:
    raw = _object(value, "a track")
    track_id = _int(raw.get("id"), "a track's id", 0, MAX_ID)
    colour = _text(_get(raw, "colour", "#000000"), f"track {track_id}'s colour", 7)
    if not _COLOUR.fullmatch(colour):
        raise ViewerValueError(f"track {track_id}'s colour must be #rrggbb, got {_short(colour)}")
    return TrackInfo(
        id=track_id, label=_text(_get(raw, "label", ""), f"track {track_id}'s label"), colour=colour,
        begin=_optional_int(raw.get("begin"), f"track {track_id}'s first frame", 0, MAX_FRAME_IDX),
        end=_optional_int(raw.get("end"), f"track {track_id}'s last frame", 0, MAX_FRAME_IDX),
    )


def _job(value: object) -> JobOverlay:
    raw = _object(value, "job")
    try:
        status = JobState(raw.get("status"))
    except ValueError:
        raise ViewerValueError(f"job status must be one of {', '.join(JobState)}, got {_short(raw.get('status'))}") \
            from None
    frames = tuple(_int(f, "job frames", 0, MAX_FRAME_IDX) for f in _items(_get(raw, "frames", []), "job frames", 2))
    return JobOverlay(
        id=_int(raw.get("id"), "job id", 0, MAX_ID), dataset_id=_int(raw.get("dataset_id"), "job dataset_id", 0, MAX_ID),
        status=status, start=_int(_get(raw, "start", 0), "job start", 0, MAX_FRAME_IDX),
        current=_optional_int(raw.get("current"), "job current", 0, MAX_FRAME_IDX), frames=frames,
    )


def _key(key: str, low: int, high: int) -> int | None:
    """A JSON object key that must be a whole number (the page writes String(number))."""
    if not re.fullmatch(r"-?\d{1,19}", key):
        return None
    number = int(key)
    return number if low <= number <= high else None


def _pending(value: object) -> tuple[PendingSeed, ...]:
    seeds: list[PendingSeed] = []
    for frame_key, tracks in _object(value, "pending").items():
        frame_idx = _key(frame_key, 0, MAX_FRAME_IDX)
        if frame_idx is None or not isinstance(tracks, dict):
            raise ViewerValueError(f"unsaved edit on frame {frame_key!r}: not a frame of this video")
        for track_key, seed in tracks.items():
            track_id = _key(track_key, 0, MAX_ID)
            if track_id is None:
                raise ViewerValueError(f"unsaved edit for track {track_key!r}: not a track id")
            if len(seeds) == MAX_SEEDS:
                raise ViewerValueError(f"more than {MAX_SEEDS} unsaved edits: save some first")
            seeds.append(_seed(frame_idx, track_id, seed))
    return tuple(seeds)


def _seed(frame_idx: int, track_id: int, value: object) -> PendingSeed:
    where = f"frame {frame_idx}, track {track_id}"
    raw = _object(value, f"{where}: an unsaved edit")
    box = None
    if raw.get("box") is not None:
        if not isinstance(raw["box"], list) or len(raw["box"]) != 4:
            raise ViewerValueError(f"{where}: a box has four numbers")
        x1, y1, x2, y2 = (_number(v, f"{where}, box") for v in raw["box"])
        box = (x1, y1, x2, y2)
    return PendingSeed(frame_idx, track_id, box, tuple(_clicks(_get(raw, "clicks", []), where)))


def _clicks(value: object, where: str) -> Iterable[tuple[float, float, bool]]:
    if not isinstance(value, list):
        raise ViewerValueError(f"{where}: clicks are a list of [x, y, positive]")
    if len(value) > MAX_CLICKS_PER_SEED:
        raise ViewerValueError(f"{where}: at most {MAX_CLICKS_PER_SEED} clicks")
    for click in value:
        if not isinstance(click, list) or len(click) != 3 or click[2] not in (True, False):
            raise ViewerValueError(f"{where}: a click is [x, y, positive]")
        yield _number(click[0], f"{where}, click"), _number(click[1], f"{where}, click"), bool(click[2])
