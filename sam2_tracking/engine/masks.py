"""Mask helpers: COCO compressed RLE (pycocotools), boxes from masks, and overlay drawing.

RLE dicts are {"size": [height, width], "counts": "<compressed string>"}: JSON-ready, as in COCO and the DIVE mask zip.
"""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils

from sam2_tracking.types import Box

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


# Bounds that keep every sum below in int64 and every run inside pycocotools' 32-bit counts: 7 chunks of 5 bits
# hold any run of a frame under 2**31 pixels, and 2**27 characters is more than any such frame's RLE needs.
_MAX_CHUNKS_PER_COUNT = 7
_MAX_RLE_CHARS = 2**27
_MAX_RLE_PIXELS = 2**31 - 1


def rle_string_counts(counts: str | bytes) -> np.ndarray:
    """Run lengths of a COCO compressed RLE string, decoded in numpy (pycocotools' rleFrString, vectorised).

    Raises ValueError on characters outside the alphabet or an unterminated run. Lets untrusted RLE be checked
    before pycocotools decodes it: its decoder writes runs without bounds checks.
    """
    if len(counts) > _MAX_RLE_CHARS:
        raise ValueError(f"RLE counts string is {len(counts)} characters long, more than any frame needs")
    data = np.frombuffer(counts.encode("ascii", "replace") if isinstance(counts, str) else bytes(counts),
                         dtype=np.uint8).astype(np.int64) - 48
    if data.size == 0:
        return np.zeros(0, dtype=np.int64)
    if data.min() < 0 or data.max() > 63:
        raise ValueError("RLE counts string holds characters outside the COCO RLE alphabet")
    more = (data & 0x20) != 0
    if more[-1]:
        raise ValueError("RLE counts string ends in the middle of a run")
    ends = np.flatnonzero(~more)
    starts = np.concatenate(([0], ends[:-1] + 1))
    chunk_idx = np.arange(data.size) - np.repeat(starts, ends - starts + 1)
    if chunk_idx.max() >= _MAX_CHUNKS_PER_COUNT:
        raise ValueError("RLE counts string holds a run too long to be a pixel count")
    values = np.zeros(ends.size, dtype=np.int64)
    owner = np.repeat(np.arange(ends.size), ends - starts + 1)
    np.add.at(values, owner, (data & 0x1F) << (5 * chunk_idx))
    negative = (data[ends] & 0x10) != 0
    values[negative] -= np.int64(1) << (5 * (chunk_idx[ends][negative] + 1))
    # Runs from the fourth on are stored as the difference to the run two places before.
    values[3::2] = np.cumsum(values[3::2]) + (values[1] if values.size > 1 else 0)
    values[4::2] = np.cumsum(values[4::2]) + (values[2] if values.size > 2 else 0)
    return values


def check_rle(rle, expected_size: tuple[int, int] | None = None, max_pixels: int | None = None) -> list[int]:
    """Validate untrusted RLE without allocating the mask; return its [height, width].

    Checks the declared size against the video (expected_size, (height, width)) and max_pixels, and that the run
    lengths are non-negative and add up to exactly height * width. ValueError says what is wrong.
    """
    try:
        size = [int(rle["size"][0]), int(rle["size"][1])]
        counts = rle["counts"]
    except (KeyError, TypeError, IndexError, ValueError, OverflowError) as exc:
        raise ValueError(f"RLE must have 'size' [height, width] and 'counts', got {str(rle)[:80]}") from exc
    if len(rle["size"]) != 2 or size[0] <= 0 or size[1] <= 0:
        raise ValueError(f"RLE size must be two positive integers [height, width], got {str(rle['size'])[:80]}")
    if expected_size is not None and tuple(size) != tuple(expected_size):
        raise ValueError(
            f"RLE size is {size[1]}x{size[0]} but the video is {expected_size[1]}x{expected_size[0]}"
        )
    max_pixels = _MAX_RLE_PIXELS if max_pixels is None else min(max_pixels, _MAX_RLE_PIXELS)
    if size[0] * size[1] > max_pixels:
        raise ValueError(f"RLE size {size[1]}x{size[0]} is more than the {max_pixels} pixels a frame may have")
    if isinstance(counts, list):
        if len(counts) > size[0] * size[1] + 1 or not all(
            isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= size[0] * size[1] for c in counts
        ):
            raise ValueError("RLE counts must be non-negative integers no larger than the frame")
        total = sum(counts)
    elif isinstance(counts, (str, bytes)):
        runs = rle_string_counts(counts)
        if runs.size and runs.min() < 0:
            raise ValueError("RLE counts string decodes to a negative run length")
        total = int(runs.sum())
    else:
        raise ValueError(f"RLE counts must be a string or a list of integers, got {type(counts).__name__}")
    if total != size[0] * size[1]:
        raise ValueError(f"RLE counts add up to {total}, expected {size[0] * size[1]} for size {size}")
    return size


