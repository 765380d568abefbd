"""Frame sources: video files (through PyAV) and image sequences (a folder or a .zip of JPEG/PNG files).

Every source gives frames as read-only uint8 RGB arrays of shape (height, width, 3), addressed by a 0-based frame
index that is exact: frame i of a video file is the i-th frame in presentation order, whatever the codec's GOP
structure, because the index is built from the container's packet timestamps, not from the duration times the fps.

Nothing here imports torch; PyAV and Pillow are imported when a source is opened.
"""

from __future__ import annotations

import bisect
import re
import zipfile
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
DEFAULT_IMAGE_FPS = 30.0
# Going forward, decoding on from the current position beats a seek (which restarts at a keyframe) for short gaps.
SEQUENTIAL_GAP = 48
# Reading backward decodes a GOP (keyframe to the frame wanted) forward once and hands it out in reverse; this caps
# the decoded frames one block holds (kept as the decoder's YUV frames, 1.5 bytes a pixel for 4:2:0).
BACKWARD_BLOCK_BYTES = 512 * 1024 * 1024
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


def probe_video(path: str | Path) -> VideoInfo:
    """Frame count, fps, size and kind of a video file, image folder or image zip; raises VideoError."""
    with open_video(path, cache_bytes=1) as source:
        return source.info


def open_video(
    path: str | Path, cache_bytes: int = DEFAULT_CACHE_BYTES, images_fps: float = DEFAULT_IMAGE_FPS
) -> FrameSource:
    """Open a video file (mp4, mov, avi, mkv, webm) or an image sequence (folder or .zip of JPEG/PNG, sorted by
    name with numbers compared as numbers). images_fps is the frame rate reported for image sequences.
    cache_bytes bounds the cache of recently read frames (at least one frame is always kept)."""
    p = Path(path)
    if not p.exists():
        raise VideoError(f"{p} does not exist")
    if p.is_dir():
        return ImageSequenceSource(p, cache_bytes, images_fps)
    if p.suffix.lower() == ".zip":
        return ImageSequenceSource(p, cache_bytes, images_fps)
    if p.suffix.lower() in IMAGE_EXTENSIONS:
        raise VideoError(
            f"{p.name} is a single image: upload a video file, or a folder or .zip of the frames as JPEG/PNG images"
        )
    return VideoFileSource(p, cache_bytes)


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


