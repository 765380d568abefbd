"""Exports and imports through real files and a real store: exact round trips, COCO checks, VIAME, overlay MP4."""

from __future__ import annotations

import csv
import json
import zipfile

import av
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from sam2_tracking.engine.masks import mask_outline, track_colour
from sam2_tracking.formats import load_annotations, write_annotations
from sam2_tracking.formats.coco import annotations_to_coco
from sam2_tracking.formats.dive import annotations_to_dive, dive_to_annotations
from sam2_tracking.formats.maskzip import load_mask_zip, write_mask_zip
from sam2_tracking.formats.viame import mask_polygons
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
    if fmt == "coco":  # COCO carries masked frames only, with their box, clicks, attributes and logit
        expected = [
            (label, pairs, attrs, [feature for feature in feats if feature[2] is not None])
            for label, pairs, attrs, feats in comparable(original, with_scores=True)
        ]
        assert comparable(back, with_scores=True) == expected
        assert comparable(back, with_scores=True)[0][3][1][6] == 3.25
    else:
        assert comparable(back, with_masks=fmt != "dive", with_scores=True) == comparable(
            original, with_masks=fmt != "dive", with_scores=True)
        absent = [[f.frame_idx for f in t.features if not f.present] for t in back.tracks]
        assert absent == [[], [9, 10, 11]]  # the tracker's "absent" results travel in the track's meta
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
        assert ann["bbox"] == list(mask_utils.toBbox(rle)) and ann["iscrowd"] == 0  # the mask's box, seeds too
        assert ann["attributes"]["track_id"] == ann["track_id"]
        assert ("score" in ann) == (feature.score is not None)  # a person's mask has no model score
        if feature.score is not None:
            assert ann["sam2_logit"] == feature.score and 0 < ann["score"] < 1
            assert ann["score"] == pytest.approx(1 / (1 + np.exp(-feature.score)))
        assert isinstance(ann["segmentation"]["counts"], str)


def test_dive_json_has_tracks_groups_and_has_mask(store, filled):
    dive = annotations_to_dive(store.export_annotations(filled.dataset_id))
    assert dive["version"] == 2 and dive["groups"] == {}
    fish, crab = dive["tracks"].values()
    assert fish["confidencePairs"] == [["fish", 0.75]] and fish["attributes"] == {"species": "cod"}
    assert (fish["begin"], fish["end"], crab["begin"], crab["end"]) == (0, 11, 0, 8)
    # Every feature has integer bounds and so is a keyframe for DIVE; the seed box sits in meta, bounds are the
    # mask's (inclusive x2/y2, DIVE-DSA's convention).
    first_mask = blob(0, 0)
    ys, xs = np.nonzero(first_mask)
    assert fish["features"][0]["bounds"] == [xs.min(), ys.min(), xs.max(), ys.max()]
    assert all(f["keyframe"] is True and all(isinstance(v, int) for v in f["bounds"])
               for t in (fish, crab) for f in t["features"])
    assert fish["meta"]["sam2"]["seeds"] == [0] and fish["meta"]["sam2"]["boxes"] == {"0": [5.5, 13, 20, 28]}
    assert crab["meta"]["sam2"]["absent"] == [9, 10, 11] and crab["meta"]["sam2"]["scores"]["9"] == -2.0
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
    ys, xs = np.nonzero(blob(0, 0))
    assert first[1] == "00:00:00.000000" and rows[1][1] == "00:00:00.040000"  # DIVE's timestamps at 25 fps
    assert first[2] == "0" and first[3:7] == [str(v) for v in (xs.min(), ys.min(), xs.max(), ys.max())]
    assert first[9:11] == ["fish", "0.75"]
    assert "(trk-atr) species cod" in first and "(atr) quality 3" in first
    poly = next(c for c in first if c.startswith("(poly) ")).split()[1:]
    points = list(zip(poly[::2], poly[1::2], strict=True))
    outline = mask_outline(blob(0, 0))
    assert all(outline[int(y), int(x)] for x, y in points)


def test_contour_of_simple_shapes():
    square = np.zeros((10, 12), bool)
    square[2:6, 3:9] = True
    assert mask_polygons(square) == ([[(3, 2), (8, 2), (8, 5), (3, 5)]], [])  # clockwise from the first pixel
    square[8, 0] = True  # a smaller second part comes after the largest
    assert mask_polygons(square) == ([[(3, 2), (8, 2), (8, 5), (3, 5)], [(0, 8)]], [])
    assert mask_polygons(np.zeros((4, 4), bool)) == ([], [])


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


def dive_style_file() -> dict:
    """A file as DIVE and DIVE-DSA write them: string ids, stringified booleans, interpolation, shapes."""
    point = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [14, 16]},
             "properties": {"key": "click", "positive": "False"}}
    polygon = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[1, 1], [9, 1], [9, 9]]]},
               "properties": {"key": ""}}
    return {"version": 2, "groups": {}, "tracks": {"1": {
        "id": "1", "begin": 0, "end": 4, "confidencePairs": [["fish", 0.9]], "attributes": {}, "meta": {},
        "features": [
            {"frame": 0, "bounds": [10, 10, 20, 20], "interpolate": True, "keyframe": True,
             "geometry": {"type": "FeatureCollection", "features": [point, polygon]}, "head": [10, 10]},
            {"frame": 4, "bounds": [20, 14, 30, 24], "keyframe": True, "hasMask": True},
        ]}}}


