"""Exports and imports through real files and a real store: exact round trips, COCO checks, VIAME, overlay MP4."""

from __future__ import annotations

import csv
import json
import zipfile

import av
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from sam2_tracking.formats import load_annotations, write_annotations
from sam2_tracking.formats.coco import annotations_to_coco
from sam2_tracking.formats.dive import annotations_to_dive, dive_to_annotations
from sam2_tracking.formats.maskzip import load_mask_zip, write_mask_zip
from sam2_tracking.formats.viame import mask_outer_contour
from sam2_tracking.masks import mask_outline, track_colour
from sam2_tracking.store import UpsertKeyframe
from sam2_tracking.types import Box, Click, FrameMask, JobSpec

W, H, FRAMES = 64, 48, 30


def blob(frame_idx: int, track_idx: int) -> np.ndarray:
    yy, xx = np.mgrid[:H, :W]
    mask = (xx - 12 - frame_idx - 20 * track_idx) ** 2 / 36 + (yy - 20 - track_idx * 5) ** 2 / 16 <= 1
    mask[2 + track_idx, 40:44] = frame_idx % 2 == 0  # a second, smaller part on every other frame
    return mask


@pytest.fixture()
def filled(store):
    """A dataset with two tracks: keyframes (box, clicks, attributes, one mask) and a job's masks and absences."""
    ds = store.add_dataset("clip", "/v/clip.mp4", "video", FRAMES, 25.0, W, H)
    fish = store.create_track(ds.dataset_id, "fish", 0.75, {"species": "cod"}).track_id
    crab = store.create_track(ds.dataset_id, "crab").track_id
    store.save_edits(ds.dataset_id, 0, [
        UpsertKeyframe(fish, 0, box=Box(5.5, 13, 20, 28), clicks=(Click(12, 20), Click(30, 5, False)),
                       attributes={"quality": 3}),
        UpsertKeyframe(crab, 2, mask=blob(2, 1)),
    ])
    job = store.create_job(JobSpec(ds.dataset_id, (fish, crab), 0, "tiny", "cpu", num_frames=12), 12)
    store.claim_job(job.job_id, "w")
    batch = []
    for f in range(12):
        batch.append(FrameMask(f, fish, True, 3.25, blob(f, 0)))
        batch.append(FrameMask(f, crab, f < 9, 1.5 if f < 9 else -2.0, blob(f, 1) if f < 9 else None))
    store.write_job_batch(job.job_id, batch)
    return ds


def comparable(annotations, with_masks=True, with_scores=False):
    out = []
    for track in annotations.tracks:
        features = [
            (f.frame_idx, f.box, f.rle if with_masks else None, f.keyframe, f.clicks, f.attributes,
             f.score if with_scores else None)
            for f in track.present_features
        ]
        out.append((track.label, track.confidence_pairs, track.attributes, features))
    return out


def reimport(store, annotations):
    ds = store.add_dataset("copy", "/v/copy.mp4", "video", FRAMES, 25.0, W, H)
    store.import_annotations(ds.dataset_id, annotations)
    return store.export_annotations(ds.dataset_id)


@pytest.mark.parametrize("fmt", ["maskzip", "coco", "dive"])
def test_round_trip_is_exact(store, filled, tmp_path, fmt):
    original = store.export_annotations(filled.dataset_id)
    path = tmp_path / f"out.{fmt}"
    write_annotations(original, path, fmt)
    back = reimport(store, load_annotations(path))
    if fmt == "coco":  # COCO carries masked frames only: the clicks-and-box keyframe keeps its box and mask
        expected = [
            (label, pairs, attrs, [(f, b, r, k, (), {}, None) for f, b, r, k, _c, _a, _s in feats if r is not None])
            for label, pairs, attrs, feats in comparable(original)
        ]
        assert comparable(back) == expected
        assert comparable(back, with_scores=True)[0][3][1][6] == 3.25
    else:
        assert comparable(back, with_masks=fmt != "dive") == comparable(original, with_masks=fmt != "dive")
    # Exporting the imported copy gives the same file content again (ids aside).
    again = tmp_path / f"again.{fmt}"
    write_annotations(back, again, fmt)
    assert comparable(load_annotations(again)) == comparable(load_annotations(path))


