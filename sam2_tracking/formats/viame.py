"""VIAME CSV (export only): one row per present feature with its box, label and confidence, and the mask's outer
contour as a `(poly) x1 y1 x2 y2 ...` column, as VIAME and DIVE read it.

The contour is the outer boundary of the mask's largest 8-connected part, traced through boundary pixel
coordinates (as OpenCV's findContours with CHAIN_APPROX_SIMPLE gives, without taking OpenCV as a dependency).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

from ..masks import mask_to_box
from .model import AnnotationSet

HEADER = [
    "# 1: Detection or Track-id", "2: Video or Image Identifier", "3: Unique Frame Identifier",
    "4-7: Img-bbox(TL_x", "TL_y", "BR_x", "BR_y)", "8: Detection or Length Confidence",
    "9: Target Length (0 or -1 if invalid)", "10-11+: Repeated Species", "Confidence Pairs or Attributes",
]

# Clockwise in image coordinates (y grows down), starting west.
_DIRECTIONS = ((-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1), (0, 1), (-1, 1))


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected part of a bool mask: union-find over row runs, so the cost follows the number of
    runs, not of pixels."""
    padded = np.zeros((mask.shape[0], mask.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    steps = np.diff(padded, axis=1)
    starts = np.argwhere(steps == 1)  # (row, first col), row-major order
    ends = np.argwhere(steps == -1)[:, 1]  # matching exclusive end cols
    if starts.size == 0:
        return np.zeros_like(mask, dtype=bool)
    rows, firsts = starts[:, 0].tolist(), starts[:, 1].tolist()
    lasts = ends.tolist()
    parent = list(range(len(rows)))

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
            # 8-connected: runs touch if they overlap or meet diagonally (ends are exclusive).
            if firsts[j] <= lasts[i] and firsts[i] <= lasts[j]:
                a, b = find(i), find(j)
                if a != b:
                    parent[a] = b
            j += 1
    areas: dict[int, int] = {}
    for i in range(len(rows)):
        root = find(i)
        areas[root] = areas.get(root, 0) + lasts[i] - firsts[i]
    best = max(areas, key=areas.get)
    part = np.zeros_like(mask, dtype=bool)
    for i in range(len(rows)):
        if find(i) == best:
            part[rows[i], firsts[i] : lasts[i]] = True
    return part


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


def annotations_to_viame_csv(annotations: AnnotationSet, video_name: str | None = None) -> str:
    name = video_name or annotations.name or "video"
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER)
    if annotations.fps:
        writer.writerow(["# metadata", f"fps: {annotations.fps:g}"])
    for track in annotations.tracks:
        pairs = track.confidence_pairs or (("object", 1.0),)
        first_row = True
        for feature in track.present_features:
            box = feature.box if feature.box is not None else (mask_to_box(feature.mask) if feature.rle else None)
            if box is None:
                continue  # clicks alone give no box to write
            confidence = max(score for _label, score in pairs)
            row = [track.track_id, f"{name}/{feature.frame_idx:06d}.jpg", feature.frame_idx,
                   f"{box.x1:g}", f"{box.y1:g}", f"{box.x2:g}", f"{box.y2:g}", f"{confidence:g}", -1]
            for label, score in pairs:
                row += [label, f"{score:g}"]
            if feature.rle is not None:
                contour = mask_outer_contour(feature.mask)
                if contour:
                    row.append("(poly) " + " ".join(f"{x} {y}" for x, y in contour))
            if first_row:
                row += [f"(trk-atr) {key} {value}" for key, value in track.attributes.items()]
                first_row = False
            row += [f"(atr) {key} {value}" for key, value in feature.attributes.items()]
            writer.writerow(row)
    return buffer.getvalue()


def write_viame_csv(annotations: AnnotationSet, path: str | os.PathLike, video_name: str | None = None) -> Path:
    path = Path(path)
    path.write_text(annotations_to_viame_csv(annotations, video_name), encoding="utf-8")
    return path
