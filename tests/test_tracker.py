"""The streaming tracker against the stock SAM2VideoPredictor, on the real SAM2.1 Tiny architecture (random weights).

Fair comparison: the stock predictor only reads a folder of JPEGs (through PIL). Our tracker reads the very same
folder as an image sequence, so both start from identical pixels; our lazy loader must then produce bit-identical
input tensors, and every mask must match. One test also runs our tracker on an MP4 (decoded by PyAV) against a stock
folder written losslessly from those decoded frames (PNG data in files named .jpg, which PIL opens by content).

Clips are 40 frames so outputs are pruned (the model reads 16 frames back) and batch seams are crossed.
"""

from __future__ import annotations

import gc
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam2_tracking.engine.masks import mask_to_box
from sam2_tracking.engine.video import open_video
from sam2_tracking.types import Box, Click, Direction, FrameMask, ObjectSeeds, Seed, SeedError, TrackingProgress

W, H, N = 160, 96, 40
SHAPES = {  # track_id: box on frame 0 of the synthetic clip
    1: (20, 20, 44, 44),
    2: (100, 50, 124, 74),
    3: (60, 8, 84, 32),
}


def clip_frame(i: int) -> np.ndarray:
    frame = np.full((H, W, 3), 40, np.uint8)
    frame[:, :, 1] = np.linspace(30, 90, W, dtype=np.uint8)[None, :]
    for track_id, (x1, y1, x2, y2) in SHAPES.items():
        dx, dy = (i * (track_id + 1)) % 60 - 30, (i * track_id) % 20 - 10
        xs, ys = slice(max(0, x1 + dx), max(0, x2 + dx)), slice(max(0, y1 + dy), max(0, y2 + dy))
        frame[ys, xs] = [(230, 30, 30), (30, 60, 230), (240, 240, 40)][track_id - 1]
    return frame


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("clip")
    for i in range(N):
        Image.fromarray(clip_frame(i)).save(folder / f"{i:05d}.jpg", quality=90)
    return folder


@pytest.fixture(scope="module")
def predictor(test_model_dir: Path):
    import torch

    from sam2_tracking.models.catalogue import load_predictor

    torch.manual_seed(0)
    return load_predictor(test_model_dir, "cpu")


def box_seed(frame_idx: int, track_id: int) -> Seed:
    return Seed(frame_idx, box=Box(*SHAPES[track_id]))


def disc_mask(cx: int, cy: int, r: int) -> np.ndarray:
    yy, xx = np.mgrid[:H, :W]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def stock_masks(predictor, folder: Path, objects, start: int, num_frames: int | None, direction: Direction):
    """What Meta's demo does: init_state on the JPEG folder, add the prompts, propagate (forward then reverse)."""
    state = predictor.init_state(str(folder))
    for obj in objects:
        for seed in obj.seeds:
            if seed.mask is not None:
                predictor.add_new_mask(state, seed.frame_idx, obj.track_id, seed.mask)
            else:
                points = [[c.x, c.y] for c in seed.clicks] or None
                labels = [int(c.positive) for c in seed.clicks] or None
                box = seed.box.as_list() if seed.box else None
                predictor.add_new_points_or_box(state, seed.frame_idx, obj.track_id, points=points, labels=labels, box=box)
    limit = None if num_frames is None else num_frames - 1
    results: dict[int, np.ndarray] = {}
    for reverse in {Direction.FORWARD: [False], Direction.BACKWARD: [True], Direction.BOTH: [False, True]}[direction]:
        for frame_idx, _ids, logits in predictor.propagate_in_video(state, start, limit, reverse=reverse):
            results.setdefault(frame_idx, (logits > 0).cpu().numpy()[:, 0])
    return results


def run_ours(predictor, path: Path, objects, start, num_frames, direction, batch_size, **kw):
    from sam2_tracking.engine.tracker import track_objects

    batches = []
    with open_video(path) as frames:
        for batch in track_objects(predictor, frames, objects, start, num_frames, direction, batch_size, **kw):
            batches.append(batch)
    return batches


