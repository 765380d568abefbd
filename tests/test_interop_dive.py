"""Outside readers, DIVE side: our exports read by DIVE-DSA's own server code (dive-dsa==0.0.1: pydantic models and
serializers) in its own venv, DIVE-written files read by ours, and the DIVE web client's `keyframe` XOR `bounds` rule.

DIVE-DSA pins pydantic 1 and numpy 1.24, so it runs in .cache/venv-dive (made by tests/run_all.sh from
requirements-interop-dive.txt) through tests/interop_readers/dive_reader.py in a subprocess. Without that venv the
tests fail, saying how to make it (a skip would let the suite pass without ever asking the outside reader).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from sam2_tracking.formats import load_annotations, write_annotations
from sam2_tracking.formats.dive import dive_bounds
from sam2_tracking.formats.viame import mask_polygons
from sam2_tracking.store import UpsertKeyframe
from sam2_tracking.types import Box, Click, FrameMask, JobSpec
from tests.conftest import REPO_ROOT

W, H, FRAMES, FPS = 64, 48, 12, 25.0
READERS = REPO_ROOT / "tests" / "interop_readers"


def side_python(name: str) -> Path:
    venv = REPO_ROOT / ".cache" / f"venv-{name}"
    if not (venv / ".complete").is_file():
        pytest.fail(f"{venv} is missing: run bash tests/run_all.sh (it installs requirements-interop-{name}.txt there)",
                    pytrace=False)
    return venv / "bin" / "python"


def run_reader(name: str, script: str, *args) -> None:
    run = subprocess.run([str(side_python(name)), str(READERS / script), *map(str, args)], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, f"{script} {args[0]} failed:\n{run.stderr[-3000:]}"


def blob(frame_idx: int, track_idx: int) -> np.ndarray:
    """An ellipse moving right; on even frames a second small part, on frame 3 a hole."""
    yy, xx = np.mgrid[:H, :W]
    mask = (xx - 12 - frame_idx - 20 * track_idx) ** 2 / 36 + (yy - 20 - track_idx * 5) ** 2 / 16 <= 1
    mask[2 + track_idx, 40:44] = frame_idx % 2 == 0
    if frame_idx == 3:
        mask[19:22, 14 + 20 * track_idx : 16 + 20 * track_idx] = False
    return mask


def build_annotations(store, name: str = "clip.mp4"):
    """Every kind of feature the app makes: a box + clicks seed with attributes, a mask seed, tracked masks with
    scores and absent frames, a clicks-only seed, a box-only seed; track labels and attributes."""
    ds = store.add_dataset(name, f"/v/{name}", "video", FRAMES, FPS, W, H)
    fish = store.create_track(ds.dataset_id, "fish", 0.75, {"species": "cod", "adult": True}).track_id
    crab = store.create_track(ds.dataset_id, "crab").track_id
    shrimp = store.create_track(ds.dataset_id, "shrimp", 0.5).track_id
    eel = store.create_track(ds.dataset_id, "eel").track_id
    store.save_edits(ds.dataset_id, 0, [
        UpsertKeyframe(fish, 0, box=Box(5.5, 13, 20, 28), clicks=(Click(12, 20), Click(30, 5, False)),
                       attributes={"quality": 3, "checked": False, "note": "near rock"}),
        UpsertKeyframe(crab, 2, mask=blob(2, 1)),
        UpsertKeyframe(shrimp, 4, clicks=(Click(40.5, 30), Click(44, 33, False))),
        UpsertKeyframe(eel, 6, box=Box(10, 10, 30, 30)),
    ])
    job = store.create_job(JobSpec(ds.dataset_id, (fish, crab), 0, "tiny", "cpu", num_frames=FRAMES), FRAMES)
    store.claim_job(job.job_id, "w")
    batch = []
    for f in range(FRAMES):
        batch.append(FrameMask(f, fish, True, 3.25 - f / 8, blob(f, 0)))
        batch.append(FrameMask(f, crab, f < 9, 1.5 if f < 9 else -2.0, blob(f, 1) if f < 9 else None))
    store.write_job_batch(job.job_id, batch)
    return store.export_annotations(ds.dataset_id)


@pytest.fixture()
def annotations(store):
    return build_annotations(store)


def client_keyframe_rule(dive: dict) -> None:
    """DIVE's web client (client/src/track.ts): a feature whose `keyframe` and `bounds` disagree stops the whole
    dataset from loading ("keyframe must not XOR bounds")."""
    for track in dive["tracks"].values():
        for feature in track["features"]:
            assert bool(feature.get("keyframe")) == (feature.get("bounds") is not None), (track["id"], feature)


def test_dive_json_loads_through_dive_models_with_nothing_lost(annotations, tmp_path):
    ours = write_annotations(annotations, tmp_path / "ours.json", "dive")
    data = json.loads(ours.read_text())
    client_keyframe_rule(data)
    run_reader("dive", "dive_reader.py", "migrate", ours, tmp_path / "migrated.json")
    migrated = json.loads((tmp_path / "migrated.json").read_text())
    # Track/Feature/Group models accepted every track, and their output is our file: nothing dropped or changed.
    assert migrated["tracks"] == data["tracks"] and migrated["groups"] == data["groups"]
    # DIVE's output reads back into exactly what we wrote (seeds, boxes, clicks, scores, absent frames).
    (tmp_path / "back.json").write_text(json.dumps(migrated))
    back = load_annotations(tmp_path / "back.json")
    assert _fields(back, masks=False) == _fields(annotations, masks=False)
    run_reader("dive", "dive_reader.py", "attributes", ours, tmp_path / "attributes.json")
    attributes = json.loads((tmp_path / "attributes.json").read_text())
    assert {"track_species", "track_adult", "detection_quality", "detection_checked"} <= set(attributes)


def test_mask_zip_through_dive_dsa(annotations, tmp_path):
    ours = write_annotations(annotations, tmp_path / "ours.zip", "maskzip")
    run_reader("dive", "dive_reader.py", "maskzip", ours, tmp_path / "read.json")
    read = json.loads((tmp_path / "read.json").read_text())
    client_keyframe_rule(read["track_json"])
    masked = {(t.track_id, f.frame_idx): f.rle for t in annotations.tracks for f in t.present_features if f.rle}
    assert {(int(t), int(f)): entry["rle"] for t, frames in read["rle_masks"].items()
            for f, entry in frames.items()} == masked
    # DIVE-DSA re-encodes each PNG with a 1-bit conversion that ignores alpha: it must give back the same mask.
    assert {name: rle for name, rle in read["pngs"].items()} == {
        f"masks/{t}/{f}.png": rle for (t, f), rle in masked.items()}
    assert _fields(load_annotations(ours)) == _fields(annotations)


def test_viame_csv_through_dive(annotations, tmp_path):
    ours = write_annotations(annotations, tmp_path / "ours.csv", "viame")
    run_reader("dive", "dive_reader.py", "viame-load", ours, tmp_path / "read.json")
    read = json.loads((tmp_path / "read.json").read_text())["tracks"]
    assert sorted(int(k) for k in read) == [t.track_id for t in annotations.tracks]
    for track in annotations.tracks:
        theirs = read[str(track.track_id)]
        assert [tuple(p) for p in theirs["confidencePairs"]] == sorted(track.confidence_pairs, key=lambda p: -p[1])
        assert theirs["attributes"] == track.attributes
        features = {f["frame"]: f for f in theirs["features"]}
        assert sorted(features) == [f.frame_idx for f in track.present_features]
        for feature in track.present_features:
            got = features[feature.frame_idx]
            assert got["bounds"] == dive_bounds(feature) and got.get("attributes", {}) == feature.attributes
            if feature.rle is not None:
                # DIVE keeps one polygon per detection (the last (poly) column); VIAME's (hole) it ignores.
                [polygon] = {json.dumps(g["geometry"]["coordinates"]) for g in got["geometry"]["features"]}
                outer, _holes = mask_polygons(feature.mask)
                assert json.loads(polygon) == [[list(map(float, p)) for p in outer[-1]]]


def dive_style_file() -> dict:
    """A file as DIVE and DIVE-DSA write them: string ids, a stringified negative click, interpolation between
    keyframes, a polygon and head/tail points."""
    point = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [14, 16]},
             "properties": {"key": "click", "positive": "False"}}
    polygon = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[1, 1], [9, 1], [9, 9]]]},
               "properties": {"key": ""}}
    return {"version": 2, "groups": {}, "tracks": {"1": {
        "id": "1", "begin": 0, "end": 7, "confidencePairs": [["fish", 0.9]], "attributes": {"kind": "a"},
        "meta": {},
        "features": [
            {"frame": 0, "bounds": [10, 10, 20, 20], "interpolate": True, "keyframe": True,
             "geometry": {"type": "FeatureCollection", "features": [point, polygon]}, "head": [10, 10],
             "tail": [20, 20]},
            {"frame": 7, "bounds": [23, 14, 37, 25], "keyframe": True, "hasMask": True},
        ]}}}


def test_dive_written_files_import_into_ours(annotations, tmp_path):
    source = tmp_path / "dive_style.json"
    source.write_text(json.dumps(dive_style_file()))
    run_reader("dive", "dive_reader.py", "migrate", source, tmp_path / "migrated.json")
    ours = load_annotations(tmp_path / "migrated.json")  # what DIVE's server stores, read by us
    [track] = ours.tracks
    assert track.track_id == 1 and track.features[0].clicks == (Click(14, 16, False),)
    assert any("Polygon" in w for w in ours.warnings) and any("head points" in w for w in ours.warnings)
    # DIVE's CSV export writes the interpolated boxes out: ours, from `interpolate`, must be the same boxes.
    run_reader("dive", "dive_reader.py", "viame-export", source, tmp_path / "dive.csv", "")
    from_csv = load_annotations(tmp_path / "dive.csv")
    assert {f.frame_idx: dive_bounds(f) for f in from_csv.tracks[0].features} == {
        f.frame_idx: dive_bounds(f, track.masks_elsewhere.get(f.frame_idx)) for f in track.features}
    assert len(track.features) == 8
    # DIVE's CSV export of our own DIVE JSON reads back with the same boxes, labels and attributes.
    write_annotations(annotations, tmp_path / "ours.json", "dive")
    run_reader("dive", "dive_reader.py", "viame-export", tmp_path / "ours.json", tmp_path / "ours_by_dive.csv",
               FPS)
    back = load_annotations(tmp_path / "ours_by_dive.csv")
    for original, read in zip(annotations.tracks, back.tracks, strict=True):
        assert [(f.frame_idx, dive_bounds(f), f.attributes) for f in read.features] == [
            (f.frame_idx, dive_bounds(f), f.attributes) for f in original.present_features]
        assert read.attributes == original.attributes


def test_coco_through_dive_kwcoco_reader(annotations, tmp_path):
    ours = write_annotations(annotations, tmp_path / "ours.json", "coco")
    run_reader("dive", "dive_reader.py", "kwcoco", ours, tmp_path / "read.json")
    # DIVE-DSA's COCO reader refuses RLE segmentations by design (masks reach it through the mask zip) ...
    assert "Run-Length Encoding not supported" in json.loads((tmp_path / "read.json").read_text())["error"]
    # ... and reads everything else of our file: track ids, frames, the mask's box, the 0-1 score as confidence.
    data = json.loads(ours.read_text())
    for ann in data["annotations"]:
        ann.pop("segmentation")
        ann.pop("iscrowd")
    (tmp_path / "boxes.json").write_text(json.dumps(data))
    run_reader("dive", "dive_reader.py", "kwcoco", tmp_path / "boxes.json", tmp_path / "read.json")
    tracks = json.loads((tmp_path / "read.json").read_text())["tracks"]
    for track in annotations.tracks:
        masked = [f for f in track.present_features if f.rle is not None]
        if not masked:
            assert str(track.track_id) not in tracks
            continue
        theirs = tracks[str(track.track_id)]
        assert [f["frame"] for f in theirs["features"]] == [f.frame_idx for f in masked]
        assert [f["bounds"] for f in theirs["features"]] == [
            [int(v) for v in _exclusive(f)] for f in masked]
        label, confidence = theirs["confidencePairs"][0]
        assert label == track.label and 0 <= confidence <= 1


def _exclusive(feature):
    from sam2_tracking.engine.masks import rle_to_box

    return rle_to_box(feature.rle).as_list()


def _fields(annotations, masks: bool = True):
    return [(t.track_id, t.confidence_pairs, t.attributes,
             [(f.frame_idx, f.present, f.box, f.rle if masks else None, f.keyframe, f.clicks, f.attributes, f.score)
              for f in t.features])
            for t in annotations.tracks]


def test_annotate_import_reports_what_it_drops(store, tmp_path):
    """The Annotate tab's Import handler: a DIVE-style file imports, and the message lists what was not kept."""
    from ui.annotation_files import export_dataset, import_file

    ds = store.add_dataset("clip.mp4", "/v/clip.mp4", "video", FRAMES, FPS, W, H)
    path = tmp_path / "dive_style.json"
    path.write_text(json.dumps(dive_style_file()))
    revision, message = import_file(store, ds.dataset_id, store.get_revision(ds.dataset_id), str(path),
                                    "Detect from the file", False)
    assert revision == store.get_revision(ds.dataset_id) and message.startswith("Imported 1 track(s). Not kept: ")
    assert "Polygon geometry" in message and "hasMask came without their mask" in message
    [track] = store.list_tracks(ds.dataset_id)
    assert (track.begin, track.end) == (0, 7)  # DIVE's interpolated boxes between the keyframes were kept

    from sam2_tracking.settings import Settings

    settings = Settings(data_dir=tmp_path, model_dir=tmp_path / "models")
    with pytest.warns(UserWarning, match="holds 0 annotations"):  # gr.Warning outside a request: a UserWarning
        exported = export_dataset(settings, store, ds.dataset_id, "COCO (RLE, with track ids)")
    assert json.loads(Path(exported).read_text())["annotations"] == []
