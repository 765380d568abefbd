"""The viewer's frames packed ahead of time as JPEG chunks (web/frame_pack.py): content, order, budget, bad files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam2_tracking.engine.video import open_video
from sam2_tracking.testing.wait import wait_for
from web.frame_pack import (
    CHUNK_FRAMES,
    FramePacks,
    encode_jpeg,
    pack_chunk,
    packed_frames,
    read_chunk_frame,
    video_key,
)


def _wait_until(condition, what: str) -> None:
    wait_for(condition, 60, what, 0.05)


def _decode(jpeg: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))


def _idle(packs: FramePacks) -> bool:
    return packs._thread is None or not packs._pending()


def test_a_chunk_round_trips_and_a_damaged_one_is_refused(tmp_path: Path):
    frames = [b"\xff\xd8one", b"\xff\xd8second", b""]
    path = tmp_path / "000000.jpgs"
    path.write_bytes(pack_chunk(frames))
    assert [read_chunk_frame(path, i) for i in range(3)] == frames
    assert read_chunk_frame(tmp_path / "missing.jpgs", 0) is None
    with pytest.raises(ValueError):
        read_chunk_frame(path, 3)  # past the frame count
    data = path.read_bytes()
    for damaged in (data[:-3], b"NOTCHUNK" + data[8:], data[:12], data[:8] + (10**6).to_bytes(4, "little") + data[12:]):
        path.write_bytes(damaged)
        with pytest.raises(ValueError):
            read_chunk_frame(path, 1)


def test_every_frame_is_packed_starting_where_the_person_works(tmp_path: Path, sample_video: Path):
    with open_video(sample_video) as video:
        count = video.frame_count
        reference = {idx: video.read(idx).copy() for idx in (0, CHUNK_FRAMES + 3, count - 1)}
    assert count > 2 * CHUNK_FRAMES  # the sample has at least three chunks
    packs = FramePacks(tmp_path / "viewer-frames", budget_bytes=1 << 30)
    try:
        here = CHUNK_FRAMES + 3
        assert packs.get(7, str(sample_video), here) is None  # nothing packed yet: the route decodes this one
        folder = tmp_path / "viewer-frames" / video_key(7, str(sample_video))
        _wait_until(lambda: folder.is_dir() and any(folder.glob("*.jpgs")), "the first chunk")
        # The chunk the person is on comes first.
        assert sorted(p.name for p in folder.glob("*.jpgs"))[0] == f"{here // CHUNK_FRAMES:06d}.jpgs"
        _wait_until(lambda: packed_frames(packs.root, 7, str(sample_video)) == count, "every frame packed")
        for idx, rgb in reference.items():
            # The very bytes the route would encode from the decoded frame, and an image of the frame's size.
            packed = packs.get(7, str(sample_video), idx)
            assert packed == encode_jpeg(rgb)
            assert _decode(packed).shape == rgb.shape
        assert not list(folder.glob(".*.tmp"))
    finally:
        packs.stop()


def test_a_damaged_chunk_is_dropped_and_packed_again(tmp_path: Path, sample_video: Path):
    packs = FramePacks(tmp_path, budget_bytes=1 << 30)
    try:
        packs.get(1, str(sample_video), 0)
        _wait_until(lambda: _idle(packs) and packed_frames(packs.root, 1, str(sample_video)) > 0, "packing")
        chunk = tmp_path / video_key(1, str(sample_video)) / "000000.jpgs"
        good = chunk.read_bytes()
        chunk.write_bytes(good[: len(good) // 2])  # cut short, as a full disk would leave it
        assert packs.get(1, str(sample_video), 5) is None  # refused, deleted, and the viewer decodes instead
        _wait_until(lambda: chunk.exists() and chunk.stat().st_size == len(good), "the chunk packed again")
        assert chunk.read_bytes() == good  # packed again whole, not the damaged bytes kept
        with open_video(sample_video) as video:
            assert packs.get(1, str(sample_video), 5) == encode_jpeg(video.read(5))
    finally:
        packs.stop()


def test_the_budget_keeps_the_chunks_nearest_the_person_and_drops_other_videos_first(tmp_path: Path,
                                                                                    sample_video: Path):
    unlimited = FramePacks(tmp_path / "probe", budget_bytes=1 << 30)
    try:
        unlimited.get(1, str(sample_video), 0)
        _wait_until(lambda: _idle(unlimited) and packed_frames(unlimited.root, 1, str(sample_video)) > 0,
                    "packing the probe")
    finally:
        unlimited.stop()
    sizes = sorted(p.stat().st_size for p in (tmp_path / "probe").glob("*/*.jpgs"))
    root = tmp_path / "viewer-frames"
    packs = FramePacks(root, budget_bytes=2 * sizes[-1] + sizes[-1] // 2)  # room for two chunks
    copy = tmp_path / "copy.mp4"
    copy.write_bytes(sample_video.read_bytes())
    try:
        packs.get(1, str(copy), 0)
        _wait_until(lambda: _idle(packs) and packed_frames(packs.root, 1, str(copy)) >= 2 * CHUNK_FRAMES,
                    "two chunks of the first video")
        used = sum(p.stat().st_size for p in root.glob("*/*.jpgs"))
        assert used <= packs.budget_bytes
        # Another video: the first one's folder goes, the new one's first chunks come.
        packs.get(2, str(sample_video), 2 * CHUNK_FRAMES)
        second = root / video_key(2, str(sample_video))
        _wait_until(lambda: _idle(packs) and second.is_dir() and len(list(second.glob("*.jpgs"))) == 2,
                    "two chunks of the second video")
        assert not (root / video_key(1, str(copy))).exists()
        assert sorted(p.name for p in second.glob("*.jpgs"))[0] in ("000001.jpgs", "000002.jpgs")
        assert sum(p.stat().st_size for p in root.glob("*/*.jpgs")) <= packs.budget_bytes
    finally:
        packs.stop()


def test_a_video_that_cannot_be_decoded_is_left_to_on_demand_decoding(tmp_path: Path, sample_video: Path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    packs = FramePacks(tmp_path / "viewer-frames", budget_bytes=1 << 30)
    try:
        assert packs.get(3, str(broken), 0) is None
        _wait_until(lambda: _idle(packs), "the packer to give the broken video up")
        assert video_key(3, str(broken)) in packs._failed  # left to on-demand decoding, which reports the error
        assert packs._thread is not None and packs._thread.is_alive()  # the packer survived (it clears this on exit)
        assert not list((tmp_path / "viewer-frames").glob("*/*.jpgs"))
        # The packer survived the broken file: the next video someone opens is packed whole.
        with open_video(sample_video) as video:
            count = video.frame_count
        packs.get(4, str(sample_video), 0)
        _wait_until(lambda: packed_frames(packs.root, 4, str(sample_video)) == count, "the next video packed whole")
    finally:
        packs.stop()
