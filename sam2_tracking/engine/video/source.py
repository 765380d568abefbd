"""What every frame source is (FrameSource), what it reports (VideoInfo), how it refuses (VideoError), and the
extensions and defaults the sources share. The concrete sources (video_file.py, image_sequence.py) import this
module; the package's open_video picks one of them.

Every source gives frames as read-only uint8 RGB arrays of shape (height, width, 3), addressed by a 0-based frame
index that is exact: frame i of a video file is the i-th frame in presentation order, whatever the codec's GOP
structure, because the index is built from the container's packet timestamps, not from the duration times the fps.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
DEFAULT_IMAGE_FPS = 30.0
# The LRU cache of recently read frames, in bytes of RGB: about ten 1080p frames.
DEFAULT_CACHE_BYTES = 64 * 1024 * 1024


class VideoError(ValueError):
    """The file or folder cannot be used as a video; the message says why and what to do."""


@dataclass(frozen=True)
class VideoInfo:
    frame_count: int
    fps: float
    width: int
    height: int
    kind: str  # "video" or "images"


class FrameSource:
    """Random and sequential access to the frames of one video. Use as a context manager or call close().

    read(i) is frame-accurate; iter_frames() is the fast way through many frames. A small LRU cache holds the frames
    read last, up to `cache_bytes` (never fewer than one), so a frame asked for twice in a row is decoded once.
    decoded_frames counts every frame the decoder produced (or image file decoded): the measure of decoding work.
    Not thread-safe: callers that share a source between threads serialise access to it.
    """

    def __init__(self, path: Path, info: VideoInfo, cache_bytes: int) -> None:
        self.path = path
        self.info = info
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        frame_bytes = max(1, info.width * info.height * 3)
        self._cache_size = max(1, int(cache_bytes) // frame_bytes)
        self.decoded_frames = 0

    @property
    def frame_count(self) -> int:
        return self.info.frame_count

    @property
    def fps(self) -> float:
        return self.info.fps

    @property
    def width(self) -> int:
        return self.info.width

    @property
    def height(self) -> int:
        return self.info.height

    def read(self, frame_idx: int) -> np.ndarray:
        """The frame at frame_idx as a read-only uint8 (height, width, 3) RGB array."""
        idx = self._check_index(frame_idx)
        frame = self._cache.get(idx)
        if frame is not None:
            self._cache.move_to_end(idx)
            return frame
        frame = self._decode(idx)
        self._remember(idx, frame)
        return frame

    def iter_frames(
        self, start_idx: int = 0, stop_idx: int | None = None, step: int = 1
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (frame_idx, rgb) for range(start_idx, stop_idx, step); stop_idx None means to the last frame
        (step > 0) or to frame 0 (step < 0). step=-1 walks backward without a seek per frame."""
        if step == 0:
            raise ValueError("step must not be 0")
        start = self._check_index(start_idx)
        if stop_idx is None:
            stop = self.frame_count if step > 0 else -1
        else:
            stop = max(-1, min(int(stop_idx), self.frame_count))
        indices = range(start, stop, step)
        if step < 0:
            return self._iter_backward(indices)
        return ((idx, self.read(idx)) for idx in indices)

    def close(self) -> None:
        self._cache.clear()

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return self.frame_count

    def __repr__(self) -> str:
        i = self.info
        return f"<{type(self).__name__} {self.path.name} {i.width}x{i.height} {i.frame_count} frames @ {i.fps:g} fps>"

    # -- for subclasses
    def _decode(self, idx: int) -> np.ndarray:
        raise NotImplementedError

    def _iter_backward(self, indices: range) -> Iterator[tuple[int, np.ndarray]]:
        for idx in indices:
            yield idx, self.read(idx)

    def _check_index(self, frame_idx: int) -> int:
        if not isinstance(frame_idx, (int, np.integer)) or isinstance(frame_idx, bool):
            raise TypeError(f"frame index must be an integer, got {frame_idx!r}")
        idx = int(frame_idx)
        if not 0 <= idx < self.frame_count:
            raise IndexError(f"frame {idx} is outside {self.path.name} (frames 0 to {self.frame_count - 1})")
        return idx

    def _remember(self, idx: int, frame: np.ndarray) -> None:
        frame.flags.writeable = False  # cached arrays are shared: a caller must not change them in place
        self._cache[idx] = frame
        self._cache.move_to_end(idx)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