def test_coco_segmentations_decode_to_the_stored_masks(store, filled):
    annotations = store.export_annotations(filled.dataset_id)
    coco = json.loads(json.dumps(annotations_to_coco(annotations)))
    assert len(coco["images"]) == FRAMES and {c["name"] for c in coco["categories"]} == {"fish", "crab"}
    stored = {(t.track_id, f.frame_idx): f for t in annotations.tracks for f in t.features}
    assert len(coco["annotations"]) == 12 + 9
    for ann in coco["annotations"]:
        feature = stored[(ann["track_id"], ann["image_id"] - 1)]
        rle = {"size": ann["segmentation"]["size"], "counts": ann["segmentation"]["counts"].encode()}
        decoded = mask_utils.decode(rle).astype(bool)
        assert np.array_equal(decoded, feature.mask)
        assert ann["area"] == int(mask_utils.area(rle)) == int(feature.mask.sum())
        assert ann["bbox"] == feature.box.as_xywh() and ann["iscrowd"] == 0
        assert isinstance(ann["segmentation"]["counts"], str)


def test_dive_json_has_tracks_groups_and_has_mask(store, filled):
    dive = annotations_to_dive(store.export_annotations(filled.dataset_id))
    assert dive["version"] == 2 and dive["groups"] == {}
    fish, crab = dive["tracks"].values()
    assert fish["confidencePairs"] == [["fish", 0.75]] and fish["attributes"] == {"species": "cod"}
    assert (fish["begin"], fish["end"], crab["begin"], crab["end"]) == (0, 11, 0, 8)
    assert fish["features"][0]["keyframe"] and fish["features"][0]["bounds"] == [5.5, 13, 20, 28]
    assert all(f["hasMask"] for f in fish["features"]) and len(crab["features"]) == 9  # absent frames left out
    groups = {"0": {"id": 0, "members": {str(fish["id"]): {"ranges": [[0, 5]]}}, "meta": {}, "attributes": {},
                    "confidencePairs": [["school", 1]], "begin": 0, "end": 5}}
    assert dive_to_annotations({**dive, "groups": groups}).groups == groups


def test_mask_zip_layout_and_masks_without_track_json(store, filled, tmp_path):
    annotations = store.export_annotations(filled.dataset_id)
    path = write_mask_zip(annotations, tmp_path / "masks.zip", track_json=False, rle=False)
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    fish_id = annotations.tracks[0].track_id
    assert f"masks/{fish_id}/0.png" in names and f"masks/{fish_id}/11.png" in names
    loaded = load_mask_zip(path)
    for original, back in zip(annotations.tracks, loaded.tracks, strict=True):
        masked = [f for f in original.present_features if f.rle is not None]
        assert [(f.frame_idx, f.rle) for f in back.features] == [(f.frame_idx, f.rle) for f in masked]


def test_viame_csv_rows_and_contours(store, filled, tmp_path):
    annotations = store.export_annotations(filled.dataset_id)
    path = write_annotations(annotations, tmp_path / "out.csv", "viame")
    rows = [r for r in csv.reader(path.read_text().splitlines()) if not r[0].startswith("#")]
    assert len(rows) == 12 + 9
    first = rows[0]
    assert first[2] == "0" and first[3:7] == ["5.5", "13", "20", "28"] and first[9:11] == ["fish", "0.75"]
    assert "(trk-atr) species cod" in first and "(atr) quality 3" in first
    poly = next(c for c in first if c.startswith("(poly) ")).split()[1:]
    points = list(zip(poly[::2], poly[1::2], strict=True))
    outline = mask_outline(blob(0, 0))
    assert all(outline[int(y), int(x)] for x, y in points)


def test_contour_of_simple_shapes():
    square = np.zeros((10, 12), bool)
    square[2:6, 3:9] = True
    assert mask_outer_contour(square) == [(3, 2), (8, 2), (8, 5), (3, 5)]
    square[8, 0] = True  # a smaller second part is ignored
    assert mask_outer_contour(square) == [(3, 2), (8, 2), (8, 5), (3, 5)]
    assert mask_outer_contour(np.zeros((4, 4), bool)) == []


def test_overlay_video(store, filled, tmp_path):
    annotations = store.export_annotations(filled.dataset_id)
    frames = ((i, np.full((H, W, 3), 40, np.uint8)) for i in range(FRAMES))
    path = write_annotations(annotations, tmp_path / "overlay.mp4", "mp4", frames=frames)
    with av.open(str(path)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == FRAMES and decoded[0].shape == (H, W, 3)
    # The fish's mask is filled with its colour (blended), the background left as it was.
    inside = decoded[5][20, 17].astype(int)
    colour = np.array(track_colour(annotations.tracks[0].track_id))
    assert np.abs(inside - (40 * 0.55 + colour * 0.45)).max() < 30
    assert np.abs(decoded[5][45, 2].astype(int) - 40).max() < 10
