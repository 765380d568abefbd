"""Frames for the Annotate tab: open videos kept in a small per-process cache, drawn with the track overlays."""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from sam2_tracking.masks import draw_overlay, mask_to_box


class FrameCache:
    """Keeps the last few opened videos; PyAV containers are not thread-safe, so each has its own lock."""

    def __init__(self, max_open: int = 4) -> None:
        self.max_open = max_open
        self._sources: OrderedDict[str, tuple[object, threading.Lock]] = OrderedDict()
        self._lock = threading.Lock()

    def read(self, path: str, frame_idx: int) -> np.ndarray:
        from sam2_tracking.video import open_video

        with self._lock:
            entry = self._sources.get(path)
            if entry is None:
                entry = (open_video(path), threading.Lock())
                self._sources[path] = entry
                while len(self._sources) > self.max_open:
                    _old_path, (old_source, _old_lock) = self._sources.popitem(last=False)
                    old_source.close()
            else:
                self._sources.move_to_end(path)
        source, lock = entry
        with lock:
            return source.read(frame_idx)


def render_frame(frame: np.ndarray, features, pending: dict, box_anchor: tuple[float, float] | None = None) -> np.ndarray:
    """Draw saved features, then pending (unsaved) seeds on top; mark clicks and a half-drawn box."""
    from sam2_tracking.types import Box

    layers = []
    pending_tracks = set(pending)
    for feature in features:
        if not feature.present or feature.track_id in pending_tracks:
            continue
        layers.append((feature.track_id, feature.mask, feature.box or (mask_to_box(feature.mask)
                                                                        if feature.mask is not None else None)))
    for track_id, seed in pending.items():
        mask = seed.get("mask")
        box = Box(*seed["box"]) if seed.get("box") else (mask_to_box(mask) if mask is not None else None)
        layers.append((track_id, mask, box))
    image = draw_overlay(frame, layers)
    height, width = image.shape[:2]
    marks = [(c[0], c[1], (40, 220, 40) if c[2] else (230, 30, 30)) for s in pending.values()
             for c in s.get("clicks", ())]
    if box_anchor is not None:
        marks.append((box_anchor[0], box_anchor[1], (255, 255, 255)))
    for x, y, colour in marks:
        x0, y0 = int(round(x)), int(round(y))
        image[max(0, y0 - 4):min(height, y0 + 5), max(0, x0 - 4):min(width, x0 + 5)] = colour
    return image
