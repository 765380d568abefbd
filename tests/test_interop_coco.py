"""Outside readers, COCO side: our COCO export read by pycocotools' COCO API and by datumaro's `coco_instances`
importer (its own venv, .cache/venv-datumaro, made by tests/run_all.sh): masks equal, track id kept."""

from __future__ import annotations

import json

import numpy as np
from pycocotools.coco import COCO

from sam2_tracking.formats import write_annotations
from tests.test_interop_dive import annotations, run_reader  # noqa: F401 (a fixture)


def test_coco_through_pycocotools_api(annotations, tmp_path):  # noqa: F811
    path = write_annotations(annotations, tmp_path / "ours.json", "coco", video_name="clip.mp4")
    coco = COCO(str(path))
    masked = {(t.track_id, f.frame_idx): (t, f) for t in annotations.tracks for f in t.present_features if f.rle}
    assert len(coco.getAnnIds()) == len(masked)
    for ann in coco.loadAnns(coco.getAnnIds()):
        image = coco.loadImgs(ann["image_id"])[0]
        track, feature = masked[(ann["track_id"], image["frame_index"])]
        assert image["file_name"] == f"clip.mp4/{feature.frame_idx:06d}.jpg"
        assert np.array_equal(coco.annToMask(ann).astype(bool), feature.mask)
        assert ann["area"] == int(feature.mask.sum())
        assert coco.loadCats(ann["category_id"])[0]["name"] == track.label
        assert ann["attributes"]["track_id"] == ann["track_id"] == track.track_id


def test_coco_through_datumaro(annotations, tmp_path):  # noqa: F811
    (tmp_path / "annotations").mkdir()  # datumaro's layout: annotations/instances_<subset>.json, images/
    (tmp_path / "images").mkdir()
    path = write_annotations(annotations, tmp_path / "annotations" / "instances_default.json", "coco",
                             video_name="clip.mp4")
    run_reader("datumaro", "datumaro_reader.py", path, tmp_path / "read.npz")
    read = np.load(tmp_path / "read.npz")
    summary = json.loads(bytes(read["summary"]).decode())
    masked = {(t.track_id, f.frame_idx): f for t in annotations.tracks for f in t.present_features if f.rle}
    assert len(summary) == len(masked) and {s["type"] for s in summary} == {"mask"}
    for (track_id, frame_idx), feature in masked.items():
        mask = read[f"clip.mp4/{frame_idx:06d}|{track_id}"]  # datumaro's item id: file_name without extension
        assert np.array_equal(mask, feature.mask)
    labels = {t.track_id: t.label for t in annotations.tracks}
    for entry in summary:
        assert entry["attributes"]["track_id"] in labels  # the track id survives as an attribute
        assert entry["label"] == labels[entry["attributes"]["track_id"]]
