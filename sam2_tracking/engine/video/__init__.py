"""Frame sources: video files (through PyAV, video_file.py) and image sequences (a folder or a .zip of JPEG/PNG
files, image_sequence.py), opened with open_video; FrameSource (source.py: exact frame indices, read-only RGB
frames, a small cache) is what both give.

Nothing here imports torch; PyAV and Pillow are imported when a source is opened.
"""

from __future__ import annotations

from pathlib import Path

from sam2_tracking.engine.video.source import (
    DEFAULT_CACHE_BYTES,
    DEFAULT_IMAGE_FPS,
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    FrameSource,
    VideoError,
    VideoInfo,
)


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
    if p.is_dir() or p.suffix.lower() == ".zip":
        from sam2_tracking.engine.video.image_sequence import ImageSequenceSource

        return ImageSequenceSource(p, cache_bytes, images_fps)
    if p.suffix.lower() in IMAGE_EXTENSIONS:
        raise VideoError(
            f"{p.name} is a single image: upload a video file, or a folder or .zip of the frames as JPEG/PNG images"
        )
    from sam2_tracking.engine.video.video_file import VideoFileSource

    return VideoFileSource(p, cache_bytes)


__all__ = [
    "DEFAULT_CACHE_BYTES", "DEFAULT_IMAGE_FPS", "IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "FrameSource", "VideoError",
    "VideoInfo", "open_video", "probe_video",
]
