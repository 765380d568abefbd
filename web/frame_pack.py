"""The viewer's frames, encoded once as JPEG and kept on disk, so a random frame costs a file read, not a decode.

A seek in an H.264 file decodes from the keyframe before it: ~15 frames on average with a keyframe every 30, 60-200
ms for 1080p on two busy cores, and the GOPs of camera files are often far longer. Like CVAT's prepared chunks, a
background thread decodes each video once, in order, and writes its frames as JPEG into chunk files of
CHUNK_FRAMES frames; the frame route then answers from them. It starts where the person is working (the last frame
asked for) and grows forward first (sequential decoding is cheap, a seek back is not), so the frames someone is
about to look at are ready first. Frames not packed yet are decoded on demand, as before.

On disk: DATA_DIR/viewer-frames/<dataset id>-<file identity>/<chunk:06d>.jpgs, each written to a temporary name and
renamed, so a crash leaves whole chunks or none. A chunk file is MAGIC, a little-endian uint32 frame count n,
n + 1 uint32 offsets into the data that follows, then the JPEGs. Disk use is capped by a byte budget
(SAM2T_VIEWER_CACHE_BYTES): videos not used for the longest go first, then the chunks of the current video farthest
from where the person works. The files are only ever read back by this module, and every offset is checked against
the file's size before a slice is taken; a chunk that does not check out is deleted and decoded again.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

CHUNK_FRAMES = 32
MAGIC = b"S2TJPG1\n"
JPEG_QUALITY = 85
# A chunk's header: frame count, then one offset per frame plus the end.
_COUNT = struct.Struct("<I")


def encode_jpeg(frame, quality: int = JPEG_QUALITY) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def video_key(dataset_id: int, path: str) -> str:
    """A folder name that changes when the file behind a dataset changes (a new file at the same path, an edit)."""
    try:
        stat = os.stat(path)
        identity = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    except OSError:
        identity = path
    return f"{int(dataset_id)}-{hashlib.sha256(identity.encode()).hexdigest()[:16]}"


def pack_chunk(jpegs: list[bytes]) -> bytes:
    offsets, position = [], 0
    for data in jpegs:
        offsets.append(position)
        position += len(data)
    offsets.append(position)
    return MAGIC + _COUNT.pack(len(jpegs)) + struct.pack(f"<{len(offsets)}I", *offsets) + b"".join(jpegs)


def read_chunk_frame(path: Path, index: int) -> bytes | None:
    """Frame `index` of a chunk file, or None when the file is missing; ValueError when it does not check out."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return None
    with handle:
        size = os.fstat(handle.fileno()).st_size
        count = _read_count(handle, path)
        table_bytes = 4 * (count + 1)
        data_start = len(MAGIC) + _COUNT.size + table_bytes
        if count > CHUNK_FRAMES or data_start > size or not 0 <= index < count:
            raise ValueError(f"{path.name}: frame table out of range")
        offsets = struct.unpack(f"<{count + 1}I", handle.read(table_bytes))
        begin, end = offsets[index], offsets[index + 1]
        if not begin <= end <= size - data_start or offsets[-1] != size - data_start:
            raise ValueError(f"{path.name}: frame offsets past the end of the file")
        handle.seek(data_start + begin)
        return handle.read(end - begin)


def _read_count(handle, path: Path) -> int:
    """A chunk's frame count, read from its header; ValueError when the file is not a chunk."""
    head = handle.read(len(MAGIC) + _COUNT.size)
    if len(head) != len(MAGIC) + _COUNT.size or head[: len(MAGIC)] != MAGIC:
        raise ValueError(f"{path.name}: not a frame chunk")
    return _COUNT.unpack(head[len(MAGIC):])[0]


