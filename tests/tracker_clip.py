"""The synthetic clip and the helpers the tracker tests share: what stock SAM2 gives on a JPEG folder, what our
tracker gives, and how to compare them. Used by tests/test_tracker*.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from sam2_tracking.engine.masks import mask_to_box
from sam2_tracking.engine.video import open_video
from sam2_tracking.types import Box, Click, Direction, FrameMask, ObjectSeeds, Seed

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


def write_clip_dir(folder: Path) -> Path:
    """The N-frame clip as a folder of JPEGs (what stock init_state reads; our tracker reads it as an image sequence)."""
    for i in range(N):
        Image.fromarray(clip_frame(i)).save(folder / f"{i:05d}.jpg", quality=90)
    return folder


def load_test_predictor(test_model_dir: Path, device: str):
    import torch

    from sam2_tracking.models.catalogue import load_predictor

    torch.manual_seed(0)
    return load_predictor(test_model_dir, device)


def box_seed(frame_idx: int, track_id: int) -> Seed:
    return Seed(frame_idx, box=Box(*SHAPES[track_id]))


def disc_mask(cx: int, cy: int, r: int) -> np.ndarray:
    yy, xx = np.mgrid[:H, :W]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def stock_masks(predictor, folder: Path, objects, start: int, num_frames: int | None, direction: Direction):
    """What Meta's demo does: init_state on the JPEG folder, add the prompts, propagate (forward then reverse), all
    under the autocast the demo (and our tracker) uses on CUDA; nothing extra on the CPU."""
    from sam2_tracking.models.loading import inference_context

    with inference_context(predictor.device):
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