def rle_to_mask(rle: dict, expected_size: tuple[int, int] | None = None, max_pixels: int | None = None) -> np.ndarray:
    """Decode COCO RLE (compressed string/bytes counts, or uncompressed list counts) to a bool (height, width) mask.

    The RLE is checked first (check_rle): pycocotools writes past its buffer, or dies on a null pointer, when the
    runs or the declared size are wrong, so nothing unchecked reaches it.
    """
    size = check_rle(rle, expected_size, max_pixels)
    counts = rle["counts"]
    if isinstance(counts, list):
        encoded = mask_utils.frPyObjects({"size": size, "counts": counts}, size[0], size[1])
    else:
        encoded = {"size": size, "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    try:
        return mask_utils.decode(encoded).astype(bool)
    except Exception as exc:  # pycocotools raises bare exceptions on corrupt strings
        raise ValueError(f"RLE counts could not be decoded for size {size}: {exc}") from exc


def rle_to_box(rle: dict) -> Box | None:
    """Tight box of an RLE mask without decoding it (x2/y2 exclusive, like mask_to_box); None if empty."""
    x, y, w, h = (float(v) for v in mask_utils.toBbox(_encoded(rle)))
    if w <= 0 or h <= 0:
        return None
    return Box(x, y, x + w, y + h)


def _encoded(rle: dict) -> dict:
    counts = rle["counts"]
    return {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


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
    """Return a copy of an RGB uint8 frame with each (track_id, mask, box) filled, outlined and boxed in its colour.

    Drawn in uint8 within each mask's bounding box: a float32 copy of the frame cost 4x the frame's memory per call
    (a preview, an overlay video frame, each redraw in the UI). The blend goes through a 256-entry table computed
    with the same float32 arithmetic as before, so pixels under one mask are unchanged; where masks overlap, the
    second blend now starts from the rounded first one (at most one level of difference).
    """
    result = frame.copy()
    outlines = []
    for track_id, mask, _box in masks:
        if mask is None:
            continue
        rows = np.flatnonzero(mask.any(axis=1))
        if rows.size == 0:
            continue
        cols = np.flatnonzero(mask.any(axis=0))
        region = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        inside = mask[region]
        patch = result[region]  # a view: writes land in result
        table = blend_table(track_colour(track_id), alpha)
        for channel_idx in range(3):
            channel = patch[..., channel_idx]
            channel[inside] = table[channel_idx][channel[inside]]
        outlines.append((region, mask_outline(inside), np.array(track_colour(track_id), dtype=np.uint8)))
    for region, outline, colour in outlines:
        result[region][outline] = colour
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


def blend_table(colour: tuple[int, int, int], alpha: float) -> np.ndarray:
    """(3, 256) uint8: table[c][v] is level v of channel c blended with the colour, as float32 then truncated."""
    levels = np.arange(256, dtype=np.float32)
    blended = levels[None, :] * np.float32(1.0 - alpha) + np.array(colour, dtype=np.float32)[:, None] * np.float32(alpha)
    return blended.astype(np.uint8)


def resize_for_preview(frame: np.ndarray, max_width: int = 640) -> np.ndarray:
    """Shrink an RGB frame to at most max_width pixels wide (keeping aspect); smaller frames are returned as they are."""
    height, width = frame.shape[:2]
    if width <= max_width:
        return frame
    from PIL import Image

    new_height = max(1, round(height * max_width / width))
    return np.asarray(Image.fromarray(frame).resize((max_width, new_height), Image.BILINEAR))
