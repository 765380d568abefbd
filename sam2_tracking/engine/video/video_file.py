"""A video file decoded with PyAV (FFmpeg), frame-accurate: frame i is the i-th frame in presentation order, from an
index of the container's packet timestamps built when the file is opened. Opened through engine.video.open_video.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sam2_tracking.engine.video.source import (
    DEFAULT_CACHE_BYTES,
    DEFAULT_IMAGE_FPS,
    VIDEO_EXTENSIONS,
    FrameSource,
    VideoError,
    VideoInfo,
)

# Going forward, decoding on from the current position beats a seek (which restarts at a keyframe) for short gaps.
SEQUENTIAL_GAP = 48
# Reading backward decodes a GOP (keyframe to the frame wanted) forward once and hands it out in reverse; this caps
# the decoded frames one block holds (kept as the decoder's YUV frames, 1.5 bytes a pixel for 4:2:0).
BACKWARD_BLOCK_BYTES = 512 * 1024 * 1024


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


def _av_reason(exc: BaseException) -> str:
    return str(getattr(exc, "strerror", None) or exc)