class VideoFileSource(FrameSource):
    """A video file decoded with PyAV (FFmpeg)."""

    def __init__(self, path: Path, cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        import av

        self._av = av
        try:
            self._container = av.open(str(path))
        except av.error.FFmpegError as exc:
            raise VideoError(
                f"{path.name} is not a video FFmpeg can read, or it is truncated ({_av_reason(exc)}); "
                f"supported: {', '.join(VIDEO_EXTENSIONS)}, or a folder/.zip of JPEG or PNG frames"
            ) from exc
        try:
            if not self._container.streams.video:
                raise VideoError(f"{path.name} has no video stream (is it an audio file?)")
            self._stream = self._container.streams.video[0]
            self._pts, keyframe_pts = self._index_frames(path)
            self._pts_to_idx = {pts: idx for idx, pts in enumerate(self._pts)}
            ctx = self._stream.codec_context
            if ctx is None:
                raise VideoError(f"{path.name}: its video codec is not supported by this FFmpeg build")
            rate = self._stream.average_rate or self._stream.guessed_rate
            info = VideoInfo(
                frame_count=len(self._pts),
                fps=float(rate) if rate else DEFAULT_IMAGE_FPS,
                width=int(ctx.width),
                height=int(ctx.height),
                kind="video",
            )
            if info.width > 0 and info.height > 0:
                # A frame's own header says how much FFmpeg allocates: a stream whose later frames claim far more
                # than the container's size (which uploads check against SAM2T_MAX_FRAME_PIXELS) must fail, not
                # allocate gigabytes. Twice the area leaves room for codecs that decode to a padded size.
                ctx.options = {**dict(ctx.options or {}), "max_pixels": str(2 * info.width * info.height + 65536)}
            # Frame indices of keyframes, ascending: a backward read decodes from one of these, once per GOP.
            self._keyframes = sorted(self._pts_to_idx[p] for p in keyframe_pts if p in self._pts_to_idx)
            super().__init__(path, info, cache_bytes)
            # keep_seek_prefix: keep the frames a seek decodes before its target (as YUV frames, at most a block's
            # bytes) until the next seek. A tracking job going both ways seeks to its start frame first; the reverse
            # pass then reads that GOP's head from here instead of decoding it again.
            self.keep_seek_prefix = False
            self._prefix: dict[int, Any] = {}
            self._decoder: Iterator | None = None
            self._last_idx = -1
            # Decode the first and the last frame now, so an unsupported codec or a file cut short fails at open,
            # not half-way through a tracking job.
            self.read(0)
            if self.frame_count > 1:
                self.read(self.frame_count - 1)
        except BaseException:
            self._container.close()
            raise
        self._cache.clear()
        self.decoded_frames = 0

    def _index_frames(self, path: Path) -> tuple[list[int], set[int]]:
        av = self._av
        pts_list: list[int] = []
        keyframes: set[int] = set()
        missing = 0
        try:
            for packet in self._container.demux(self._stream):
                if packet.size == 0:  # the demuxer's end-of-stream flush packet
                    continue
                pts = packet.pts if packet.pts is not None else packet.dts
                if pts is None:
                    missing += 1
                else:
                    pts_list.append(int(pts))
                    if packet.is_keyframe:
                        keyframes.add(int(pts))
        except av.error.FFmpegError as exc:
            raise VideoError(f"{path.name} is truncated or corrupt ({_av_reason(exc)})") from exc
        if missing:
            raise VideoError(
                f"{path.name}: {missing} frames carry no timestamps, so frames cannot be addressed exactly; "
                "re-encode it (for example `ffmpeg -i in.avi -c:v libx264 out.mp4`) or upload the frames as images"
            )
        if not pts_list:
            raise VideoError(f"{path.name} contains no video frames")
        if len(set(pts_list)) != len(pts_list):
            raise VideoError(f"{path.name} has frames with duplicate timestamps; re-encode it to a standard MP4")
        pts_list.sort()
        return pts_list, keyframes

    def _decode(self, idx: int) -> np.ndarray:
        gap = idx - self._last_idx
        if self._decoder is None or not 0 < gap <= SEQUENTIAL_GAP:
            self._seek(idx)
        # Frames decoded on the way are converted to RGB only when the cache keeps them (a seek into a long GOP
        # decodes up to the whole GOP; the YUV to RGB conversion is a good part of the cost per frame).
        for frame_idx, frame in self._decode_onward(rgb=False):
            if frame_idx == idx:
                return frame.to_ndarray(format="rgb24")
            if frame_idx > idx:
                break
            if self.keep_seek_prefix:
                self._prefix[frame_idx] = frame
                if len(self._prefix) > self._block_frames():
                    del self._prefix[next(iter(self._prefix))]  # the oldest: the reverse pass needs it last
            elif idx - frame_idx <= self._cache_size:
                self._remember(frame_idx, frame.to_ndarray(format="rgb24"))
        # Some demuxers seek to a point after the target; decode from the start of the file as a last resort.
        self._seek(0, to_start=True)
        for frame_idx, rgb in self._decode_onward():
            if frame_idx == idx:
                return rgb
            if frame_idx > idx:
                break
        raise VideoError(f"{self.path.name}: frame {idx} cannot be decoded; the file looks truncated or corrupt")

    def _seek(self, idx: int, to_start: bool = False) -> None:
        self._decoder = None
        self._prefix = {}
        av = self._av
        try:
            if to_start:
                self._container.seek(0, backward=True)
            else:
                self._container.seek(self._pts[idx], stream=self._stream, backward=True, any_frame=False)
        except av.error.FFmpegError as exc:
            raise VideoError(f"{self.path.name}: cannot seek to frame {idx} ({_av_reason(exc)})") from exc
        self._decoder = iter(self._container.decode(self._stream))
        self._last_idx = -1

    def _decode_onward(self, rgb: bool = True) -> Iterator[tuple[int, Any]]:
        """Continue the current decoder, yielding (frame_idx, rgb array), or (frame_idx, av.VideoFrame) when rgb is
        False (half the memory of RGB for 4:2:0 video); frames whose timestamp is unknown are skipped."""
        av = self._av
        assert self._decoder is not None
        while True:
            try:
                frame = next(self._decoder)
            except StopIteration:
                self._decoder = None
                return
            except av.error.FFmpegError as exc:
                self._decoder = None
                raise VideoError(f"{self.path.name} is corrupt or truncated ({_av_reason(exc)})") from exc
            self.decoded_frames += 1
            pts = frame.pts if frame.pts is not None else frame.dts
            frame_idx = self._pts_to_idx.get(pts)
            if frame_idx is None:
                continue
            self._last_idx = frame_idx
            yield frame_idx, (frame.to_ndarray(format="rgb24") if rgb else frame)

    def _iter_backward(self, indices: range) -> Iterator[tuple[int, np.ndarray]]:
        if indices.step != -1:
            yield from super()._iter_backward(indices)
            return
        # A block runs from a keyframe to the frame wanted next, so each frame is decoded once; a GOP longer than
        # the byte cap is split, and its earlier parts decode the GOP's head again (the price of bounded memory).
        block = self._block_frames()
        end = indices.start
        last = indices.stop + 1  # inclusive lower bound
        while end >= last:
            keyframe = self._keyframe_at_or_before(end)
            begin = max(last, keyframe, end - block + 1)
            frames: dict[int, Any] = {}
            for idx in range(begin, end + 1):
                cached = self._cache.get(idx)
                if cached is None:
                    cached = self._prefix.pop(idx, None)
                if cached is not None:
                    frames[idx] = cached
            missing = [idx for idx in range(begin, end + 1) if idx not in frames]
            if missing:
                # Decode only up to the last frame the cache lacks (the cache often holds the block's tail).
                stop_at = missing[-1]
                self._seek(begin)
                for frame_idx, frame in self._decode_onward(rgb=False):
                    if frame_idx > stop_at:
                        break
                    if frame_idx >= begin and frame_idx not in frames:
                        frames[frame_idx] = frame
                    if frame_idx == stop_at:
                        break
            for idx in range(end, begin - 1, -1):
                if idx not in frames:
                    raise VideoError(f"{self.path.name}: frame {idx} cannot be decoded; the file looks truncated")
                frame = frames.pop(idx)
                if not isinstance(frame, np.ndarray):
                    frame = frame.to_ndarray(format="rgb24")
                    frame.flags.writeable = False
                yield idx, frame
            end = begin - 1

    def _block_frames(self) -> int:
        """Decoded 4:2:0 frames (1.5 bytes a pixel) that fit in BACKWARD_BLOCK_BYTES."""
        return max(1, BACKWARD_BLOCK_BYTES * 2 // max(1, self.width * self.height * 3))

    def _keyframe_at_or_before(self, idx: int) -> int:
        """The last keyframe at or before idx (0 when the container marks none)."""
        pos = bisect.bisect_right(self._keyframes, idx)
        return self._keyframes[pos - 1] if pos else 0

    def close(self) -> None:
        super().close()
        self._prefix = {}
        self._decoder = None
        self._container.close()


_NUMBER = re.compile(r"(\d+)")


def _natural_key(name: str) -> list:
    return [(0, int(part), "") if part.isdigit() else (1, 0, part.lower()) for part in _NUMBER.split(name) if part]


class ImageSequenceSource(FrameSource):
    """A folder or .zip of JPEG/PNG frames, in name order (frame_2 before frame_10)."""

    def __init__(self, path: Path, cache_bytes: int = DEFAULT_CACHE_BYTES, fps: float = DEFAULT_IMAGE_FPS) -> None:
        self._zip: zipfile.ZipFile | None = None
        if path.is_dir():
            names = [
                p.name for p in path.iterdir()
                if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
            ]
        else:
            try:
                self._zip = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError) as exc:
                raise VideoError(f"{path.name} is not a valid zip file, or it is truncated ({exc})") from exc
            names = [
                n for n in self._zip.namelist()
                if not n.endswith("/") and Path(n).suffix.lower() in IMAGE_EXTENSIONS
                and not n.startswith("__MACOSX/") and not Path(n).name.startswith(".")
            ]
        if not names:
            if self._zip is not None:
                self._zip.close()
            raise VideoError(f"{path.name} holds no JPEG or PNG images ({', '.join(IMAGE_EXTENSIONS)})")
        self._names = sorted(names, key=_natural_key)
        self.frame_names = tuple(self._names)
        # Only the first image is opened here: checking every image at open would read the whole sequence before
        # the first mask. Later frames of another size fail when read, with a message naming the file.
        self.path = path
        try:
            first = self._load(0)
        except BaseException:
            if self._zip is not None:
                self._zip.close()
            raise
        height, width = first.shape[:2]
        info = VideoInfo(frame_count=len(self._names), fps=float(fps), width=width, height=height, kind="images")
        super().__init__(path, info, cache_bytes)
        self.decoded_frames = 1
        self._remember(0, first)

    def _load(self, idx: int) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError

        name = self._names[idx]
        try:
            if self._zip is not None:
                with self._zip.open(name) as handle:
                    image = Image.open(handle)
                    rgb = np.array(image.convert("RGB"))
            else:
                with Image.open(self.path / name) as image:
                    rgb = np.array(image.convert("RGB"))
        except (UnidentifiedImageError, OSError, zipfile.BadZipFile, EOFError) as exc:
            raise VideoError(f"frame {idx} ({name}) cannot be read as an image: {exc}") from exc
        return rgb

    def _decode(self, idx: int) -> np.ndarray:
        rgb = self._load(idx)
        self.decoded_frames += 1
        if rgb.shape[:2] != (self.height, self.width):
            raise VideoError(
                f"frame {idx} ({self._names[idx]}) is {rgb.shape[1]}x{rgb.shape[0]}, but the sequence starts with "
                f"{self.width}x{self.height} frames: every image must have the same size"
            )
        return rgb

    def close(self) -> None:
        super().close()
        if self._zip is not None:
            self._zip.close()


def _av_reason(exc: BaseException) -> str:
    return str(getattr(exc, "strerror", None) or exc)