def test_dive_style_file_imports_with_interpolation_and_reports_drops(store):
    annotations = dive_to_annotations(dive_style_file())
    [track] = annotations.tracks
    assert track.track_id == 1
    boxes = {f.frame_idx: f.box.as_list() for f in track.features}
    # DIVE's own interpolation: round(a * (1 - d) + b * d) per coordinate on the frames between.
    assert boxes[2] == [15, 12, 25, 22] and sorted(boxes) == [0, 1, 2, 3, 4]
    assert [f.keyframe for f in track.features] == [True, False, False, False, True]
    assert track.features[0].clicks[0].positive is False  # "False" from DIVE's server is a negative click
    warnings = " | ".join(annotations.warnings)
    assert "Polygon geometry" in warnings and "head points" in warnings
    # DIVE JSON -> DIVE JSON keeps hasMask even without the mask zip.
    again = annotations_to_dive(annotations)
    assert again["tracks"]["1"]["features"][-1]["hasMask"] is True
    ds = store.add_dataset("clip", "/v/clip.mp4", "video", FRAMES, 25.0, W, H)
    store.import_annotations(ds.dataset_id, annotations)
    from sam2_tracking.formats.files import store_import_notes

    assert any("hasMask came without their mask" in n for n in store_import_notes(annotations))


def test_mask_png_is_black_outside_so_a_one_bit_conversion_keeps_the_mask(tmp_path):
    import io

    from PIL import Image

    from sam2_tracking.formats.maskzip import mask_to_png

    mask = blob(3, 0)
    image = Image.open(io.BytesIO(mask_to_png(mask)))
    assert image.mode == "RGBA"
    assert np.array_equal(np.asarray(image.convert("1")), mask)  # what DIVE-DSA's re-encoding sees
    assert np.array_equal(np.asarray(image.getchannel("A")) > 127, mask)


def test_coco_from_dive_without_sizes_and_track_ids(tmp_path):
    mask = blob(0, 0)
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    coco = {"images": [{"id": 7, "file_name": "b/frame_10.png"}, {"id": 3, "file_name": "b/frame_2.png"}],
            "categories": [{"id": 1, "name": "fish"}],
            "annotations": [{"id": 5, "image_id": 7, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.5},
                            {"id": 6, "image_id": 3, "category_id": 1, "iscrowd": 0,
                             "segmentation": {"size": [H, W], "counts": rle["counts"].decode()}}]}
    path = tmp_path / "dive.json"
    path.write_text(json.dumps(coco))
    annotations = load_annotations(path)
    frames = {t.track_id: t.features[0].frame_idx for t in annotations.tracks}
    assert frames == {5: 1, 6: 0}  # DIVE's order: frame_2 before frame_10; annotation id as track id
    assert annotations.frame_names == ("frame_2.png", "frame_10.png") or annotations.frame_names == (
        "b/frame_2.png", "b/frame_10.png")
    assert (annotations.height, annotations.width) == (H, W)


def test_viame_holes_parts_and_import(store, filled, tmp_path):
    ring = np.zeros((20, 20), bool)
    ring[2:12, 2:12] = True
    ring[5:8, 5:8] = False
    ring[15:18, 15:17] = True
    outer, holes = mask_polygons(ring)
    assert len(outer) == 2 and outer[0][0] == (2, 2) and len(holes) == 1
    annotations = store.export_annotations(filled.dataset_id)
    text = write_annotations(annotations, tmp_path / "a.csv", "viame").read_text()
    assert "(poly) " in text and text.count("(poly) ") > 21  # the second part on even frames
    back = load_annotations(tmp_path / "a.csv")
    assert back.fps == 25.0 and [t.label for t in back.tracks] == ["fish", "crab"]
    assert back.tracks[0].features[0].attributes == {"quality": 3}
    assert any("polygons" in w for w in back.warnings)
    again = write_annotations(back, tmp_path / "b.csv", "viame").read_text()
    strip = [line.split(",(poly)")[0] for line in text.splitlines()]
    assert [line.split(",(poly)")[0] for line in again.splitlines()] == strip


def test_zero_annotations_are_reported(tmp_path):
    from sam2_tracking.annotation_set import AnnotationSet, Feature, TrackData
    from sam2_tracking.formats.files import export_notes

    only_box = AnnotationSet((TrackData(1, (("fish", 1.0),), (Feature(1, 0, box=Box(1, 1, 5, 5)),)),), W, H, 3)
    assert any("0 annotations" in n for n in export_notes(only_box, "coco"))
    assert export_notes(only_box, "dive") == []


def test_mask_zip_as_dive_dsa_sam2_writes_it(tmp_path):
    """DIVE-DSA's SAM2 task: string track ids, hasMask features, RLE entries with a file_name and a size of PIL's
    image.size ([width, height]), greyscale PNGs."""
    import io

    from PIL import Image

    mask = blob(4, 0)
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    ys, xs = np.nonzero(mask)
    track = {"id": "1", "begin": 4, "end": 5, "confidencePairs": [["fish", 1.0]], "attributes": {}, "meta": {},
             "features": [{"frame": 4, "bounds": [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())],
                           "keyframe": True, "hasMask": True},
                          {"frame": 5, "bounds": [1, 1, 4, 4], "keyframe": True, "hasMask": True}]}
    png = io.BytesIO()
    Image.fromarray((blob(5, 0) * 255).astype(np.uint8), "L").save(png, format="PNG")
    path = tmp_path / "dive_dsa.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("masks/TrackJSON.json", json.dumps({"version": 2, "tracks": {"1": track}, "groups": {}}))
        archive.writestr("masks/RLE_MASKS.json", json.dumps({"1": {"4": {
            "file_name": "masks/1/4.png", "rle": {"size": [W, H], "counts": rle["counts"].decode()}}}}))
        archive.writestr("masks/1/5.png", png.getvalue())
    annotations = load_annotations(path, frame_size=(H, W))
    [read] = annotations.tracks
    assert np.array_equal(read.features[0].mask, mask) and np.array_equal(read.features[1].mask, blob(5, 0))
    assert any("[width, height]" in w for w in annotations.warnings)
