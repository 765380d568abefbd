"""Mask helpers: COCO compressed RLE (pycocotools), boxes from masks, and overlay drawing.

RLE dicts are {"size": [height, width], "counts": "<compressed string>"}: JSON-ready, as in COCO and the DIVE mask zip.
"""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils

from .types import Box

# Distinct, readable colours for tracks (RGB); a track's colour is PALETTE[track_id % len(PALETTE)].
PALETTE = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
)


def track_colour(track_id: int) -> tuple[int, int, int]:
    return PALETTE[int(track_id) % len(PALETTE)]


def mask_to_rle(mask: np.ndarray) -> dict:
    """Encode a (height, width) bool/uint8 mask as COCO compressed RLE with a str `counts`."""
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (height, width), got shape {mask.shape}")
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8, copy=False)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def rle_to_mask(rle: dict) -> np.ndarray:
    """Decode COCO RLE (compressed string/bytes counts, or uncompressed list counts) to a bool (height, width) mask."""
    try:
        size = [int(rle["size"][0]), int(rle["size"][1])]
        counts = rle["counts"]
    except (KeyError, TypeError, IndexError, ValueError) as exc:
        raise ValueError(f"RLE must have 'size' [height, width] and 'counts', got {str(rle)[:80]}") from exc
    if size[0] <= 0 or size[1] <= 0:
        raise ValueError(f"RLE size must be positive, got {size}")
    if isinstance(counts, list):
        if sum(int(c) for c in counts) != size[0] * size[1]:
            raise ValueError(f"RLE counts add up to {sum(counts)}, expected {size[0] * size[1]} for size {size}")
        encoded = mask_utils.frPyObjects({"size": size, "counts": counts}, size[0], size[1])
    elif isinstance(counts, (str, bytes)):
        encoded = {"size": size, "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    else:
        raise ValueError(f"RLE counts must be a string or a list of integers, got {type(counts).__name__}")
    try:
        return mask_utils.decode(encoded).astype(bool)
    except Exception as exc:  # pycocotools raises bare exceptions on corrupt strings
        raise ValueError(f"RLE counts could not be decoded for size {size}: {exc}") from exc


def rle_area(rle: dict) -> int:
    """Pixel count of an RLE mask, as pycocotools computes it."""
    return int(mask_utils.area({"size": rle["size"], "counts": rle["counts"].encode("ascii")}))


def mask_to_box(mask: np.ndarray) -> Box | None:
    """Tight box around the mask's pixels (x2/y2 exclusive, so a 1-pixel mask has width 1); None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return Box(float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))


def mask_outline(mask: np.ndarray) -> np.ndarray:
    """Bool array marking the mask's border pixels (inside the mask, next to a pixel outside it)."""
    padded = np.pad(mask, 1, mode="constant", constant_values=False)
    interior = (
        padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:] & padded[1:-1, 1:-1]
    )
    return mask & ~interior


def draw_overlay(
    frame: np.ndarray,
    masks: list[tuple[int, np.ndarray | None, Box | None]],
    alpha: float = 0.45,
    draw_boxes: bool = True,
) -> np.ndarray:
    """Return a copy of an RGB uint8 frame with each (track_id, mask, box) filled, outlined and boxed in its colour."""
    out = frame.astype(np.float32, copy=True)
    outline_pixels = []
    for track_id, mask, _box in masks:
        colour = np.array(track_colour(track_id), dtype=np.float32)
        if mask is not None:
            out[mask] = out[mask] * (1.0 - alpha) + colour * alpha
            outline_pixels.append((mask_outline(mask), colour))
    result = out.astype(np.uint8)
    for outline, colour in outline_pixels:
        result[outline] = colour.astype(np.uint8)
    if draw_boxes:
        height, width = result.shape[:2]
        for track_id, _mask, box in masks:
            if box is None:
                continue
            colour = np.array(track_colour(track_id), dtype=np.uint8)
            x1, y1 = max(int(box.x1), 0), max(int(box.y1), 0)
            x2, y2 = min(int(np.ceil(box.x2)) - 1, width - 1), min(int(np.ceil(box.y2)) - 1, height - 1)
            if x2 < x1 or y2 < y1:
                continue
            result[y1, x1 : x2 + 1] = colour
            result[y2, x1 : x2 + 1] = colour
            result[y1 : y2 + 1, x1] = colour
            result[y1 : y2 + 1, x2] = colour
    return result


def resize_for_preview(frame: np.ndarray, max_width: int = 640) -> np.ndarray:
    """Shrink an RGB frame to at most max_width pixels wide (keeping aspect); smaller frames are returned as they are."""
    height, width = frame.shape[:2]
    if width <= max_width:
        return frame
    from PIL import Image

    new_height = max(1, round(height * max_width / width))
    return np.asarray(Image.fromarray(frame).resize((max_width, new_height), Image.BILINEAR))
