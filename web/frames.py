"""Frames for the viewer's JPEG route: open videos kept in a small per-process cache."""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np


class FrameCache:
    """Keeps the last few opened videos; PyAV containers are not thread-safe, so each has its own lock."""

    def __init__(self, max_open: int = 4) -> None:
        self.max_open = max_open
        self._sources: OrderedDict[str, tuple[object, threading.Lock]] = OrderedDict()
        self._lock = threading.Lock()

    def read(self, path: str, frame_idx: int) -> np.ndarray:
        from sam2_tracking.engine.video import open_video

        with self._lock:
            entry = self._sources.get(path)
            if entry is None:
                # No frame cache in the source: the route keeps encoded JPEGs (and web/frame_pack.py all of them), so
                # converting the frames a seek passes through to RGB for a cache would be work thrown away.
                entry = (open_video(path, cache_bytes=0), threading.Lock())
                self._sources[path] = entry
                while len(self._sources) > self.max_open:
                    _old_path, (old_source, _old_lock) = self._sources.popitem(last=False)
                    old_source.close()
            else:
                self._sources.move_to_end(path)
        source, lock = entry
        with lock:
            return source.read(frame_idx)
