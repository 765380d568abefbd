"""Limits on what one import may hold, checked where untrusted values enter (issue 9).

Readers take an ImportLimits and the video's (height, width) when known, so sizes a file declares are compared
with the video before anything is allocated or decoded; `check_import` then bounds what was read (tracks, labels,
box coordinates). The defaults are the settings' defaults; `ImportLimits.from_settings` takes a person's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sam2_tracking.annotation_set import AnnotationSet, FormatError

# A box may reach this many frame widths/heights past the frame (a drawn box partly outside is fine; 1e308 is not).
BOX_REACH = 4


@dataclass(frozen=True)
class ImportLimits:
    max_frame_pixels: int = 4096 * 2160 * 2  # SAM2T_MAX_FRAME_PIXELS
    max_zip_expansion_bytes: int = 1024**3  # SAM2T_MAX_ZIP_EXPANSION_BYTES: a mask zip's files, uncompressed
    max_zip_ratio: int = 600  # SAM2T_MAX_ZIP_RATIO: uncompressed / compressed, as DIVE-DSA refuses past 600x
    max_zip_members: int = 500_000  # files in a mask zip
    max_label_chars: int = 256  # SAM2T_MAX_LABEL_CHARS
    max_tracks_per_import: int = 10_000  # SAM2T_MAX_TRACKS_PER_IMPORT

    @classmethod
    def from_settings(cls, settings) -> ImportLimits:
        return cls(
            max_frame_pixels=settings.max_frame_pixels,
            max_zip_expansion_bytes=settings.max_zip_expansion_bytes,
            max_zip_ratio=settings.max_zip_ratio,
            max_zip_members=min(cls.max_zip_members, getattr(settings, "max_zip_members", cls.max_zip_members)),
            max_label_chars=settings.max_label_chars,
            max_tracks_per_import=settings.max_tracks_per_import,
        )


DEFAULT_LIMITS = ImportLimits()


def check_frame_size(size: tuple[int, int] | None, frame_size: tuple[int, int] | None, limits: ImportLimits,
                     where: str) -> None:
    """A (height, width) a file declares: positive, within max_frame_pixels, and the video's when it is known."""
    if size is None:
        return
    height, width = size
    if frame_size is not None and (height, width) != tuple(frame_size):
        raise FormatError(
            f"{where} is for a {width}x{height} video but this video is {frame_size[1]}x{frame_size[0]}: "
            "import it into the video it was made for"
        )
    if height * width > limits.max_frame_pixels:
        raise FormatError(f"{where}: a {width}x{height} frame is more than the {limits.max_frame_pixels} pixels "
                          "allowed (SAM2T_MAX_FRAME_PIXELS)")


def check_import(annotations: AnnotationSet, limits: ImportLimits, frame_size: tuple[int, int] | None) -> None:
    """Bound what a reader produced: number of tracks, label length, box coordinates."""
    if len(annotations.tracks) > limits.max_tracks_per_import:
        raise FormatError(f"the file has {len(annotations.tracks)} tracks, more than the "
                          f"{limits.max_tracks_per_import} one import may hold (SAM2T_MAX_TRACKS_PER_IMPORT): "
                          "split it")
    size = frame_size or annotations.frame_size()
    for track in annotations.tracks:
        for label, _score in track.confidence_pairs:
            if len(label) > limits.max_label_chars:
                raise FormatError(f"track {track.track_id}: a label of {len(label)} characters is longer than the "
                                  f"{limits.max_label_chars} allowed (SAM2T_MAX_LABEL_CHARS)")
        if size is None:
            continue
        height, width = size
        for feature in track.features:
            boxes = [feature.box.as_list()] if feature.box is not None else []
            boxes += [[c.x, c.y, c.x, c.y] for c in feature.clicks]
            for x1, y1, x2, y2 in boxes:
                if not all(math.isfinite(v) for v in (x1, y1, x2, y2)) or not (
                    -BOX_REACH * width <= min(x1, x2) and max(x1, x2) <= (BOX_REACH + 1) * width
                    and -BOX_REACH * height <= min(y1, y2) and max(y1, y2) <= (BOX_REACH + 1) * height
                ):
                    raise FormatError(
                        f"track {track.track_id}, frame {feature.frame_idx}: box or click ({x1:g}, {y1:g}, {x2:g}, "
                        f"{y2:g}) lies far outside the {width}x{height} frame"
                    )
