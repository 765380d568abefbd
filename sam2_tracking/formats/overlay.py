"""Overlay video (MP4, H.264 through PyAV): each track's mask filled and outlined in its colour, with box and label.

`render_overlay` is pure (one frame in, one frame out); `write_overlay_video` streams frames from any iterable of
(frame_idx, RGB uint8 frame), so a long video is never held in memory. Masks are decoded one frame at a time and
not cached on the features for the same reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sam2_tracking.annotation_set import AnnotationSet, Feature
from sam2_tracking.engine.masks import draw_overlay, rle_to_mask, track_colour


def features_by_frame(annotations: AnnotationSet) -> dict[int, list[tuple[str, Feature]]]:
    """{frame_idx: [(label, feature), ...]} of present features, in track order."""
    out: dict[int, list[tuple[str, Feature]]] = {}
    for track in annotations.tracks:
        for feature in track.present_features:
            out.setdefault(feature.frame_idx, []).append((track.label, feature))
    return out


def render_overlay(frame: np.ndarray, labelled: list[tuple[str, Feature]]) -> np.ndarray:
    """The frame with each feature's mask, outline, box and `label #track_id` drawn in its track's colour."""
    items = []
    for _label, feature in labelled:
        mask = None if feature.rle is None else rle_to_mask(feature.rle)
        items.append((feature.track_id, mask, feature.box))
    out = draw_overlay(frame, items)
    if not labelled:
        return out
    image = Image.fromarray(out)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    for label, feature in labelled:
        if feature.box is None:
            continue
        text = f"{label} #{feature.track_id}"
        x, y = max(int(feature.box.x1), 0), max(int(feature.box.y1) - 12, 0)
        left, top, right, bottom = draw.textbbox((x, y), text, font=font)
        draw.rectangle((left - 1, top - 1, right + 1, bottom + 1), fill=track_colour(feature.track_id))
        draw.text((x, y), text, fill=(0, 0, 0), font=font)
    return np.asarray(image)


def write_overlay_video(
    annotations: AnnotationSet,
    frames: Iterable[tuple[int, np.ndarray]],
    path: str | os.PathLike,
    fps: float,
    codec: str = "libx264",
) -> Path:
    """Encode the overlaid frames to path; returns it. frames: (frame_idx, RGB uint8 (height, width, 3))."""
    import av

    path = Path(path)
    labelled = features_by_frame(annotations)
    rate = Fraction(fps).limit_denominator(1001) if fps and fps > 0 else Fraction(30)
    # faststart moves the index (moov) to the front so a browser can play the file while it downloads.
    with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = None
        for frame_idx, frame in frames:
            out = render_overlay(frame, labelled.get(frame_idx, []))
            # H.264 with yuv420p needs even sizes: drop a last odd row/column rather than rescale.
            out = out[: out.shape[0] // 2 * 2, : out.shape[1] // 2 * 2]
            if stream is None:
                stream = container.add_stream(codec, rate=rate)
                stream.width, stream.height = out.shape[1], out.shape[0]
                stream.pix_fmt = "yuv420p"
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(out), format="rgb24")
            for packet in stream.encode(video_frame):
                container.mux(packet)
        if stream is None:
            raise ValueError(f"no frames to write to {path}")
        for packet in stream.encode():
            container.mux(packet)
    return path
