"""One GPU run, one command: stock SAM2 vs our pipeline vs compiled, for SAM2.1 Tiny and Large.

    python benchmarks/gpu.py --quick                      # on a CUDA machine, under 8 minutes
    python benchmarks/gpu.py --quick --device cpu --image-size 256 --frames 8   # smoke check without a GPU

Builds every model with random weights from the configs sam2 ships (no download) and makes its own test clip: an
H.264 1080p MP4 (what annotators upload) and the same frames as a JPEG folder (what stock `init_state` reads).
For each model and 1 or 3 objects it times, after a warm-up:
- stock: `init_state` on the JPEG folder + `propagate_in_video` (fps over the propagated frames, and the
  propagation alone);
- ours: `track_objects` end to end from the MP4 (decoding, the feeder, RLE results);
- compiled (CUDA, Tiny; Large too without --quick): ours on sam2's SAM2VideoPredictorVOS, warmed up first.
It reports peak GPU memory per run, the share of our run's wall time the model waited for frames
(`gpu_wait_share`), the cost of objects 2, 3 and 4 (ours, Tiny), whether our masks equal stock's on the JPEG
frames, and the card. Prints one JSON object. Refuses (exit 2) when CUDA is asked for and not available.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks._common import shape_box  # noqa: E402

CONFIGS = {"tiny": "configs/sam2.1/sam2.1_hiera_t.yaml", "large": "configs/sam2.1/sam2.1_hiera_l.yaml"}


def write_clip(folder: Path, frames: int, width: int, height: int, objects: int = 4) -> tuple[Path, Path]:
    """(mp4, jpeg folder) of the same synthetic frames; the JPEGs are written from the decoded MP4 frames."""
    import av
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    mp4, jpegs = folder / "clip.mp4", folder / "jpeg"
    if (folder / ".complete").exists():
        return mp4, jpegs
    rng = np.random.default_rng(5)
    texture = rng.integers(0, 60, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    texture = texture[:height, :width]
    with av.open(str(mp4), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"g": "30", "bf": "2", "crf": "20", "preset": "veryfast"}
        for idx in range(frames):
            frame = np.roll(texture, idx * 4, axis=1) + 60
            for obj in range(objects):
                x1, y1, x2, y2 = shape_box(obj, idx, width, height)
                frame[y1:y2, x1:x2] = [(220, 40, 40), (40, 90, 220), (240, 220, 40), (40, 200, 90)][obj % 4]
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    jpegs.mkdir(exist_ok=True)
    with av.open(str(mp4)) as container:
        for idx, frame in enumerate(container.decode(video=0)):
            Image.fromarray(frame.to_ndarray(format="rgb24")).save(jpegs / f"{idx:05d}.jpg", quality=95)
    (folder / ".complete").write_text("ok")
    return mp4, jpegs


def build(model: str, image_size: int, device: str):
    import torch
    from sam2.build_sam import build_sam2_video_predictor

    torch.manual_seed(0)
    # Package configs and our own overrides only (no user input reaches Hydra here).
    return build_sam2_video_predictor(CONFIGS[model], None, device=device,
                                      hydra_overrides_extra=[f"++model.image_size={image_size}"])


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _reset_peak(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _peak_mb(device: str) -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**20, 1) if device.startswith("cuda") else None


def boxes(objects: int, width: int, height: int) -> list[list[int]]:
    return [list(shape_box(k, 0, width, height)) for k in range(objects)]


def run_stock(predictor, jpegs: Path, objects: int, width: int, height: int, device: str) -> dict:
    import numpy as np

    from sam2_tracking.models.catalogue import inference_context

    masks = {}
    _reset_peak(device)
    t0 = time.perf_counter()
    with inference_context(device):
        state = predictor.init_state(str(jpegs))
        for k, box in enumerate(boxes(objects, width, height)):
            predictor.add_new_points_or_box(state, 0, k + 1, box=np.array(box, dtype=np.float32))
        _sync(device)
        t1 = time.perf_counter()
        for frame_idx, _ids, logits in predictor.propagate_in_video(state, 0):
            masks[frame_idx] = (logits > 0).cpu().numpy()[:, 0]
        _sync(device)
    t2 = time.perf_counter()
    frames = len(masks)
    del state
    return {"fps": round(frames / (t2 - t0), 2), "propagate_fps": round(frames / (t2 - t1), 2),
            "peak_gpu_mb": _peak_mb(device), "masks": masks}


def run_ours(predictor, video: Path, objects: int, width: int, height: int, device: str,
             feeder_threads: int | None) -> dict:
    import numpy as np

    from sam2_tracking.engine.tracker import track_objects
    from sam2_tracking.engine.video import open_video
    from sam2_tracking.types import Box, Direction, ObjectSeeds, Seed

    seeds = [ObjectSeeds(k + 1, (Seed(0, box=Box(*box)),)) for k, box in enumerate(boxes(objects, width, height))]
    masks = {}
    waited = 0.0
    _reset_peak(device)
    t0 = time.perf_counter()
    with open_video(video) as frames:
        for batch in track_objects(predictor, frames, seeds, 0, None, Direction.FORWARD, 100,
                                   feeder_threads=feeder_threads):
            waited = batch.frames_wait_s
            for k in range(0, len(batch), objects):
                group = batch[k : k + objects]
                masks[group[0].frame_idx] = np.stack([
                    fm.mask_array() if fm.present else np.zeros((height, width), bool) for fm in group])
    _sync(device)
    seconds = time.perf_counter() - t0
    return {"fps": round(len(masks) / seconds, 2), "gpu_wait_share": round(waited / seconds, 4),
            "peak_gpu_mb": _peak_mb(device), "masks": masks}


def identical(a: dict, b: dict) -> bool:
    import numpy as np

    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="60 frames, compiled Tiny only: under 8 minutes")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--image-size", type=int, default=1024)
    parser.add_argument("--frames", type=int, default=None, help="clip length (default 60 with --quick, else 300)")
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--models", default="tiny,large")
    parser.add_argument("--feeder-threads", type=int, default=None)
    parser.add_argument("--skip-compiled", action="store_true")
    args = parser.parse_args(argv)
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(json.dumps({"error": "no CUDA GPU visible: this benchmark is for a GPU machine (or pass --device cpu "
                                   "--image-size 256 --frames 8 for a smoke check)"}))
        sys.exit(2)
    os.environ.setdefault("TQDM_DISABLE", "1")
    frames = args.frames or (60 if args.quick else 300)
    started = time.perf_counter()
    mp4, jpegs = write_clip(REPO / ".cache" / "bench-clips" / f"gpu-{args.width}x{args.height}-{frames}f", frames,
                            args.width, args.height)
    out: dict = {"device": args.device, "card": torch.cuda.get_device_name() if args.device.startswith("cuda")
                 else "cpu", "image_size": args.image_size, "frames": frames,
                 "video": f"H.264 {args.width}x{args.height}", "cpus": os.cpu_count(), "runs": {}}
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        predictor = build(model, args.image_size, args.device)
        run_ours(predictor, mp4, 1, args.width, args.height, args.device, args.feeder_threads)  # warm-up
        for objects in (1, 3):
            stock = run_stock(predictor, jpegs, objects, args.width, args.height, args.device)
            ours = run_ours(predictor, mp4, objects, args.width, args.height, args.device, args.feeder_threads)
            # Stock reads JPEGs, ours the MP4: compare masks on the same decoded pixels only where they are the
            # same (never for lossy JPEGs), so report it from the JPEG folder read by our tracker as well.
            ours_jpeg = run_ours(predictor, jpegs, objects, args.width, args.height, args.device, args.feeder_threads)
            out["runs"][f"{model}_{objects}obj"] = {
                "stock_fps": stock["fps"], "stock_propagate_fps": stock["propagate_fps"],
                "stock_peak_gpu_mb": stock["peak_gpu_mb"],
                "ours_fps": ours["fps"], "ours_peak_gpu_mb": ours["peak_gpu_mb"],
                "ours_gpu_wait_share": ours["gpu_wait_share"],
                "ours_over_stock": round(ours["fps"] / stock["fps"], 3),
                "masks_identical_to_stock_on_jpegs": identical(stock["masks"], ours_jpeg["masks"]),
            }
        if model == "tiny":
            per_object = {}
            for objects in (1, 2, 3, 4):
                run = run_ours(predictor, mp4, objects, args.width, args.height, args.device, args.feeder_threads)
                per_object[objects] = 1000.0 / run["fps"]
            out["tiny_ms_per_frame_by_objects"] = {k: round(v, 2) for k, v in per_object.items()}
            out["tiny_ms_per_extra_object"] = {f"object_{k}": round(per_object[k] - per_object[k - 1], 2)
                                               for k in (2, 3, 4)}
        compile_this = args.device.startswith("cuda") and not args.skip_compiled and (model == "tiny" or not
                                                                                       args.quick)
        if compile_this:
            from sam2_tracking.engine.compiled import compiled_predictor

            t0 = time.perf_counter()
            compiled = compiled_predictor(predictor)
            out[f"{model}_compile_warmup_s"] = round(time.perf_counter() - t0, 1)
            for objects in (1, 3):
                run = run_ours(compiled, mp4, objects, args.width, args.height, args.device, args.feeder_threads)
                key = f"{model}_{objects}obj"
                out["runs"][key]["compiled_fps"] = run["fps"]
                out["runs"][key]["compiled_over_uncompiled"] = round(run["fps"] / out["runs"][key]["ours_fps"], 3)
                out["runs"][key]["compiled_gpu_wait_share"] = run["gpu_wait_share"]
        elif not args.device.startswith("cuda"):
            out["compiled"] = "skipped: compiled mode needs CUDA"
        del predictor
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out


if __name__ == "__main__":
    print(json.dumps(main()))
