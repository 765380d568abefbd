"""draw_overlay works in uint8: the same pixels as the float32 drawing it replaced, for a fraction of the memory."""

from __future__ import annotations

import tracemalloc

import numpy as np

from sam2_tracking.engine.masks import draw_overlay, mask_outline, track_colour
from sam2_tracking.types import Box


def float32_overlay(frame, masks, alpha=0.45):
    """The drawing as it was before (fills and outlines only), kept here as the reference to compare with."""
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
    return result


def _blob(height, width, cy, cx, radius):
    yy, xx = np.mgrid[:height, :width]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2


def test_same_pixels_as_the_float32_drawing_where_masks_do_not_overlap():
    rng = np.random.default_rng(7)
    frame = rng.integers(0, 256, (90, 160, 3), dtype=np.uint8)  # every level appears under the masks
    masks = [(1, _blob(90, 160, 30, 40, 25), None), (2, _blob(90, 160, 60, 120, 20), None),
             (5, np.zeros((90, 160), bool), None), (3, None, None)]
    masks[0][1][0, :] = True  # a mask touching the frame's edge keeps its outline there
    before = frame.copy()
    got = draw_overlay(frame, masks, draw_boxes=False)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, float32_overlay(frame, masks))
    np.testing.assert_array_equal(frame, before)  # drawn on a copy


def test_overlapping_masks_differ_by_at_most_one_level():
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    masks = [(1, _blob(64, 64, 30, 30, 20), None), (2, _blob(64, 64, 36, 36, 20), None)]
    got = draw_overlay(frame, masks, draw_boxes=False).astype(int)
    assert np.abs(got - float32_overlay(frame, masks).astype(int)).max() <= 1


def test_boxes_are_drawn_and_a_read_only_frame_is_not_changed():
    frame = np.full((40, 50, 3), 100, dtype=np.uint8)
    frame.flags.writeable = False  # frames from the video cache are read-only
    got = draw_overlay(frame, [(4, None, Box(5, 6, 20, 30))])
    assert tuple(got[6, 10]) == track_colour(4) and tuple(got[29, 19]) == track_colour(4)
    assert tuple(got[15, 12]) == (100, 100, 100)
    assert (frame == 100).all()


def test_drawing_on_a_4k_frame_allocates_about_one_frame_not_five():
    frame = np.zeros((2160, 3840, 3), dtype=np.uint8)
    mask = np.zeros((2160, 3840), dtype=bool)
    mask[500:1500, 800:2800] = True  # a large object
    tracemalloc.start()
    try:
        draw_overlay(frame, [(1, mask, Box(800, 500, 2800, 1500))])
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The float32 version peaked above 5 frames (a float32 copy is 4 frames, plus the uint8 result).
    assert peak < 2.5 * frame.nbytes, peak / frame.nbytes
