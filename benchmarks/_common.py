"""Shared parts of the benchmarks: the synthetic clip, and one tracking run (stock or ours) in its own process.

A run is started as `python -m benchmarks._common SPEC.json RESULT.json`: the parent never imports torch, so each
run's peak RSS is its own. Both runs start their clock after the model is loaded and include reading the frames
(stock: init_state on the JPEG folder; ours: lazy decoding of the same folder), so the comparison is fair and the
masks can be compared bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
COLOURS = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (255, 225, 25), (145, 30, 180), (245, 130, 48)]


def shape_box(obj_idx: int, frame_idx: int, width: int, height: int) -> tuple[int, int, int, int]:
    """Where object obj_idx is on frame frame_idx: squares that drift smoothly and bounce off the edges."""
    size = max(12, min(width, height) // 6)
    span_x, span_y = width - size, height - size
    x = int(abs(((obj_idx * 97 + frame_idx * (3 + obj_idx)) % (2 * span_x)) - span_x))
    y = int(abs(((obj_idx * 53 + frame_idx * (2 + obj_idx % 3)) % (2 * span_y)) - span_y))
    return x, y, x + size, y + size


def synthetic_frame(frame_idx: int, objects: int, width: int, height: int) -> np.ndarray:
    frame = np.empty((height, width, 3), np.uint8)
    frame[..., 0] = np.linspace(20, 90, width, dtype=np.uint8)[None, :]
    frame[..., 1] = np.linspace(40, 110, height, dtype=np.uint8)[:, None]
    frame[..., 2] = 60
    for obj_idx in range(objects):
        x1, y1, x2, y2 = shape_box(obj_idx, frame_idx, width, height)
        frame[y1:y2, x1:x2] = COLOURS[obj_idx % len(COLOURS)]
    return frame


def write_clip(folder: Path, frames: int, objects: int, width: int, height: int) -> Path:
    """A folder of JPEGs named 00000.jpg... (the only input the stock predictor reads), cached by its parameters."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    done = folder / ".complete"
    if not done.exists():
        for i in range(frames):
            Image.fromarray(synthetic_frame(i, objects, width, height)).save(folder / f"{i:05d}.jpg", quality=90)
        done.write_text("ok")
    return folder


def model_dir(image_size: int) -> Path:
    """The test model (SAM2.1 Tiny architecture, seeded random weights) at this image size, built once."""
    from sam2_tracking.models.testmodel import CHECKPOINT_NAME, CONFIG_NAME, build_test_model

    out = Path(os.environ.get("SAM2T_TEST_CACHE", REPO / ".cache")) / f"testmodel-{image_size}-seed0"
    if not ((out / CONFIG_NAME).is_file() and (out / CHECKPOINT_NAME).is_file()):
        build_test_model(out, image_size=image_size, seed=0)
    return out


def start_frame(direction: str, frames: int) -> int:
    return {"forward": 0, "backward": frames - 1, "both": frames // 2}[direction]


def run_in_subprocess(spec: dict, timeout: float | None = None) -> dict:
    """Run one tracking job in a fresh Python process and return its result dict."""
    with tempfile.TemporaryDirectory(prefix="sam2t-bench-") as tmp:
        spec_path, result_path = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec_path.write_text(json.dumps(spec))
        env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), TQDM_DISABLE="1")
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks._common", str(spec_path), str(result_path)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{spec['runner']} run failed:\n{proc.stderr[-4000:]}")
        return json.loads(result_path.read_text())


def _digest(mask: np.ndarray | None, shape: tuple[int, int]) -> str:
    bits = np.packbits(mask if mask is not None else np.zeros(shape, bool))
    return hashlib.blake2b(bits.tobytes(), digest_size=8).hexdigest()


def _worker(spec: dict) -> dict:
    import torch

    from sam2_tracking.models.catalogue import inference_context, load_predictor

    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    device = spec["device"]
    predictor = load_predictor(Path(spec["model_dir"]), device)
    objects = spec["objects"]  # [{"track_id", "frame", "box"}]
    start, direction, num_frames = spec["start"], spec["direction"], spec.get("num_frames")
    keep_digests = spec.get("digests", True)
    digests: dict[int, list[str]] = {}
    stream_digest = hashlib.blake2b(digest_size=16)
    first_mask_s: float | None = None
    frames_done = 0
    t0 = time.perf_counter()

    def record(frame_idx: int, masks: list[np.ndarray | None], shape: tuple[int, int]) -> None:
        nonlocal first_mask_s, frames_done
        if first_mask_s is None:
            first_mask_s = time.perf_counter() - t0
        if frame_idx in digests or (not keep_digests and frames_done and frame_idx == start):
            return  # the stock reverse pass repeats the start frame: compare the forward pass's result
        frames_done += 1
        row = [_digest(m, shape) for m in masks]
        stream_digest.update(f"{frame_idx}:{','.join(row)};".encode())
        if keep_digests:
            digests[frame_idx] = row

    if spec["runner"] == "stock":
        with inference_context(device):
            state = predictor.init_state(spec["clip_dir"])
            shape = (state["video_height"], state["video_width"])
            for obj in objects:
                predictor.add_new_points_or_box(state, obj["frame"], obj["track_id"], box=obj["box"])
            limit = None if num_frames is None else num_frames - 1
            for reverse in {"forward": [False], "backward": [True], "both": [False, True]}[direction]:
                for frame_idx, _ids, logits in predictor.propagate_in_video(state, start, limit, reverse=reverse):
                    masks = (logits > 0).cpu().numpy()[:, 0]
                    record(frame_idx, list(masks), shape)
            del state
    else:
        from sam2_tracking.engine.tracker import track_objects
        from sam2_tracking.engine.video import open_video
        from sam2_tracking.types import Box, Direction, ObjectSeeds, Seed

        seeds = [ObjectSeeds(o["track_id"], (Seed(o["frame"], box=Box(*o["box"])),)) for o in objects]
        with open_video(spec["clip_dir"]) as frames:
            shape = (frames.height, frames.width)
            def first_mask(_progress) -> None:
                # our masks arrive a batch at a time; the first one exists as soon as its frame is done
                nonlocal first_mask_s
                if first_mask_s is None:
                    first_mask_s = time.perf_counter() - t0

            for batch in track_objects(
                predictor, frames, seeds, start, num_frames, Direction(direction), spec["batch_size"],
                on_progress=first_mask, feeder_threads=spec.get("feeder_threads"),
            ):
                for k in range(0, len(batch), len(seeds)):
                    group = batch[k : k + len(seeds)]
                    record(group[0].frame_idx, [fm.mask_array() for fm in group], shape)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    result = {
        "runner": spec["runner"],
        "seconds": seconds,
        "frames": frames_done,
        "fps": frames_done / seconds,
        "first_mask_s": first_mask_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "digest": stream_digest.hexdigest(),
        "digests": {str(k): v for k, v in digests.items()},
    }
    if device.startswith("cuda"):
        result["gpu"] = torch.cuda.get_device_name()
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def compare(stock: dict, stream: dict) -> tuple[int, int]:
    """(identical_frames, compared_frames): frames of the stock run whose masks ours reproduced exactly."""
    ours = stream["digests"]
    identical = sum(1 for k, v in stock["digests"].items() if ours.get(k) == v)
    return identical, len(stock["digests"])


if __name__ == "__main__":
    spec_file, result_file = sys.argv[1], sys.argv[2]
    Path(result_file).write_text(json.dumps(_worker(json.loads(Path(spec_file).read_text()))))
