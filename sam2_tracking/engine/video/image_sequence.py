"""An image sequence: a folder or .zip of JPEG/PNG frames in name order, decoded with Pillow one frame at a time.
Opened through engine.video.open_video.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np

from sam2_tracking.engine.video.source import (
    DEFAULT_CACHE_BYTES,
    DEFAULT_IMAGE_FPS,
    IMAGE_EXTENSIONS,
    FrameSource,
    VideoError,
    VideoInfo,
)

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
