"""The streaming tracker's bookkeeping on the real SAM2.1 Tiny architecture (random weights): progress and cancel,
seeds refused before any work, flat memory over many jobs, each frame decoded about once (previews included),
resuming bit-identically from a saved point, and compiled mode refused without CUDA. The clip and the stock
comparison are tests/tracker_clip.py's."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest

from sam2_tracking.engine.video import open_video
from sam2_tracking.types import Box, Click, Direction, FrameMask, ObjectSeeds, Seed, SeedError, TrackingProgress
from tests.tracker_clip import (
    SHAPES,
    H,
    N,
    W,
    as_arrays,
    box_seed,
    disc_mask,
    load_test_predictor,
    run_ours,
    write_clip_dir,
    write_mp4,
)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    return write_clip_dir(tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="module")
def predictor(test_model_dir: Path):
    return load_test_predictor(test_model_dir, "cpu")


@pytest.mark.slow
def test_progress_cancel_and_backward_from_frame_zero(predictor, clip_dir: Path) -> None:
    from sam2_tracking.engine.tracker import TrackingCancelled, track_objects

    objects = [ObjectSeeds(1, (box_seed(10, 1),))]
    reports: list[TrackingProgress] = []
    got = run_ours(predictor, clip_dir, objects, 10, 4, Direction.BOTH, 3, on_progress=reports.append)
    assert [[fm.frame_idx for fm in b] for b in got] == [[10, 11, 12], [13], [9, 8, 7]]
    assert [(r.frames_done, r.frames_total, r.frame_idx) for r in reports] == [
        (1, 7, 10), (2, 7, 11), (3, 7, 12), (4, 7, 13), (5, 7, 9), (6, 7, 8), (7, 7, 7)
    ]
    assert all(r.fps > 0 for r in reports)

    asked = []
    batches = []
    with open_video(clip_dir) as frames:
        jobs = track_objects(predictor, frames, objects, 10, None, Direction.FORWARD, 4,
                             should_cancel=lambda: asked.append(1) or len(asked) > 6)
        with pytest.raises(TrackingCancelled):
            for batch in jobs:
                batches.append(batch)
    # checked before seeding and before each frame: 5 frames done, the first batch of 4 stays yielded and the stop
    # hands over the fifth frame as a last, shorter batch with its resume point (a stop keeps every tracked frame)
    assert [[fm.frame_idx for fm in b] for b in batches] == [[10, 11, 12, 13], [14]]
    assert batches[-1].resume_point.frame_idx == 14 and batches[-1].resume_point.frames_done == 5

    only = run_ours(predictor, clip_dir, [ObjectSeeds(1, (box_seed(0, 1),))], 0, None, Direction.BACKWARD, 10)
    assert [[fm.frame_idx for fm in b] for b in only] == [[0]]


def test_bad_seeds_fail_before_any_work(predictor, clip_dir: Path) -> None:
    from sam2_tracking.engine.tracker import track_objects

    with pytest.raises(SeedError, match="empty or inverted"):
        Box(10, 10, 5, 20)
    with pytest.raises(SeedError, match="empty or inverted"):
        Box(10, 10, 10, 20)
    with pytest.raises(SeedError, match="is empty"):
        Seed(0, mask=np.zeros((H, W), bool))
    with open_video(clip_dir) as frames:
        bad = {
            "lies outside": [ObjectSeeds(1, (Seed(0, box=Box(W + 5, 0, W + 50, 20)),))],
            "the video is 160x96": [ObjectSeeds(1, (Seed(0, mask=np.ones((H + 1, W), bool)),))],
            "past the end": [ObjectSeeds(1, (Seed(N, box=Box(0, 0, 10, 10)),))],
            "click .* outside": [ObjectSeeds(1, (Seed(0, clicks=(Click(-3, 4),)),))],
            "different track": [ObjectSeeds(1, (box_seed(0, 1),)), ObjectSeeds(1, (box_seed(0, 2),))],
            "nothing to track": [],
        }
        for message, objects in bad.items():
            with pytest.raises(SeedError, match=message):
                track_objects(predictor, frames, objects, 0)  # raises on the call, not on first iteration
        good = [ObjectSeeds(1, (box_seed(0, 1),))]
        with pytest.raises(SeedError, match="start frame"):
            track_objects(predictor, frames, good, N)
        with pytest.raises(ValueError, match="at least 1"):
            track_objects(predictor, frames, good, 0, num_frames=0)
        with pytest.raises(ValueError, match="batch size"):
            track_objects(predictor, frames, good, 0, batch_size=0)
        with pytest.raises(ValueError):
            track_objects(predictor, frames, good, 0, direction="sideways")


@pytest.mark.slow
def test_ten_jobs_leave_memory_flat(predictor, clip_dir: Path) -> None:
    import psutil

    process = psutil.Process()
    objects = [ObjectSeeds(1, (box_seed(0, 1),)), ObjectSeeds(2, (box_seed(0, 2),))]

    def job() -> int:
        for _batch in run_ours(predictor, clip_dir, objects, 0, 5, Direction.FORWARD, 10):
            pass
        gc.collect()
        return process.memory_info().rss

    job()  # warm-up: first-use allocations (kernels, caches)
    after_one = job()
    after_ten = [job() for _ in range(9)][-1]
    assert after_ten - after_one < 25 * 2**20, f"memory grew {(after_ten - after_one) / 2**20:.1f} MiB over 9 jobs"


@pytest.mark.slow
@pytest.mark.parametrize("direction", ["forward", "backward", "both"])
def test_each_frame_decoded_about_once_with_previews(predictor, tmp_path: Path, direction: str) -> None:
    """The feeder decodes ahead in the order SAM2 asks (never the seeded start frame), backward in GOP blocks, and
    previews get the frame already decoded: decoder output per tracked frame stays <= 1.1. The cache holds only four
    frames, as a 1080p job's byte-bounded cache holds ten."""
    from sam2_tracking.engine.tracker import track_objects

    video = write_mp4(tmp_path / "clip.mp4", N, gop=8)
    start = {"forward": 0, "backward": N - 1, "both": N // 2}[direction]
    objects = [ObjectSeeds(1, (Seed(start, box=Box(*SHAPES[1])),)), ObjectSeeds(2, (Seed(start, box=Box(*SHAPES[2])),))]
    wanted = set(range(0, N, 5)) | {start, N - 1}
    previews: dict[int, tuple[np.ndarray, list[FrameMask]]] = {}
    with open_video(video, cache_bytes=4 * W * H * 3) as frames:
        batches = list(track_objects(
            predictor, frames, objects, start, None, Direction(direction), 10, feeder_threads=2,
            preview_frames=wanted, on_preview=lambda idx, rgb, results: previews.__setitem__(idx, (rgb, results)),
        ))
        decoded = frames.decoded_frames
    tracked = [fm.frame_idx for batch in batches for fm in batch[:: len(objects)]]
    assert len(tracked) == len(set(tracked)) == N
    assert decoded / N <= 1.1, f"{decoded} decodes for {N} frames"
    assert set(previews) == wanted
    with open_video(video) as reference:
        for idx, (rgb, results) in previews.items():
            assert np.array_equal(rgb, reference.read(idx)), f"preview frame {idx}"
            assert [(r.frame_idx, r.track_id) for r in results] == [(idx, 1), (idx, 2)]


@pytest.mark.slow
def test_resume_point_continues_bit_identically(predictor, clip_dir: Path, tmp_path: Path) -> None:
    """A run resumed from a saved ResumePoint (written to a file and read back with weights_only) yields exactly the
    frames after the point, with the masks of the uninterrupted run: from a point in the forward pass of a `both`
    job and from one in its reverse pass (which reads the forward pass's outputs near the start frame)."""
    from sam2_tracking.engine.resume import load_resume_point, save_resume_point
    from sam2_tracking.engine.tracker import track_objects

    objects = [ObjectSeeds(1, (box_seed(20, 1),)), ObjectSeeds(2, (Seed(20, mask=disc_mask(110, 60, 12)),))]

    def run(resume=None):
        with open_video(clip_dir) as frames:
            return list(track_objects(predictor, frames, objects, 20, None, Direction.BOTH, 7, resume=resume))

    full = run()
    order = [fm.frame_idx for batch in full for fm in batch[::2]]
    reference = as_arrays(full, 2)
    points = [batch.resume_point for batch in full]
    assert [p.pass_idx for p in points] == [0, 0, 0, 1, 1, 1] and points[-1].frames_done == N
    for point in (points[1], points[4]):
        path = tmp_path / "job.pt"
        save_resume_point(point, path)
        resumed = run(load_resume_point(path, "cpu"))
        got = as_arrays(resumed, 2)
        assert list(got) == order[point.frames_done :]
        assert all(np.array_equal(got[i], reference[i]) for i in got), "resumed masks differ"
    with pytest.raises(ValueError, match="another job"):
        with open_video(clip_dir) as frames:
            track_objects(predictor, frames, objects[:1], 20, None, Direction.BOTH, 7, resume=points[1])
    (tmp_path / "bad.pt").write_bytes(b"not a tracking state")
    with pytest.raises(ValueError, match="not a readable tracking state"):
        load_resume_point(tmp_path / "bad.pt", "cpu")


def test_compiled_mode_is_refused_on_cpu(predictor) -> None:
    from sam2_tracking.engine.compiled import compiled_predictor

    with pytest.raises(ValueError, match="compiled mode needs a CUDA GPU.*without --compile"):
        compiled_predictor(predictor)
    assert type(predictor).__name__ == "SAM2VideoPredictor"  # left as it was


def test_consumer_refuses_compile_on_cpu(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAM2T_")}
    env.update(SAM2T_DATA_DIR=str(tmp_path / "data"), SAM2T_EMBED_CONSUMERS="none", PYTHONPATH=str(repo))
    result = subprocess.run([sys.executable, "-m", "queues.consumer", "cpu", "--device", "cpu", "--compile"],
                            cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "--compile needs a CUDA GPU" in result.stderr and "drop --compile" in result.stderr
    result = subprocess.run([sys.executable, "-m", "queues.consumer", "cpu", "--feeder-threads", "0"],
                            cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "--feeder-threads must be at least 1" in result.stderr
