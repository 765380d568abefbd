"""Speed, memory and exactness of our streaming tracker against the stock SAM2VideoPredictor.

    python benchmarks/tracking.py --frames N --batch-size B --objects K --image-size S
        [--direction forward|backward|both] [--device cpu|cuda] [--skip-stock] [--width W --height H]

Builds the test model at image size S (SAM2.1 Tiny architecture, seeded random weights), writes a synthetic clip of N
JPEG frames with K moving squares, runs the stock predictor (init_state on the folder, a box per object, propagate)
and our tracker (reading the same folder lazily) each in its own subprocess, and prints one JSON object.
fps counts video frames (the start frame once for `both`), whatever the number of objects.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import (  # noqa: E402  (the script runs from any directory)
    REPO,
    compare,
    model_dir,
    run_in_subprocess,
    shape_box,
    start_frame,
    write_clip,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, required=True, help="clip length in frames")
    parser.add_argument("--batch-size", type=int, required=True, help="frames per batch for our tracker")
    parser.add_argument("--objects", type=int, required=True, help="objects tracked in the one job")
    parser.add_argument("--image-size", type=int, required=True, help="model input size (multiple of 16)")
    parser.add_argument("--direction", choices=("forward", "backward", "both"), default="forward")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--skip-stock", action="store_true", help="run only our tracker")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads in each run (0: torch's default)")
    args = parser.parse_args(argv)
    if args.frames < 1 or args.objects < 1 or args.batch_size < 1:
        parser.error("--frames, --objects and --batch-size must be at least 1")
    return args


def job_spec(args: argparse.Namespace, runner: str, clip: Path) -> dict:
    start = start_frame(args.direction, args.frames)
    return {
        "runner": runner,
        "model_dir": str(model_dir(args.image_size)),
        "clip_dir": str(clip),
        "device": args.device,
        "threads": args.threads,
        "start": start,
        "num_frames": None,
        "direction": args.direction,
        "batch_size": args.batch_size,
        "objects": [
            {"track_id": k + 1, "frame": start, "box": list(shape_box(k, start, args.width, args.height))}
            for k in range(args.objects)
        ],
    }


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    clip = write_clip(
        REPO / ".cache" / "bench-clips" / f"{args.frames}f-{args.objects}o-{args.width}x{args.height}",
        args.frames, args.objects, args.width, args.height,
    )
    stream = run_in_subprocess(job_spec(args, "stream", clip))
    stock = None if args.skip_stock else run_in_subprocess(job_spec(args, "stock", clip))
    out = {
        "frames": args.frames,
        "objects": args.objects,
        "batch_size": args.batch_size,
        "image_size": args.image_size,
        "direction": args.direction,
        "device": args.device,
        "frame_size": f"{args.width}x{args.height}",
        "stock_fps": round(stock["fps"], 3) if stock else None,
        "stream_fps": round(stream["fps"], 3),
        "fps_ratio": round(stream["fps"] / stock["fps"], 3) if stock else None,
        "stock_peak_rss_mb": round(stock["peak_rss_mb"], 1) if stock else None,
        "stream_peak_rss_mb": round(stream["peak_rss_mb"], 1),
        "stock_seconds": round(stock["seconds"], 2) if stock else None,
        "stream_seconds": round(stream["seconds"], 2),
        "stock_first_mask_s": round(stock["first_mask_s"], 3) if stock else None,
        "stream_first_mask_s": round(stream["first_mask_s"], 3),
        "identical_frames": None,
        "compared_frames": None,
    }
    if stock:
        out["identical_frames"], out["compared_frames"] = compare(stock, stream)
    for key in ("gpu", "peak_gpu_mb"):
        if key in stream:
            out[f"stream_{key}"] = stream[key]
            if stock:
                out[f"stock_{key}"] = stock[key]
    return out


if __name__ == "__main__":
    print(json.dumps(main()))