def as_arrays(batches: list[list[FrameMask]], n_objects: int) -> dict[int, np.ndarray]:
    out: dict[int, np.ndarray] = {}
    for batch in batches:
        for k in range(0, len(batch), n_objects):
            group = batch[k : k + n_objects]
            assert len({fm.frame_idx for fm in group}) == 1
            frame_idx = group[0].frame_idx
            assert frame_idx not in out, f"frame {frame_idx} reported twice"
            out[frame_idx] = np.stack([fm.mask_array() if fm.present else np.zeros((H, W), bool) for fm in group])
    return out


def assert_identical(stock: dict[int, np.ndarray], ours: dict[int, np.ndarray]) -> None:
    assert list(ours) == list(stock), "frames differ in set or order"
    different = [i for i in stock if not np.array_equal(stock[i], ours[i])]
    assert not different, f"masks differ on frames {different}"


def check_batches(batches, objects, batch_size: int) -> None:
    track_ids = [obj.track_id for obj in objects]
    for i, batch in enumerate(batches):
        assert len(batch) % len(objects) == 0
        assert [fm.track_id for fm in batch] == track_ids * (len(batch) // len(objects))
        if i < len(batches) - 1:
            assert len(batch) <= batch_size * len(objects)
        for fm in batch:
            assert fm.present == (fm.score > 0)
            if fm.present:
                assert fm.mask is None and fm.rle["size"] == [H, W]  # masks leave the tracker as RLE
                mask = fm.mask_array()
                assert mask.dtype == bool and mask.shape == (H, W)
                assert fm.box == mask_to_box(mask)
            else:
                assert fm.mask is None and fm.rle is None and fm.box is None


EQUALITY_CASES = {
    # name: (objects, start, num_frames, direction, batch sizes)
    "forward_1obj_box": ([ObjectSeeds(1, (box_seed(0, 1),))], 0, None, Direction.FORWARD, [4]),
    "backward_2obj_box_clicks": (
        [ObjectSeeds(2, (Seed(N - 1, box=Box(90, 40, 130, 80)),)),
         ObjectSeeds(1, (Seed(N - 1, clicks=(Click(30, 30), Click(5, 90, positive=False))),))],
        N - 1, None, Direction.BACKWARD, [10],
    ),
    "both_3obj_box_mask_clicks": (
        [ObjectSeeds(1, (box_seed(20, 1),)),
         ObjectSeeds(2, (Seed(20, mask=disc_mask(110, 60, 12)),)),
         ObjectSeeds(3, (Seed(20, box=Box(60, 8, 84, 32), clicks=(Click(72, 20),)),))],
        20, None, Direction.BOTH, [7],
    ),
    "seeds_on_two_frames": (
        [ObjectSeeds(1, (box_seed(5, 1), Seed(30, mask=disc_mask(40, 40, 10)))),
         ObjectSeeds(3, (Seed(5, clicks=(Click(70, 20),)),))],
        5, 30, Direction.FORWARD, [10],
    ),
    "both_limited_near_start": ([ObjectSeeds(2, (box_seed(3, 2),))], 3, 20, Direction.BOTH, [100]),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(EQUALITY_CASES))
def test_masks_identical_to_stock(predictor, clip_dir: Path, case: str) -> None:
    objects, start, num_frames, direction, batch_sizes = EQUALITY_CASES[case]
    stock = stock_masks(predictor, clip_dir, objects, start, num_frames, direction)
    for batch_size in batch_sizes:
        batches = run_ours(predictor, clip_dir, objects, start, num_frames, direction, batch_size)
        check_batches(batches, objects, batch_size)
        assert_identical(stock, as_arrays(batches, len(objects)))
    if direction is Direction.BOTH:
        assert len(stock) == len(as_arrays(batches, len(objects)))  # the start frame once


def write_mp4(video: Path, frames: int, gop: int) -> Path:
    import av

    with av.open(str(video), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"g": str(gop), "bf": "2"}
        for i in range(frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(clip_frame(i), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return video


@pytest.mark.slow
def test_mp4_source_matches_stock_on_the_same_decoded_frames(predictor, tmp_path: Path) -> None:
    video = write_mp4(tmp_path / "clip.mp4", 24, gop=6)
    lossless = tmp_path / "frames"
    lossless.mkdir()
    with open_video(video) as source:
        for idx, rgb in source.iter_frames():
            Image.fromarray(rgb).save(lossless / f"{idx:05d}.jpg", format="PNG")
    objects = [ObjectSeeds(7, (Seed(20, box=Box(*SHAPES[1])),))]
    stock = stock_masks(predictor, lossless, objects, 20, None, Direction.BOTH)
    assert_identical(stock, as_arrays(run_ours(predictor, video, objects, 20, None, Direction.BOTH, 10), 1))


def test_lazy_frames_equal_stock_tensors(clip_dir: Path) -> None:
    import torch
    from sam2.utils.misc import load_video_frames

    from sam2_tracking.engine.tracker import LazyFrames

    images, height, width = load_video_frames(str(clip_dir), 256, True, compute_device=torch.device("cpu"))
    with open_video(clip_dir) as source:
        lazy = LazyFrames(source, 256)
        assert (len(lazy), height, width) == (N, H, W)
        for i in (0, 1, 17, N - 1):
            assert torch.equal(lazy[i], images[i]), f"frame {i}"


@pytest.mark.slow
def test_absent_object_reported_without_mask(predictor, test_model_dir: Path, clip_dir: Path, tmp_path: Path) -> None:
    """Random weights score every object as present; shift the object-score head's bias so some frames score <= 0."""
    import torch

    from sam2_tracking.models.catalogue import load_predictor

    folder = tmp_path / "shifted"
    folder.mkdir()
    shutil.copy(test_model_dir / "config.yaml", folder / "config.yaml")
    checkpoint = torch.load(test_model_dir / "checkpoint.pt", weights_only=True)
    checkpoint["model"]["sam_mask_decoder.pred_obj_score_head.layers.2.bias"] -= 0.15
    torch.save(checkpoint, folder / "checkpoint.pt")
    shifted = load_predictor(folder, "cpu")
    objects = [ObjectSeeds(1, (box_seed(0, 1),)), ObjectSeeds(2, (box_seed(0, 2),))]
    stock = stock_masks(shifted, clip_dir, objects, 0, 12, Direction.FORWARD)
    batches = run_ours(shifted, clip_dir, objects, 0, 12, Direction.FORWARD, 5)
    check_batches(batches, objects, 5)
    assert_identical(stock, as_arrays(batches, 2))
    results = [fm for batch in batches for fm in batch]
    absent = [fm for fm in results if not fm.present]
    assert absent and len(absent) < len(results), "expected a mix of present and absent frames"
    for fm in absent:
        assert fm.score <= 0 and not stock[fm.frame_idx][fm.track_id - 1].any()


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
    # checked before seeding and before each frame: 5 frames done, the first batch of 4 stays yielded
    assert [[fm.frame_idx for fm in b] for b in batches] == [[10, 11, 12, 13]]

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


def test_prune_keeps_what_the_model_reads() -> None:
    from sam2_tracking.engine.tracker import prune_outputs

    def state_with(frames):
        return {
            "output_dict_per_obj": {0: {"cond_frame_outputs": {0: "seed"}, "non_cond_frame_outputs": dict.fromkeys(frames, "x")}},
            "frames_tracked_per_obj": {0: dict.fromkeys(frames, {"reverse": False})},
        }

    state = state_with(range(1, 41))
    prune_outputs(state, 40, reverse=False, keep=17, protect=range(0, 18))
    assert sorted(state["output_dict_per_obj"][0]["non_cond_frame_outputs"]) == [*range(1, 18), *range(24, 41)]
    assert sorted(state["frames_tracked_per_obj"][0]) == [*range(1, 18), *range(24, 41)]
    assert state["output_dict_per_obj"][0]["cond_frame_outputs"] == {0: "seed"}
    state = state_with(range(10, 60))
    prune_outputs(state, 10, reverse=True, keep=17, protect=range(0))
    assert sorted(state["output_dict_per_obj"][0]["non_cond_frame_outputs"]) == list(range(10, 27))


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
    from sam2_tracking.engine.tracker import load_resume_point, save_resume_point, track_objects

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
    from sam2_tracking.engine.tracker import compiled_predictor

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
