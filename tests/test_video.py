"""Frame sources on real files: videos written with PyAV in several containers, image folders and zips, and broken
files (not a video, truncated, empty, mixed sizes)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam2_tracking.engine.video import VideoError, VideoInfo, open_video, probe_video

W, H = 160, 96


def synthetic_frame(i: int, width: int = W, height: int = H) -> np.ndarray:
    """A frame that differs from its neighbours everywhere (so an off-by-one read is caught)."""
    frame = np.zeros((height, width, 3), np.uint8)
    frame[..., 0] = (i * 7) % 256
    frame[..., 2] = (255 - i * 5) % 256
    y, x = (i * 3) % (height - 24), (i * 5) % (width - 24)
    frame[y : y + 24, x : x + 24] = (255, 255, 0)
    return frame


def write_video(path: Path, n: int = 30, codec: str = "libx264", options: dict | None = None, **kw) -> Path:
    import av

    with av.open(str(path), "w", **kw) as container:
        stream = container.add_stream(codec, rate=30)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        if options:
            stream.options = options
        for i in range(n):
            for packet in stream.encode(av.VideoFrame.from_ndarray(synthetic_frame(i), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def decode_all(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


CONTAINERS = [
    ("mp4", "libx264", {"g": "8", "bf": "2"}),  # short GOPs with B-frames: presentation order != decode order
    ("mov", "libx264", None),
    ("mkv", "libx264", None),
    ("webm", "libvpx-vp9", None),
    ("avi", "mpeg4", None),
]


@pytest.mark.parametrize("ext,codec,options", CONTAINERS, ids=[c[0] for c in CONTAINERS])
def test_video_reads_are_frame_accurate(tmp_path: Path, ext: str, codec: str, options: dict | None) -> None:
    path = write_video(tmp_path / f"clip.{ext}", n=30, codec=codec, options=options)
    reference = decode_all(path)
    assert len(reference) == 30
    with open_video(path, cache_bytes=4 * W * H * 3) as source:
        assert source.info == VideoInfo(30, 30.0, W, H, "video")
        assert (source.frame_count, source.width, source.height, source.path) == (30, W, H, path)
        rng = np.random.default_rng(1)
        for idx in [29, 0, 15, 14, 3, 28, *rng.integers(0, 30, 12)]:
            frame = source.read(int(idx))
            assert frame.dtype == np.uint8 and frame.shape == (H, W, 3)
            assert np.array_equal(frame, reference[idx]), f"frame {idx}"
        assert [i for i, _ in source.iter_frames(5, 12)] == list(range(5, 12))
        for idx, frame in source.iter_frames(0):
            assert np.array_equal(frame, reference[idx])
        backward = list(source.iter_frames(29, None, -1))
        assert [i for i, _ in backward] == list(range(29, -1, -1))
        assert all(np.array_equal(f, reference[i]) for i, f in backward)
        assert [i for i, _ in source.iter_frames(20, 9, -3)] == list(range(20, 9, -3))


def test_frames_are_read_only_and_bad_indices_refused(tmp_path: Path) -> None:
    path = write_video(tmp_path / "clip.mp4", n=10)
    with open_video(path) as source:
        frame = source.read(3)
        with pytest.raises(ValueError):
            frame[0, 0, 0] = 1  # cached frames are shared
        with pytest.raises(IndexError, match="frames 0 to 9"):
            source.read(10)
        with pytest.raises(IndexError):
            source.read(-1)
        with pytest.raises(TypeError):
            source.read(1.5)


def test_sample_video_probe(sample_video: Path) -> None:
    assert probe_video(sample_video) == VideoInfo(150, 30.0, 640, 360, "video")


def test_image_folder_and_zip_sorted_by_name(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    frames = [synthetic_frame(i) for i in range(12)]
    for i, frame in enumerate(frames):
        # Unpadded numbers: name order must put frame_2 before frame_10.
        Image.fromarray(frame).save(folder / f"frame_{i}.png")
    (folder / "notes.txt").write_text("ignored")
    (folder / ".hidden.png").write_bytes(b"ignored")
    with open_video(folder) as source:
        assert source.info == VideoInfo(12, 30.0, W, H, "images")
        assert all(np.array_equal(source.read(i), frames[i]) for i in (11, 2, 10, 0))
        assert [i for i, _ in source.iter_frames(11, None, -1)] == list(range(11, -1, -1))
    archive = tmp_path / "frames.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(12):
            zf.write(folder / f"frame_{i}.png", f"clip/frame_{i}.png")
        zf.writestr("__MACOSX/clip/._frame_1.png", b"junk")
    with open_video(archive) as source:
        assert (source.frame_count, source.info.kind) == (12, "images")
        assert all(np.array_equal(source.read(i), frames[i]) for i in (0, 10, 2))


def test_sample_sequence_zip(sample_sequence: Path) -> None:
    info = probe_video(sample_sequence)
    assert info.frame_count == 60 and info.kind == "images"


def test_jpeg_sequence_pixels_match_pil(tmp_path: Path) -> None:
    """The tracker's equality with the stock predictor rests on decoding JPEGs exactly as PIL does."""
    folder = tmp_path / "jpg"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(synthetic_frame(i)).save(folder / f"{i:05d}.jpg", quality=85)
    with open_video(folder) as source:
        for i in range(3):
            expected = np.array(Image.open(folder / f"{i:05d}.jpg").convert("RGB"))
            assert np.array_equal(source.read(i), expected)


