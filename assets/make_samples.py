"""Regenerate the sample clips in assets/ (deterministic; the outputs are committed).

    python assets/make_samples.py

Writes:
  sample_shapes.mp4        H.264, 640x360, 150 frames at 30 fps: a red disc and a blue square moving over a texture
  sample_shapes.json       the seed box of each object on frame 0, so a new user can track at once
  sample_sequence.zip      60 JPEG frames (frame_0000.jpg ...) of a green ellipse: the image-sequence sample
  sample_sequence.json     its seed box
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WIDTH, HEIGHT = 640, 360


def _background(rng: np.random.Generator, noise_sigma: float = 12.0) -> np.ndarray:
    """A textured, slightly noisy background: tracking on a flat colour would be too easy to be a fair sample."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    base = 90 + 40 * np.sin(xx / 23.0) * np.cos(yy / 17.0) + 30 * (xx / WIDTH)
    noise = rng.normal(0, noise_sigma, size=(HEIGHT, WIDTH)).astype(np.float32)
    gray = np.clip(base + noise, 0, 255)
    return np.stack([gray * 0.9, gray, gray * 0.8], axis=-1).astype(np.uint8)


def shapes_frame(background: np.ndarray, frame_idx: int) -> tuple[np.ndarray, dict[str, list[int]]]:
    """Draw frame frame_idx of the shapes clip; return the image and each object's box (x1, y1, x2, y2)."""
    img = background.copy()
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    t = frame_idx / 30.0
    # Red disc on a slow ellipse; blue square drifting left to right and bobbing.
    cx, cy, r = 320 + 180 * np.cos(t * 0.9), 180 + 90 * np.sin(t * 0.9), 38
    disc = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    img[disc] = (215, 40, 40)
    sx, sy, half = 80 + frame_idx * 3.0, 90 + 40 * np.sin(t * 2.0), 32
    square = (np.abs(xx - sx) <= half) & (np.abs(yy - sy) <= half)
    img[square] = (40, 70, 220)
    boxes = {
        "red disc": [int(cx - r), int(cy - r), int(cx + r), int(cy + r)],
        "blue square": [int(sx - half), int(sy - half), int(sx + half), int(sy + half)],
    }
    return img, boxes


def write_shapes_clip(frame_count: int = 150, fps: int = 30) -> None:
    import av

    rng = np.random.default_rng(7)
    background = _background(rng)
    path = HERE / "sample_shapes.mp4"
    seed_boxes = None
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        # Keyframe every 30 frames keeps random access quick; crf 23 keeps the file small.
        stream.options = {"crf": "23", "g": "30", "preset": "medium"}
        for idx in range(frame_count):
            img, boxes = shapes_frame(background, idx)
            if idx == 0:
                seed_boxes = boxes
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    meta = {
        "video": path.name,
        "frames": frame_count,
        "fps": fps,
        "width": WIDTH,
        "height": HEIGHT,
        "seeds": [{"label": label, "frame": 0, "box": box} for label, box in seed_boxes.items()],
    }
    (HERE / "sample_shapes.json").write_text(json.dumps(meta, indent=2) + "\n")


def write_sequence_zip(frame_count: int = 60) -> None:
    from PIL import Image

    rng = np.random.default_rng(11)
    # Less noise than the video: per-pixel noise makes every JPEG large and the zip would reach several MB.
    background = _background(rng, noise_sigma=4.0)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    first_box = None
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as archive:
        for idx in range(frame_count):
            img = background.copy()
            cx, cy, rx, ry = 120 + idx * 6.0, 200 - 60 * np.sin(idx / 12.0), 55, 30
            ellipse = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0
            img[ellipse] = (40, 190, 60)
            if idx == 0:
                first_box = [int(cx - rx), int(cy - ry), int(cx + rx), int(cy + ry)]
            jpeg = io.BytesIO()
            Image.fromarray(img).save(jpeg, format="JPEG", quality=80)
            archive.writestr(f"frame_{idx:04d}.jpg", jpeg.getvalue())
    (HERE / "sample_sequence.zip").write_bytes(buf.getvalue())
    meta = {
        "video": "sample_sequence.zip",
        "frames": frame_count,
        "fps": 10,
        "width": WIDTH,
        "height": HEIGHT,
        "seeds": [{"label": "green ellipse", "frame": 0, "box": first_box}],
    }
    (HERE / "sample_sequence.json").write_text(json.dumps(meta, indent=2) + "\n")


if __name__ == "__main__":
    write_shapes_clip()
    write_sequence_zip()
    for name in ("sample_shapes.mp4", "sample_sequence.zip"):
        print(name, (HERE / name).stat().st_size // 1024, "KiB")
