"""Reading and writing annotation files by format name, for the CLI, the UI's import/export and the benchmark."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

import numpy as np

from sam2_tracking.annotation_set import AnnotationSet, FormatError
from sam2_tracking.formats.limits import DEFAULT_LIMITS, ImportLimits, check_import
from sam2_tracking.formats.parsing import json_error_text

EXPORT_FORMATS = ("coco", "dive", "maskzip", "viame", "mp4")
IMPORT_FORMATS = ("coco", "dive", "maskzip", "viame")
EXTENSIONS = {"coco": ".json", "dive": ".json", "maskzip": ".zip", "viame": ".csv", "mp4": ".mp4"}


def detect_format(path: str | os.PathLike) -> str:
    """Which importable format a file is: a zip is a mask zip; JSON with 'annotations' COCO, with 'tracks' DIVE."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path} does not exist or is not a file")
    with path.open("rb") as handle:
        head = handle.read(4)
    if head.startswith(b"PK"):
        return "maskzip"
    if path.suffix.lower() == ".csv" or head.startswith(b"# 1"):
        return "viame"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:  # ValueError: JSON errors and over-long integers
        raise FormatError(f"{path} is neither a zip nor JSON ({json_error_text(exc)}): cannot tell its format") from None
    except RecursionError:
        raise FormatError(f"{path} nests its data too deeply to be an annotation file") from None
    if isinstance(data, dict) and "annotations" in data and "images" in data:
        return "coco"
    if isinstance(data, dict) and "tracks" in data:
        return "dive"
    raise FormatError(f"{path} is JSON but neither COCO (images/annotations) nor DIVE (tracks)")


def load_annotations(
    path: str | os.PathLike,
    fmt: str | None = None,
    frame_size: tuple[int, int] | None = None,
    limits: ImportLimits = DEFAULT_LIMITS,
) -> AnnotationSet:
    """Read an annotation file (format detected unless given). frame_size: the target video's (height, width)
    when known, so every size the file declares is checked against it before anything is decoded. Untrusted
    input never ends in a raw OverflowError/RecursionError: any read problem is a FormatError a person can act on;
    `warnings` on the result list what the file held that the app cannot keep."""
    fmt = fmt or detect_format(path)
    try:
        annotations = _load(path, fmt, frame_size, limits)
    except RecursionError:
        raise FormatError(f"{path} nests its data too deeply to be an annotation file") from None
    except OverflowError:
        raise FormatError(f"{path} holds a number too large for any frame, box or id") from None
    except MemoryError:
        raise FormatError(f"{path} needs more memory than this server has for one import: split it") from None
    check_import(annotations, limits, frame_size)
    return annotations


def _load(path, fmt: str, frame_size, limits: ImportLimits) -> AnnotationSet:
    if fmt == "coco":
        from sam2_tracking.formats.coco import load_coco

        return load_coco(path, frame_size, limits)
    if fmt == "dive":
        from sam2_tracking.formats.dive import load_dive_json

        return load_dive_json(path)
    if fmt == "maskzip":
        from sam2_tracking.formats.maskzip import load_mask_zip

        return load_mask_zip(path, frame_size=frame_size, limits=limits)
    if fmt == "viame":
        from sam2_tracking.formats.viame import load_viame_csv

        return load_viame_csv(path, frame_size)
    raise FormatError(f"cannot import {fmt!r} files; importable formats: {', '.join(IMPORT_FORMATS)}")


def write_annotations(
    annotations: AnnotationSet,
    path: str | os.PathLike,
    fmt: str,
    frames: Iterable[tuple[int, np.ndarray]] | None = None,
    video_name: str | None = None,
) -> Path:
    """Write in any export format; mp4 also needs the video's frames as (frame_idx, RGB frame)."""
    if fmt == "coco":
        from sam2_tracking.formats.coco import write_coco

        return write_coco(annotations, path, video_name)
    if fmt == "dive":
        from sam2_tracking.formats.dive import write_dive_json

        return write_dive_json(annotations, path)
    if fmt == "maskzip":
        from sam2_tracking.formats.maskzip import write_mask_zip

        return write_mask_zip(annotations, path)
    if fmt == "viame":
        from sam2_tracking.formats.viame import write_viame_csv

        return write_viame_csv(annotations, path, video_name)
    if fmt == "mp4":
        if frames is None:
            raise FormatError("the overlay video needs the video's frames: give the video file")
        from sam2_tracking.formats.overlay import write_overlay_video

        return write_overlay_video(annotations, frames, path, annotations.fps or 30.0)
    raise FormatError(f"unknown format {fmt!r}; formats: {', '.join(EXPORT_FORMATS)}")


def export_notes(annotations: AnnotationSet, fmt: str) -> list[str]:
    """What a file in `fmt` will not hold of these annotations, and a plain note when it holds no annotation at all
    (shown by the CLI and the Annotate tab next to the written file)."""
    present = [f for t in annotations.tracks for f in t.present_features]
    masked = [f for f in present if f.rle is not None]
    notes = []
    if fmt in ("coco", "maskzip"):
        written = len(masked)
        if len(present) > written:
            notes.append(f"{len(present) - written} feature(s) without a mask are not in the {fmt} file "
                         "(it holds masks only): export DIVE JSON to keep them")
    elif fmt == "viame":
        from sam2_tracking.formats.dive import dive_bounds

        written = sum(1 for f in present if dive_bounds(f) is not None)
    else:
        written = len(present)
    if written == 0:
        notes.append(f"the {fmt} file holds 0 annotations: these tracks have no "
                     f"{'masks' if fmt in ('coco', 'maskzip') else 'features'} yet")
    return notes


def store_import_notes(annotations: AnnotationSet) -> list[str]:
    """What the store will not keep of a file read for import (it keeps tracks, features, masks, attributes)."""
    notes = list(annotations.warnings)
    meta = sorted({key for t in annotations.tracks for key in t.meta})
    if meta:
        notes.append(f"track meta ({', '.join(k[:40] for k in meta[:5])}): not kept, the app has no track meta")
    if annotations.groups:
        notes.append(f"{len(annotations.groups)} group(s): not kept, the app has no track groups")
    elsewhere = sum(len(t.masks_elsewhere) for t in annotations.tracks)
    if elsewhere:
        notes.append(f"{elsewhere} feature(s) marked hasMask came without their mask: import the DIVE mask zip "
                     "to bring the masks")
    return notes


def image_names(frame_names) -> tuple[str, ...]:
    """Image file names (no folders) of an image sequence's frames, as DIVE matches them."""
    return tuple(PurePosixPath(str(name)).name for name in frame_names or ())
