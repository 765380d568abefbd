"""VIAME CSV, as DIVE reads and writes it: one row per present feature with its integer box (DIVE's bounds),
its confidence pairs in descending order, `(atr)`/`(trk-atr)` attributes with booleans as true/false, and the mask
as one `(poly) x1 y1 ...` column per 8-connected part (largest first) and one `(hole)` column per hole. Column 2 is
the image file name for an image sequence and DIVE's HH:MM:SS.ffffff timestamp for a video.

Contours are traced through boundary pixel centres by OpenCV (cv2.findContours, CHAIN_APPROX_SIMPLE), parts and holes
found by cv2.connectedComponentsWithStats. OpenCV rather than scikit-image's measure.find_contours: find_contours
gives sub-pixel iso-lines between pixel centres, which would move every polygon off the pixel grid that DIVE and
our reader's fill expect, and it pulls in scipy, networkx, imageio and tifffile; opencv-python-headless (Apache-2.0,
a ~61 MB wheel) depends on numpy alone and gives the same polygons the hand-written tracer it replaces gave. The
reader keeps boxes, labels, attributes and fps, and reports polygons
and keypoints, which it cannot turn back into the app's data.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from pathlib import Path

import numpy as np

from sam2_tracking.annotation_set import AnnotationSet, Feature, FormatError, TrackData
from sam2_tracking.engine.masks import mask_to_box, mask_to_rle
from sam2_tracking.formats.parsing import Dropped, parse_int_key

HEADER = [
    "# 1: Detection or Track-id", "2: Video or Image Identifier", "3: Unique Frame Identifier",
    "4-7: Img-bbox(TL_x", "TL_y", "BR_x", "BR_y)", "8: Detection or Length Confidence",
    "9: Target Length (0 or -1 if invalid)", "10-11+: Repeated Species", "Confidence Pairs or Attributes",
]

def _parts(mask: np.ndarray, connectivity: int = 8) -> list[tuple[int, int, np.ndarray]]:
    """The connected parts of a bool mask, largest first (equal areas in the raster order of their first pixel),
    each as (x0, y0, bool mask of its box). connectivity 8 for objects, 4 for holes (the complement of an
    8-connected object is 4-connected)."""
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=connectivity)
    parts = []
    for label in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[label])
        part = labels[y : y + h, x : x + w] == label  # only the part's box: a noisy mask has many parts
        row, col = divmod(int(np.argmax(part)), w)  # the part's first pixel in raster order
        parts.append((-area, y + row, x + col, x, y, part))
    parts.sort(key=lambda item: item[:3])
    return [(x, y, part) for *_key, x, y, part in parts]


def _trace(part: np.ndarray) -> list[tuple[int, int]]:
    """The outer contour of a bool mask holding one 8-connected part: boundary pixel centres, corners only,
    starting at the part's first pixel in raster order and going clockwise in image coordinates (y down), the
    order this writer has always used (OpenCV's own order is anticlockwise)."""
    import cv2

    contours, _ = cv2.findContours(part.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    points = [(int(x), int(y)) for x, y in contours[0][:, 0]]
    return points[:1] + points[:0:-1]


def mask_polygons(mask: np.ndarray) -> tuple[list[list[tuple[int, int]]], list[list[tuple[int, int]]]]:
    """(outer contours of every 8-connected part, largest first; contours of every hole), in pixel coordinates.

    A hole is a 4-connected part of the background that does not reach the edge of the mask's box; its contour runs
    through the hole's own boundary pixels (the reader clears the outline with the hole), not the object's."""
    mask = np.asarray(mask, dtype=bool)
    box = mask_to_box(mask)
    if box is None:
        return [], []
    x0, y0, x1, y1 = int(box.x1), int(box.y1), int(box.x2), int(box.y2)
    crop = np.pad(mask[y0:y1, x0:x1], 1)  # a background ring: the outside is one 4-connected part
    outer = [_shift(_trace(part), x0 - 1 + px, y0 - 1 + py) for px, py, part in _parts(crop)]
    holes = []
    for px, py, part in _parts(~crop, connectivity=4):
        if px == 0 and py == 0 and part[0, 0]:
            continue  # the outside
        holes.append(_shift(_trace(part), x0 - 1 + px, y0 - 1 + py))
    return outer, holes


def _shift(points: list[tuple[int, int]], dx: int, dy: int) -> list[tuple[int, int]]:
    return [(x + dx, y + dy) for x, y in points]


def viame_timestamp(fps: float, frame_idx: int) -> str:
    """Column 2 for a video, as DIVE writes it (dive_utils.serializers.viame.format_timestamp): HH:MM:SS.ffffff."""
    import datetime

    moment = datetime.datetime.fromtimestamp(frame_idx / fps, tz=datetime.UTC)  # DIVE's own rounding
    return moment.strftime("%H:%M:%S.%f")


def _value(value) -> str:
    """Attribute values as DIVE writes them: booleans `true`/`false`."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def _points(points: list[tuple[int, int]]) -> str:
    return " ".join(f"{x} {y}" for x, y in points)


def annotations_to_viame_csv(annotations: AnnotationSet, video_name: str | None = None) -> str:
    from sam2_tracking.formats.dive import dive_bounds

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER)
    if annotations.fps:
        writer.writerow(["# metadata", f"fps: {annotations.fps:g}"])
    for track in annotations.tracks:
        # DIVE sorts the pairs by confidence and takes the first as the label: write them in that order.
        pairs = sorted(track.confidence_pairs or (("object", 1.0),), key=lambda pair: -pair[1])
        first_row = True
        for feature in track.present_features:
            bounds = dive_bounds(feature, track.masks_elsewhere.get(feature.frame_idx))
            if bounds is None:
                continue
            frame = feature.frame_idx
            if frame < len(annotations.frame_names) and annotations.frame_names[frame]:
                where = annotations.frame_names[frame]  # DIVE matches image sequences by file name
            elif annotations.fps:
                where = viame_timestamp(annotations.fps, frame)
            else:
                where = ""
            row = [track.track_id, where, frame, *bounds, f"{pairs[0][1]:g}", -1]
            for label, score in pairs:
                row += [label, f"{score:g}"]
            row += [f"(atr) {key} {_value(value)}" for key, value in feature.attributes.items()]
            if first_row:
                row += [f"(trk-atr) {key} {_value(value)}" for key, value in track.attributes.items()]
                first_row = False
            if feature.rle is not None:
                outer, holes = mask_polygons(feature.mask)
                row += [f"(poly) {_points(points)}" for points in outer]
                row += [f"(hole) {_points(points)}" for points in holes]
            writer.writerow(row)
    return buffer.getvalue()


def write_viame_csv(annotations: AnnotationSet, path: str | os.PathLike, video_name: str | None = None) -> Path:
    path = Path(path)
    path.write_text(annotations_to_viame_csv(annotations, video_name), encoding="utf-8")
    return path


_TIMESTAMP = re.compile(r"^\d{2}:\d{2}:\d{2}\.\d{6}$")


def _typed(value: str):
    """An attribute value as DIVE reads it back: true/false, a number, else the text."""
    if value in ("true", "false"):
        return value == "true"
    if re.fullmatch(r"-?\d{1,18}", value):
        return int(value)  # written back as it was read ("3", not DIVE's "3.0")
    try:
        number = float(value)
    except ValueError:
        return value
    return number if math.isfinite(number) and str(number) == value else value


def viame_csv_to_annotations(text: str, frame_size: tuple[int, int] | None = None) -> AnnotationSet:
    """Read VIAME CSV: boxes, labels and confidences, attributes, fps, and masks from the (poly)/(hole) columns
    when the frame size is known (filled with their outlines, which gives back the mask the writer traced).
    Polygons without a frame size and keypoints are reported, not kept."""
    from sam2_tracking.formats.dive import box_from_bounds

    dropped = Dropped()
    fps = None
    tracks: dict[int, dict] = {}
    names: dict[int, str] = {}
    for line_no, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not row[0].strip():
            continue
        if row[0].startswith("#"):
            for cell in row[1:]:
                key, _, value = cell.partition(":")
                if key.strip() == "fps":
                    try:
                        fps = float(value.strip().strip('"'))
                    except ValueError:
                        raise FormatError(f"line {line_no}: fps {value.strip()[:20]!r} is not a number") from None
            continue
        where = f"line {line_no}"
        if len(row) < 9:
            raise FormatError(f"{where}: a VIAME row needs at least 9 columns, got {len(row)}")
        try:
            track_id = parse_int_key(row[0].strip(), f"{where} track id")
            frame = parse_int_key(row[2].strip(), f"{where} frame")
            bounds = [float(v) for v in row[3:7]]
            confidence = float(row[7])
        except ValueError as exc:
            raise FormatError(f"{where}: {exc}") from None
        if not all(math.isfinite(v) for v in [*bounds, confidence]):
            raise FormatError(f"{where}: box and confidence must be finite numbers")
        pairs, attributes, track_attributes, polygons = [], {}, {}, []
        column = 9
        while column + 1 < len(row) and row[column] and not row[column].startswith("("):
            try:
                pairs.append((row[column], float(row[column + 1])))
            except ValueError:
                raise FormatError(f"{where}: confidence of {row[column][:40]!r} is not a number") from None
            column += 2
        for cell in row[column:]:
            kind, _, rest = cell.partition(" ")
            if kind in ("(atr)", "(trk-atr)"):
                key, _, value = rest.partition(" ")
                (attributes if kind == "(atr)" else track_attributes)[key] = _typed(value)
            elif kind in ("(poly)", "(hole)"):
                if frame_size is None:
                    dropped.add("polygons (no frame size to fill them in: give the video)", track_id)
                else:
                    polygons.append((kind == "(poly)", _polygon(rest, frame_size, where)))
            elif kind == "(kp)":
                dropped.add("keypoints (the app has no place for them)", track_id)
            elif cell.strip():
                dropped.add(f"unknown columns such as {cell[:20]!r}", track_id)
        if row[1] and not _TIMESTAMP.match(row[1]):
            names[frame] = row[1]
        if bounds[2] < bounds[0] or bounds[3] < bounds[1]:
            raise FormatError(f"{where}: box {bounds} is inverted (x2 left of x1 or y2 above y1)")
        # A one-pixel-wide mask's inclusive bounds have x1 == x2: give such a box its pixel.
        box = box_from_bounds(bounds, has_mask=False) or box_from_bounds(bounds, has_mask=True)
        track = tracks.setdefault(track_id, {"pairs": pairs or [("object", confidence)], "features": {},
                                             "attributes": {}})
        track["attributes"].update(track_attributes)
        if frame in track["features"]:
            raise FormatError(f"{where}: track {track_id} has two rows for frame {frame}")
        rle = None
        if polygons:
            rle = mask_to_rle(_fill(polygons, frame_size))
            box = box_from_bounds(bounds, has_mask=True)  # bounds of a mask are inclusive
        track["features"][frame] = Feature(track_id=track_id, frame_idx=frame, box=box, rle=rle, keyframe=True,
                                           attributes=attributes)
    out = [
        TrackData(track_id, tuple(t["pairs"]), tuple(t["features"][f] for f in sorted(t["features"])),
                  t["attributes"])
        for track_id, t in sorted(tracks.items())
    ]
    frame_names = tuple(names.get(i, "") for i in range(max(names) + 1)) if names else ()
    height, width = frame_size if frame_size else (None, None)
    return AnnotationSet(tuple(out), width=width, height=height, fps=fps, frame_names=frame_names,
                         warnings=dropped.warnings())


def _polygon(text: str, frame_size: tuple[int, int], where: str) -> list[tuple[float, float]]:
    try:
        values = [float(v) for v in text.split()]
    except ValueError:
        raise FormatError(f"{where}: a polygon holds something that is not a number") from None
    height, width = frame_size
    if len(values) < 2 or len(values) % 2 or not all(
        math.isfinite(v) and -4 * max(width, height) <= v <= 5 * max(width, height) for v in values
    ):
        raise FormatError(f"{where}: a polygon needs x y pairs of finite numbers near the {width}x{height} frame")
    return list(zip(values[::2], values[1::2], strict=True))


def _fill(polygons: list[tuple[bool, list]], frame_size: tuple[int, int]) -> np.ndarray:
    """Parts filled, then holes cleared, each with its outline: the writer traces boundary pixel centres, so the
    outline pixels belong to the part (or to the hole)."""
    from PIL import Image, ImageDraw

    height, width = frame_size
    image = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(image)
    for positive in (True, False):
        for part, points in polygons:
            if part == positive:
                value = 255 if positive else 0
                if len(points) > 2:
                    draw.polygon(points, fill=value, outline=value)
                else:
                    draw.line(points + points[:1], fill=value)
    return np.asarray(image) > 127


def load_viame_csv(path: str | os.PathLike, frame_size: tuple[int, int] | None = None) -> AnnotationSet:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"{path} is not UTF-8 text: {exc}") from exc
    return viame_csv_to_annotations(text, frame_size)
