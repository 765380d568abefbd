"""What the frame feeder costs and delivers on the CPU, and how often a tracking job decodes each frame.

    python benchmarks/feeder.py [--video CLIP.mp4] [--frames 120] [--image-size 1024] [--job-frames 90]
        [--job-image-size 256] [--skip-job]

Without --video it writes its own 1080p H.264 clip (moving shapes over a textured background, GOP 30, B-frames).
Feeder: the clip's frames through sam2_tracking.engine.feeder.FrameFeeder (decode, PIL resize to image-size, uint8 hand-over)
with 1 and 2 worker threads, timed in wall time from the consumer's side; CPU ms per frame by stage (thread time).
Decodes: a tracking job (the test model, random weights, at --job-image-size) forward, backward and both over the
clip's first --job-frames frames, with a preview every 5 % as the runner asks for, counting the frames the decoder
produced per frame tracked. Prints one JSON object.
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

from benchmarks._common import model_dir, shape_box  # noqa: E402


def write_h264_clip(path: Path, frames: int, width: int = 1920, height: int = 1080, gop: int = 30) -> Path:
    """A 1080p H.264 clip with texture (so the encoder works like on camera footage), cached by its parameters."""
    import av
    import numpy as np

    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    texture = rng.integers(0, 60, (height // 8, width // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    tmp = path.with_suffix(".part.mp4")
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"g": str(gop), "bf": "2", "crf": "23", "preset": "veryfast"}
        for idx in range(frames):
            frame = np.roll(texture, idx * 4, axis=1) + 60
            for obj in range(2):
                x1, y1, x2, y2 = shape_box(obj, idx, width, height)
                frame[y1:y2, x1:x2] = (220, 40, 40) if obj == 0 else (40, 90, 220)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, path)
    return path


def feed(video: Path, frames: int, image_size: int, threads: int) -> dict:
    from sam2_tracking.engine.feeder import FrameFeeder
    from sam2_tracking.engine.video import open_video

    with open_video(video) as source:
        count = min(frames, source.frame_count)
        feeder = FrameFeeder(source, image_size, "cpu", threads=threads)
        cpu0, t0 = time.process_time(), time.perf_counter()
        feeder.expect(range(count))
        for idx in range(count):
            image = feeder.take_uint8(idx)
            assert tuple(image.shape) == (image_size, image_size, 3)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        stages = {k: round(v * 1000 / count, 2) for k, v in feeder.stage_seconds.items()}
        feeder.close()
    return {"ms_per_frame": wall * 1000 / count, "fps": count / wall, "cpu_ms_per_frame": cpu * 1000 / count,
            "stages": stages}


def decodes_per_frame(video: Path, frames: int, image_size: int, direction: str) -> float:
    """A tracking job over the whole clip (`frames` long) with a preview every 5 % of it, as the runner asks for
    them: frames the decoder produced per frame tracked."""
    import torch

    from sam2_tracking.engine.plan import FramePlan
    from sam2_tracking.engine.tracker import track_objects
    from sam2_tracking.engine.video import open_video
    from sam2_tracking.jobs.plan import frames_with_notification
    from sam2_tracking.models.catalogue import load_predictor
    from sam2_tracking.types import Box, Direction, ObjectSeeds, Seed

    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
    predictor = load_predictor(model_dir(image_size), "cpu")
    start = {"forward": 0, "backward": frames - 1, "both": frames // 2}[direction]
    with open_video(video) as source:
        order = FramePlan(start, frames, None, direction).frames()
        previews = frames_with_notification(order, 5)
        objects = [ObjectSeeds(k + 1, (Seed(start, box=Box(*shape_box(k, start, source.width, source.height))),))
                   for k in range(2)]
        shown = []
        tracked = 0
        for batch in track_objects(predictor, source, objects, start, None, Direction(direction), 100, preview_frames=previews,
                                   on_preview=lambda idx, _rgb, _results: shown.append(idx)):
            tracked += len(batch) // len(objects)
        if sorted(shown) != sorted(previews & set(order)):
            raise RuntimeError("previews missing")
        return source.decoded_frames / tracked


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path)
    parser.add_argument("--frames", type=int, default=120, help="frames fed per feeder measurement")
    parser.add_argument("--image-size", type=int, default=1024)
    parser.add_argument("--job-frames", type=int, default=90, help="frames per direction in the decode-count jobs")
    parser.add_argument("--job-image-size", type=int, default=256)
    parser.add_argument("--skip-job", action="store_true")
    args = parser.parse_args(argv)
    video = args.video or write_h264_clip(REPO / ".cache" / "bench-clips" / "feeder-1080p-240f-g30.mp4", 240)
    from sam2_tracking.engine.video import probe_video

    info = probe_video(video)
    one = feed(video, args.frames, args.image_size, 1)
    two = feed(video, args.frames, args.image_size, 2)
    out = {
        "video": f"{info.width}x{info.height} {info.frame_count} frames", "image_size": args.image_size,
        "cpus": os.cpu_count(),
        "ms_per_frame_1_thread": round(one["ms_per_frame"], 2),
        "fps_1_thread": round(one["fps"], 2),
        "fps_2_threads": round(two["fps"], 2),
        "speedup_2_threads": round(two["fps"] / one["fps"], 3),
        "cpu_ms_per_frame_1_thread": round(one["cpu_ms_per_frame"], 2),
        "cpu_ms_per_frame_by_stage": one["stages"],
    }
    if not args.skip_job:
        clip = video
        if info.frame_count > args.job_frames:
            # the job runs over a clip of exactly job_frames frames, so `both` covers it end to end
            clip = write_h264_clip(REPO / ".cache" / "bench-clips" / f"feeder-1080p-{args.job_frames}f-g30.mp4",
                                   args.job_frames) if args.video is None else video
        for direction in ("forward", "backward", "both"):
            out[f"decodes_per_frame_{direction}"] = round(
                decodes_per_frame(clip, min(args.job_frames, probe_video(clip).frame_count), args.job_image_size,
                                  direction), 3)
    return out


if __name__ == "__main__":
    print(json.dumps(main()))