def _broken_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    good = write_video(tmp_path / "good.mp4", n=30).read_bytes()
    big = write_video(tmp_path / "fast.mp4", n=60, options={"movflags": "+faststart"}).read_bytes()
    cases = {
        "text": ("notes.mp4", b"this is not a video\n" * 10, "not a video"),
        "empty": ("empty.mp4", b"", "not a video"),
        "cut_moov_at_end": ("cut.mp4", good[: len(good) // 2], "truncated"),
        "cut_faststart": ("cut_fast.mp4", big[: int(len(big) * 0.6)], "truncated"),
        "single_image": ("frame.jpg", b"", "single image"),
        "bad_zip": ("frames.zip", b"PK\x03\x04 broken", "not a valid zip"),
    }
    out = {}
    for key, (name, data, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        out[key] = (path, message)
    empty_dir = tmp_path / "no_images"
    empty_dir.mkdir()
    (empty_dir / "readme.txt").write_text("x")
    out["empty_folder"] = (empty_dir, "no JPEG or PNG")
    out["missing"] = (tmp_path / "nowhere.mp4", "does not exist")
    audio = tmp_path / "sound.mka"
    _write_audio(audio)
    out["audio_only"] = (audio, "no video stream")
    return out


def _write_audio(path: Path) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


BROKEN = ["text", "empty", "cut_moov_at_end", "cut_faststart", "single_image", "bad_zip", "empty_folder", "missing",
          "audio_only"]


@pytest.mark.parametrize("case", BROKEN)
def test_broken_inputs_raise_video_error(tmp_path: Path, case: str) -> None:
    path, message = _broken_inputs(tmp_path)[case]
    with pytest.raises(VideoError, match=message):
        probe_video(path)


def test_corrupt_and_mismatched_images_fail_when_read(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(synthetic_frame(i)).save(folder / f"{i:03d}.png")
    Image.fromarray(synthetic_frame(4, width=W + 16)).save(folder / "004.png")
    data = (folder / "001.png").read_bytes()
    (folder / "002.png").write_bytes(data[: len(data) // 3])
    with open_video(folder) as source:
        assert source.frame_count == 5
        source.read(1)
        with pytest.raises(VideoError, match=r"frame 2 \(002.png\) cannot be read"):
            source.read(2)
        with pytest.raises(VideoError, match=r"frame 4 \(004.png\) is 176x96"):
            source.read(4)


def test_import_does_not_load_torch() -> None:
    code = "import sys, sam2_tracking.engine.video, sam2_tracking.models.catalogue; print(json.dumps(sorted(m for m in ('torch', 'av', 'sam2') if m in sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", "import json; " + code], capture_output=True, text=True, check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert json.loads(result.stdout) == []


def test_backward_reads_decode_each_frame_once_and_the_cache_is_bounded_in_bytes(tmp_path: Path) -> None:
    path = write_video(tmp_path / "clip.mp4", n=30, options={"g": "8", "bf": "2"})
    reference = decode_all(path)
    with open_video(path, cache_bytes=3 * W * H * 3 + 1) as source:  # room for three frames
        backward = list(source.iter_frames(29, None, -1))
        assert [i for i, _ in backward] == list(range(29, -1, -1))
        assert all(np.array_equal(f, reference[i]) for i, f in backward)
        assert source.decoded_frames == 30  # GOP blocks from each keyframe, never a seek per frame
        for idx in range(30):
            source.read(idx)
        assert len(source._cache) == 3
