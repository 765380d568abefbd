"""VIAME CSV, as DIVE reads and writes it: one row per present feature with its integer box (DIVE's bounds),
its confidence pairs in descending order, `(atr)`/`(trk-atr)` attributes with booleans as true/false, and the mask
as one `(poly) x1 y1 ...` column per 8-connected part (largest first) and one `(hole)` column per hole. Column 2 is
the image file name for an image sequence and DIVE's HH:MM:SS.ffffff timestamp for a video.

Contours are traced through boundary pixel coordinates (as OpenCV's findContours with CHAIN_APPROX_SIMPLE gives,
without taking OpenCV as a dependency). The reader keeps boxes, labels, attributes and fps, and reports polygons
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

from sam2_tracking.engine.masks import mask_to_box, mask_to_rle
from sam2_tracking.formats.model import AnnotationSet, Dropped, FormatError, TrackData, parse_int_key

HEADER = [
    "# 1: Detection or Track-id", "2: Video or Image Identifier", "3: Unique Frame Identifier",
    "4-7: Img-bbox(TL_x", "TL_y", "BR_x", "BR_y)", "8: Detection or Length Confidence",
    "9: Target Length (0 or -1 if invalid)", "10-11+: Repeated Species", "Confidence Pairs or Attributes",
]

# Clockwise in image coordinates (y grows down), starting west.
_DIRECTIONS = ((-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1), (0, 1), (-1, 1))


def components(mask: np.ndarray, connectivity: int = 8) -> list[tuple[int, int, np.ndarray]]:
    """The connected parts of a bool mask, largest first, each as (x0, y0, bool mask of its box): union-find over
    row runs,
    so the cost follows the number of runs, not of pixels. connectivity 8 for objects, 4 for holes (the
    complement of an 8-connected object is 4-connected)."""
    padded = np.zeros((mask.shape[0], mask.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    steps = np.diff(padded, axis=1)
    starts = np.argwhere(steps == 1)  # (row, first col), row-major order
    ends = np.argwhere(steps == -1)[:, 1]  # matching exclusive end cols
    if starts.size == 0:
        return []
    rows, firsts = starts[:, 0].tolist(), starts[:, 1].tolist()
    lasts = ends.tolist()
    parent = list(range(len(rows)))
    reach = 0 if connectivity == 8 else 1  # 8-connected runs also touch diagonally (ends are exclusive)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    row_start = {}
    for i, row in enumerate(rows):
        row_start.setdefault(row, i)
    for i, row in enumerate(rows):
        j = row_start.get(row - 1)
        if j is None:
            continue
        while j < len(rows) and rows[j] == row - 1:
            if firsts[j] <= lasts[i] - reach and firsts[i] <= lasts[j] - reach:
                a, b = find(i), find(j)
                if a != b:
                    parent[a] = b
            j += 1
    areas: dict[int, int] = {}
    for i in range(len(rows)):
        root = find(i)
        areas[root] = areas.get(root, 0) + lasts[i] - firsts[i]
    runs: dict[int, list[int]] = {}
    for i in range(len(rows)):
        runs.setdefault(find(i), []).append(i)
    parts = []
    for root in sorted(areas, key=lambda r: (-areas[r], r)):
        members = runs[root]
        y0, y1 = rows[members[0]], rows[members[-1]] + 1
        x0, x1 = min(firsts[i] for i in members), max(lasts[i] for i in members)
        part = np.zeros((y1 - y0, x1 - x0), dtype=bool)  # only the part's box: a noisy mask has many parts
        for i in members:
            part[rows[i] - y0, firsts[i] - x0 : lasts[i] - x0] = True
        parts.append((x0, y0, part))
    return parts


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected part of a bool mask (all False if empty)."""
    out = np.zeros_like(mask, dtype=bool)
    parts = components(mask)
    if parts:
        x0, y0, part = parts[0]
        out[y0 : y0 + part.shape[0], x0 : x0 + part.shape[1]] = part
    return out


def mask_polygons(mask: np.ndarray) -> tuple[list[list[tuple[int, int]]], list[list[tuple[int, int]]]]:
    """(outer contours of every 8-connected part, largest first; contours of every hole), in pixel coordinates.

    A hole is a 4-connected part of the background that does not reach the edge of the mask's box."""
    mask = np.asarray(mask, dtype=bool)
    box = mask_to_box(mask)
    if box is None:
        return [], []
    x0, y0, x1, y1 = int(box.x1), int(box.y1), int(box.x2), int(box.y2)
    crop = np.pad(mask[y0:y1, x0:x1], 1)  # a background ring: the outside is one 4-connected part
    outer = [_shift(mask_outer_contour(part), x0 - 1 + px, y0 - 1 + py) for px, py, part in components(crop)]
    holes = []
    for px, py, part in components(~crop, connectivity=4):
        if px == 0 and py == 0 and part[0, 0]:
            continue  # the outside
        holes.append(_shift(mask_outer_contour(part), x0 - 1 + px, y0 - 1 + py))
    return [c for c in outer if c], [c for c in holes if c]


def _shift(points: list[tuple[int, int]], dx: int, dy: int) -> list[tuple[int, int]]:
    return [(x + dx, y + dy) for x, y in points]


def mask_outer_contour(mask: np.ndarray) -> list[tuple[int, int]]:
    """Outer boundary (x, y) pixel coordinates of the mask's largest part in tracing order, corners only; [] if
    empty."""
    mask = np.asarray(mask, dtype=bool)
    box = mask_to_box(mask)
    if box is None:
        return []
    # Work on the mask's bounding box only: a small object in a 4K frame costs what the object costs.
    x0, y0 = int(box.x1), int(box.y1)
    part = largest_component(mask[y0 : int(box.y2), x0 : int(box.x2)])
    ys, xs = np.nonzero(part)
    if ys.size == 0:
        return []
    padded = np.pad(part, 1)
    start = (int(xs[0]) + 1, int(ys[0]) + 1)  # first pixel in raster order: its west neighbour is background
    contour = [start]
    point, back = start, 0
    state0 = None
    for _ in range(4 * int(ys.size) + 16):
        for step in range(1, 9):
            direction = (back + step) % 8
            dx, dy = _DIRECTIONS[direction]
            if padded[point[1] + dy, point[0] + dx]:
                break
        else:
            break  # a single isolated pixel
        previous = (back + step - 1) % 8
        pdx, pdy = _DIRECTIONS[previous]
        nxt = (point[0] + dx, point[1] + dy)
        bx, by = point[0] + pdx - nxt[0], point[1] + pdy - nxt[1]
        back = _DIRECTIONS.index((bx, by))
        if state0 is None:
            state0 = (nxt, back)
        elif (nxt, back) == state0:
            break  # entered the second point the same way again: the loop is closed
        point = nxt
        contour.append(point)
    if len(contour) > 1 and contour[-1] == start:
        contour.pop()
    return _corners([(x - 1 + x0, y - 1 + y0) for x, y in contour])


def _corners(points: list[tuple[int, int]]) -> list[tuple[int, int]]:
    if len(points) < 3:
        return points
    out = []
    n = len(points)
    for i, (x, y) in enumerate(points):
        px, py = points[i - 1]
        nx, ny = points[(i + 1) % n]
        if (x - px, y - py) != (nx - x, ny - y):
            out.append((x, y))
    return out or points[:1]


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
    from sam2_tracking.annotations import Feature
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
