"""The round-trip table: for each pair of formats (A, B) of DIVE JSON, mask zip, COCO and VIAME CSV,
export A -> import -> export B -> import -> export A keeps every field both A and B can hold, and gives the same
bytes where B holds everything A holds."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from sam2_tracking.formats import load_annotations, write_annotations
from sam2_tracking.formats.dive import dive_bounds
from tests.test_interop_dive import FPS, FRAMES, H, W, build_annotations

FORMATS = ("dive", "maskzip", "coco", "viame")
EXT = {"dive": "json", "maskzip": "zip", "coco": "json", "viame": "csv"}
# What each format holds (FORMATS.md): "unmasked" = features without a mask; "bounds" = DIVE's integer box.
HOLDS = {
    "dive": {"pairs", "track_attrs", "absent", "box", "keyframe", "clicks", "attrs", "score", "unmasked", "bounds"},
    "maskzip": {"pairs", "track_attrs", "absent", "box", "keyframe", "clicks", "attrs", "score", "unmasked",
                "bounds", "mask"},
    "coco": {"pairs", "track_attrs", "absent", "box", "keyframe", "clicks", "attrs", "score", "bounds", "mask"},
    "viame": {"sorted_pairs", "track_attrs", "attrs", "unmasked", "bounds", "mask"},
}
# Pairs whose second leg holds everything the first format holds: the file comes back byte for byte.
SAME_BYTES = {(a, a) for a in FORMATS} | {("dive", "maskzip"), ("coco", "maskzip"), ("viame", "maskzip")}


def view(annotations, first: str, second: str):
    """The fields of `annotations` that both formats hold, in a comparable form."""
    holds = HOLDS[first] & HOLDS[second]
    if "sorted_pairs" in HOLDS[first] | HOLDS[second]:
        holds = (holds - {"pairs"}) | {"sorted_pairs"}
    out = []
    for track in annotations.tracks:
        features = []
        for f in track.features:
            masked = f.rle is not None or f.frame_idx in track.masks_elsewhere
            if not f.present:
                if "absent" in holds:
                    features.append((f.frame_idx, "absent", f.score if "score" in holds else None))
                continue
            if "coco" in (first, second) and not (f.rle is not None and "mask" in holds):
                continue  # COCO holds only frames with a mask, and both formats must carry the mask itself
            if not masked and "unmasked" not in holds:
                continue
            features.append((
                f.frame_idx,
                f.box if "box" in holds else None,
                dive_bounds(f, track.masks_elsewhere.get(f.frame_idx)),
                f.rle if "mask" in holds else None,
                f.keyframe if "keyframe" in holds else None,
                f.clicks if "clicks" in holds else None,
                f.attributes,
                f.score if "score" in holds else None,
            ))
        if not features:
            continue
        pairs = sorted(track.confidence_pairs, key=lambda p: -p[1]) if "sorted_pairs" in holds else \
            track.confidence_pairs
        out.append((track.track_id, tuple(pairs), track.attributes, features))
    return out


def in_video(annotations):
    """What an export knows besides the file (the app and `convert --video` give the video): size, frames, fps."""
    return replace(annotations, width=W, height=H, frame_count=FRAMES, fps=FPS, name="clip.mp4")


@pytest.mark.parametrize(("first", "second"), list(itertools.product(FORMATS, FORMATS)))
def test_round_trip_table(store, tmp_path, first, second):
    source = build_annotations(store)
    x = write_annotations(source, tmp_path / f"x.{EXT[first]}", first)
    a = load_annotations(x, frame_size=(H, W))
    y = write_annotations(in_video(a), tmp_path / f"y.{EXT[second]}", second)
    b = load_annotations(y, frame_size=(H, W))
    z = write_annotations(in_video(b), tmp_path / f"z.{EXT[first]}", first)
    a2 = load_annotations(z, frame_size=(H, W))
    assert view(a2, first, second) == view(a, first, second)
    assert view(a, first, second), "the table compares nothing for this pair"
    if (first, second) in SAME_BYTES:
        assert z.read_bytes() == x.read_bytes()