def packed_frames(root: Path, dataset_id: int, path: str) -> int:
    """How many frames of a video are packed under root (what the benchmark and the tests wait for)."""
    folder = Path(root) / video_key(dataset_id, path)
    total = 0
    for chunk in folder.glob("*.jpgs") if folder.is_dir() else ():
        try:
            with open(chunk, "rb") as handle:
                total += _read_count(handle, chunk)
        except (OSError, ValueError):
            continue
    return total


@dataclass
class _Wanted:
    """A video someone is looking at: where, and when they last asked."""

    key: str
    path: str
    frame_idx: int
    asked_at: float


class FramePacks:
    """The packed frames of every video, and the thread that packs them. One per app process."""

    def __init__(self, root: Path, budget_bytes: int, quality: int = JPEG_QUALITY) -> None:
        self.root = Path(root)
        self.budget_bytes = int(budget_bytes)
        self.quality = quality
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._wanted: dict[str, _Wanted] = {}
        self._failed: set[str] = set()  # videos the packer could not decode: on-demand decoding reports the error
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._used: int | None = None  # bytes on disk, counted once then kept up to date
        self._largest_chunk = 0

    # -- the frame route
    def get(self, dataset_id: int, path: str, frame_idx: int) -> bytes | None:
        """The JPEG of a packed frame, or None (not packed yet). Also tells the packer where the person works."""
        key = video_key(dataset_id, path)
        chunk = self.root / key / f"{frame_idx // CHUNK_FRAMES:06d}.jpgs"
        try:
            data = read_chunk_frame(chunk, frame_idx % CHUNK_FRAMES)
        except (OSError, ValueError) as exc:
            log.warning("viewer frame cache: %s; packing it again", exc)
            self._remove(chunk)
            data = None
        # After a bad chunk is removed, so the packer, woken here, sees it missing and packs it again.
        self.want(key, path, frame_idx)
        return data

    def want(self, key: str, path: str, frame_idx: int) -> None:
        if self.budget_bytes <= 0:
            return
        with self._lock:
            entry = self._wanted.get(key)
            if entry is None:
                entry = self._wanted[key] = _Wanted(key, path, frame_idx, time.monotonic())
            entry.frame_idx, entry.asked_at = int(frame_idx), time.monotonic()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="viewer-frame-packer", daemon=True)
                self._thread.start()
            self._wake.notify_all()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._wake.notify_all()

    # -- the packer thread
    def _run(self) -> None:
        try:  # below tracking jobs and requests: packing is ahead-of-time work (Linux: a nice value per thread)
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except (AttributeError, OSError):
            pass
        source, source_key = None, None
        try:
            while True:
                with self._lock:
                    while not self._stopped and not self._pending():
                        self._wake.wait(timeout=5.0)
                    if self._stopped:
                        return
                    wanted = max(self._pending(), key=lambda w: w.asked_at)
                    wanted = _Wanted(**vars(wanted))  # a copy: the route updates the original
                if source_key != wanted.key:
                    if source is not None:
                        source.close()
                    source, source_key = self._open(wanted), wanted.key
                    if source is None:
                        continue
                chunk = self._next_chunk(wanted, source.frame_count)
                if chunk is None:
                    with self._lock:
                        self._wanted.pop(wanted.key, None)  # all packed (or over budget) until asked again
                    continue
                self._pack(wanted, source, chunk)
        except Exception:  # the viewer keeps working without the cache: frames are then decoded on demand
            log.exception("viewer frame cache: the packer stopped")
        finally:
            if source is not None:
                source.close()
            with self._lock:
                self._thread = None

    def _pending(self) -> list[_Wanted]:
        return [w for w in self._wanted.values() if w.key not in self._failed]

    def _open(self, wanted: _Wanted):
        from sam2_tracking.engine.video import VideoError, open_video

        try:
            return open_video(wanted.path, cache_bytes=0)
        except (VideoError, OSError) as exc:
            log.warning("viewer frame cache: cannot open %s (%s)", wanted.path, exc)
            with self._lock:
                self._failed.add(wanted.key)
            return None

    def _next_chunk(self, wanted: _Wanted, frame_count: int) -> int | None:
        """The unpacked chunk nearest to the person's frame, forward ones first (a seek back costs a GOP)."""
        folder = self.root / wanted.key
        have = {int(p.stem) for p in folder.glob("*.jpgs")} if folder.is_dir() else set()
        chunks = (frame_count + CHUNK_FRAMES - 1) // CHUNK_FRAMES
        here = min(wanted.frame_idx // CHUNK_FRAMES, chunks - 1)
        missing = [c for c in range(chunks) if c not in have]
        if not missing:
            return None
        chunk = min(missing, key=lambda c: (c - here) if c >= here else 3 * (here - c))
        if not self._make_room(wanted, folder, have, here, chunk):
            return None
        return chunk

    def _make_room(self, wanted: _Wanted, folder: Path, have: set[int], here: int, chunk: int) -> bool:
        """Free disk for one more chunk within the budget; False when only nearer chunks are left to drop."""
        estimate = self._chunk_estimate(folder, have)
        used = self._disk_used()
        if used + estimate <= self.budget_bytes:
            return True
        # Videos nobody has asked for the longest go first (folder modification time: a chunk written there).
        others = sorted((p for p in self.root.iterdir() if p.is_dir() and p.name != wanted.key),
                        key=lambda p: p.stat().st_mtime) if self.root.is_dir() else []
        for other in others:
            if self._disk_used() + estimate <= self.budget_bytes:
                return True
            self._remove_folder(other)
        distance = abs(chunk - here)
        for far in sorted(have, key=lambda c: -abs(c - here)):
            if self._disk_used() + estimate <= self.budget_bytes:
                return True
            if abs(far - here) <= distance:
                return False
            self._remove(folder / f"{far:06d}.jpgs")
        return self._disk_used() + estimate <= self.budget_bytes

    def _chunk_estimate(self, folder: Path, have: set[int]) -> int:
        """The size the next chunk will likely have: the largest of a few of this video's, else the largest yet."""
        sizes = [(folder / f"{c:06d}.jpgs").stat().st_size for c in list(have)[:4]
                 if (folder / f"{c:06d}.jpgs").exists()]
        return max(sizes) if sizes else self._largest_chunk

    def _pack(self, wanted: _Wanted, source, chunk: int) -> None:
        from sam2_tracking.engine.video import VideoError

        first = chunk * CHUNK_FRAMES
        last = min(first + CHUNK_FRAMES, source.frame_count)
        try:
            jpegs = [encode_jpeg(source.read(idx), self.quality) for idx in range(first, last)]
        except (VideoError, OSError) as exc:
            log.warning("viewer frame cache: cannot decode %s frames %s-%s (%s)", wanted.path, first, last - 1, exc)
            with self._lock:
                self._failed.add(wanted.key)
            return
        data = pack_chunk(jpegs)
        folder = self.root / wanted.key
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"{chunk:06d}.jpgs"
        temporary = folder / f".{chunk:06d}.{os.getpid()}.tmp"
        temporary.write_bytes(data)
        os.replace(temporary, final)
        with self._lock:
            self._largest_chunk = max(self._largest_chunk, len(data))
            if self._used is not None:
                self._used += len(data)

    # -- disk accounting
    def _disk_used(self) -> int:
        with self._lock:
            if self._used is None:
                self._used = sum(p.stat().st_size for p in self.root.glob("*/*.jpgs")) if self.root.is_dir() else 0
            return self._used

    def _remove(self, chunk: Path) -> None:
        try:
            size = chunk.stat().st_size
            chunk.unlink()
        except OSError:
            return
        with self._lock:
            if self._used is not None:
                self._used = max(0, self._used - size)

    def _remove_folder(self, folder: Path) -> None:
        size = sum(p.stat().st_size for p in folder.glob("*.jpgs"))
        shutil.rmtree(folder, ignore_errors=True)
        with self._lock:
            if self._used is not None:
                self._used = max(0, self._used - size)
