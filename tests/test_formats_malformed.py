"""Malformed import files: each is refused with a message naming what is wrong, and leaves the store unchanged."""

from __future__ import annotations

import copy
import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from sam2_tracking.formats import load_annotations
from sam2_tracking.formats.coco import annotations_to_coco
from sam2_tracking.formats.dive import annotations_to_dive
from sam2_tracking.formats.maskzip import annotations_to_mask_files, load_mask_zip, mask_to_png
from sam2_tracking.store import UpsertKeyframe, open_store
from sam2_tracking.testing.db_snapshot import snapshot
from sam2_tracking.types import Box, FrameMask, JobSpec

W, H, FRAMES = 32, 24, 10


def square(frame_idx: int) -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[4 : 10 + frame_idx, 3 + frame_idx : 12 + frame_idx] = True
    return mask


@pytest.fixture()
def setup(tmp_path):
    """A store with one dataset holding a track, plus the valid export of that track to start breaking from."""
    path = tmp_path / "store.db"
    store = open_store(path)
    ds = store.add_dataset("clip", "/v/clip.mp4", "video", FRAMES, 30.0, W, H)
    track = store.create_track(ds.dataset_id, "fish").track_id
    store.save_edits(ds.dataset_id, 0, [UpsertKeyframe(track, 0, box=Box(2, 2, 12, 12))])
    job = store.create_job(JobSpec(ds.dataset_id, (track,), 0, "tiny", "cpu"), 3)
    store.claim_job(job.job_id, "w")
    store.write_job_batch(job.job_id, [FrameMask(f, track, True, 1.0, square(f)) for f in range(3)])
    annotations = store.export_annotations(ds.dataset_id)
    yield store, ds, path, annotations
    store.close()


def write_zip(path, files: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def png_bytes(array: np.ndarray, mode: str = "RGBA") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format="PNG")
    return buffer.getvalue()


def dive_case(mutate):
    def build(annotations, tmp_path):
        data = annotations_to_dive(annotations)
        track = next(iter(data["tracks"].values()))
        result = mutate(data, track)
        path = tmp_path / "bad.json"
        path.write_text(result if isinstance(result, str) else json.dumps(data))
        return path
    return build


def coco_case(mutate):
    def build(annotations, tmp_path):
        data = json.loads(json.dumps(annotations_to_coco(annotations)))
        mutate(data, data["annotations"][1])
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(data))
        return path
    return build


def zip_case(mutate):
    def build(annotations, tmp_path):
        files = annotations_to_mask_files(annotations)
        track_id = annotations.tracks[0].track_id
        mutate(files, track_id)
        return write_zip(tmp_path / "bad.zip", files)
    return build


def _set(obj, key, value):
    obj[key] = value


def _bad_bounds(track, bounds):
    track["features"][1]["bounds"] = bounds


CASES = {
    # DIVE JSON
    "dive not json": (dive_case(lambda d, t: "{not json"), "neither a zip nor JSON"),
    "dive version 1": (dive_case(lambda d, t: _set(d, "version", 1)), "version 1"),
    "dive tracks is a list": (dive_case(lambda d, t: _set(d, "tracks", [])), "'tracks' must be an object"),
    "dive track key not a number": (
        dive_case(lambda d, t: _set(d, "tracks", {"abc": t})), "'abc' is not a non-negative integer"),
    "dive id differs from key": (dive_case(lambda d, t: _set(t, "id", 99)), "its 'id' is 99"),
    "dive feature without frame": (dive_case(lambda d, t: t["features"][1].pop("frame")), "has no 'frame'"),
    "dive bounds of 3 numbers": (dive_case(lambda d, t: _bad_bounds(t, [1, 2, 3])), r"frame 1 'bounds' must be \[x1"),
    "dive inverted bounds": (dive_case(lambda d, t: _bad_bounds(t, [10, 2, 3, 8])), "frame 1 'bounds'.*inverted"),
    "dive bounds not numbers": (dive_case(lambda d, t: _bad_bounds(t, [1, "a", 3, 4])), "frame 1 'bounds' must be a"),
    "dive two features on a frame": (
        dive_case(lambda d, t: t["features"].append(dict(t["features"][1]))), "frame 1: two features on the same"),
    "dive frame past the video": (
        dive_case(lambda d, t: _set(t["features"][2], "frame", FRAMES + 5)), "frame 15: the frame is outside the video"),
    "dive bad confidence pair": (
        dive_case(lambda d, t: _set(t, "confidencePairs", [["fish"]])), "'confidencePairs'.*must be \\[label, score\\]"),
    "dive keyframe not a bool": (
        dive_case(lambda d, t: _set(t["features"][0], "keyframe", "yes")), "frame 0 'keyframe' must be true or false"),
    # COCO
    "coco track id not an integer": (coco_case(lambda d, a: _set(a, "track_id", "x1")), "'track_id': 'x1' is not"),
    "coco unknown image": (coco_case(lambda d, a: _set(a, "image_id", 999)), "image_id 999 is not in 'images'"),
    "coco unknown category": (coco_case(lambda d, a: _set(a, "category_id", 7)), "frame 1\\): category_id 7"),
    "coco segmentation of wrong size": (
        coco_case(lambda d, a: _set(a["segmentation"], "size", [H, W + 1])), "frame 1.*'segmentation'"),
    "coco corrupt counts": (
        coco_case(lambda d, a: _set(a["segmentation"], "counts", "\x7f\x7f!!")), "frame 1.*'segmentation'"),
    "coco polygon of two points": (coco_case(lambda d, a: _set(a, "segmentation", [[1, 2, 3, 4]])), "at least 3"),
    "coco bbox negative width": (
        coco_case(lambda d, a: (a.pop("segmentation"), _set(a, "bbox", [5, 5, -3, 4]))), "frame 1.*'bbox'"),
    "coco for another video size": (
        coco_case(lambda d, a: [_set(i, "width", W * 2) for i in d["images"]]), "(segmentation|is for a)"),
    "coco duplicate annotation": (
        coco_case(lambda d, a: d["annotations"].append(copy.deepcopy(a))), "frame 1: two annotations"),
    # Mask zip
    "zip path traversal": (zip_case(lambda f, t: _set(f, "masks/../../evil.png", b"x")), "leaves the archive"),
    "zip absolute path": (zip_case(lambda f, t: _set(f, "/masks/1/0.png", b"x")), "leaves the archive"),
    "zip corrupt png": (
        zip_case(lambda f, t: (f.pop("masks/RLE_MASKS.json"), _set(f, f"masks/{t}/1.png", b"\x89PNG garbage"))),
        "masks/{t}/1.png is not a readable PNG"),
    "zip mask for an unknown track": (
        zip_case(lambda f, t: _set(f, "masks/77/1.png", mask_to_png(square(1)))), "track 77, frame 1"),
    "zip mask on a frame without a feature": (
        zip_case(lambda f, t: _set(f, f"masks/{t}/6.png", mask_to_png(square(1)))), "frame 6: the zip has a mask"),
    "zip masks of two sizes": (
        zip_case(lambda f, t: (f.pop("masks/RLE_MASKS.json"),
                               _set(f, f"masks/{t}/1.png", mask_to_png(np.ones((H + 1, W), bool))))),
        "(masks differ in size|is for a 32x25 video)"),
    "zip bad rle json": (
        zip_case(lambda f, t: _set(f, "masks/RLE_MASKS.json", json.dumps(
            {str(t): {"1": {"rle": {"size": [H, W], "counts": [1, 2]}}}}).encode())), "track \\d+, frame 1: RLE counts"),
    "zip frame name not a number": (
        zip_case(lambda f, t: _set(f, f"masks/{t}/one.png", mask_to_png(square(1)))), "frame: 'one'"),
    "zip stray file": (zip_case(lambda f, t: _set(f, "masks/notes.txt", b"hi")), "unexpected file"),
    "zip masks for another video size": (
        zip_case(lambda f, t: (f.clear(), _set(f, f"masks/{t}/1.png", mask_to_png(np.ones((H * 2, W * 2), bool))))),
        "is for a 64x48 video"),
    "zip is not a zip": (lambda a, p: (p / "bad.zip").write_bytes(b"PK\x03\x04 not really") and p / "bad.zip",
                         "not a readable zip"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_malformed_import_changes_nothing(setup, tmp_path, name):
    store, ds, db_path, annotations = setup
    build, message = CASES[name]
    message = message.replace("{t}", str(annotations.tracks[0].track_id))
    path = build(annotations, tmp_path)
    before = snapshot(db_path)
    with pytest.raises(ValueError, match=message):
        store.import_annotations(ds.dataset_id, load_annotations(path))
    assert snapshot(db_path) == before


def test_zip_bomb_is_refused_before_expanding(setup, tmp_path):
    store, ds, db_path, annotations = setup
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("masks/1/0.png", b"\0" * 20_000_000)  # 20 MB of zeros deflates to ~20 kB
    assert path.stat().st_size < 100_000
    before = snapshot(db_path)
    with pytest.raises(ValueError, match="zip bomb"):
        store.import_annotations(ds.dataset_id, load_mask_zip(path, max_expanded_bytes=10_000_000))
    assert snapshot(db_path) == before


def test_zip_with_a_link_is_refused(tmp_path):
    path = tmp_path / "link.zip"
    with zipfile.ZipFile(path, "w") as archive:
        info = zipfile.ZipInfo("masks/1/0.png")
        info.external_attr = (0o120777 << 16)  # a symlink entry
        archive.writestr(info, "/etc/passwd")
    with pytest.raises(ValueError, match="links are not allowed"):
        load_mask_zip(path)


def test_valid_files_still_import(setup, tmp_path):
    """The cases above break a file that imports fine: check that baseline."""
    store, ds, _db, annotations = setup
    for fmt in ("coco", "dive", "maskzip"):
        from sam2_tracking.formats import write_annotations

        path = write_annotations(annotations, tmp_path / f"ok.{fmt}", fmt)
        mapping = store.import_annotations(ds.dataset_id, load_annotations(path))
        assert len(mapping) == 1


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (no pixel data): what a hostile mask zip can hold."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")


def _huge_rle(entry):
    entry["size"] = [100_000, 100_000]


def _deflated_zip(path, name, data):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return path


def _many_tracks(data, track):
    data["tracks"] = {str(i): {**track, "id": i} for i in range(1, 4)}


HOSTILE = {
    # Sizes a file declares are checked against the video before pycocotools sees them (it segfaults on absurd ones).
    "coco rle of an absurd size": (coco_case(lambda d, a: _huge_rle(a["segmentation"])),
                                   "RLE size is 100000x100000 but the video is 32x24", {}),
    "coco images of an absurd size": (
        coco_case(lambda d, a: [(_set(i, "width", 10**5), _set(i, "height", 10**5)) for i in d["images"]]),
        "COCO file is for a 100000x100000 video but this video is 32x24", {}),
    "coco rle runs past the frame": (
        coco_case(lambda d, a: _set(a["segmentation"], "counts", [H * W, 5])), "RLE counts", {}),
    "coco rle string runs past the frame": (
        coco_case(lambda d, a: _set(a["segmentation"], "counts", "OlN1")), "RLE counts", {}),
    "zip rle of an absurd size": (
        zip_case(lambda f, t: _set(f, "masks/RLE_MASKS.json", json.dumps(
            {str(t): {"1": {"rle": {"size": [10**5, 10**5], "counts": "0"}}}}).encode())),
        "RLE size is 100000x100000 but the video is 32x24", {}),
    "zip png header of an absurd size": (
        zip_case(lambda f, t: (f.pop("masks/RLE_MASKS.json"), _set(f, f"masks/{t}/1.png", png_header(9000, 9000)))),
        "is for a 9000x9000 video", {}),
    "zip png header past any frame": (
        zip_case(lambda f, t: (f.pop("masks/RLE_MASKS.json"), _set(f, f"masks/{t}/1.png", png_header(10**5, 10**5)))),
        "masks/1/1.png", {}),
    "zip that expands 1000 times": (
        lambda a, p: _deflated_zip(p / "bomb.zip", "masks/1/0.png", b"\0" * 2_000_000), "times its size", {}),
    "zip past the expansion cap": (
        lambda a, p: _deflated_zip(p / "big.zip", "masks/1/0.png", bytes(range(256)) * 4000), "SAM2T_MAX_ZIP_EXP",
        {"max_zip_expansion_bytes": 100_000}),
    # Values validated where they enter.
    "dive label of 300 characters": (
        dive_case(lambda d, t: _set(t, "confidencePairs", [["x" * 300, 1.0]])), "label of 300 characters", {}),
    "dive more tracks than allowed": (dive_case(_many_tracks), "3 tracks, more than the 2", {"max_tracks_per_import": 2}),
    "dive box of 1e308": (dive_case(lambda d, t: _bad_bounds(t, [0, 0, 1e308, 5])), "far outside the 32x24 frame", {}),
    "dive integer too large for a float": (
        dive_case(lambda d, t: _bad_bounds(t, [0, 0, 10**400, 5])), "'bounds' must be a finite number", {}),
    "dive nested 100000 deep": (dive_case(lambda d, t: '{"version": 2, "tracks": ' + "[" * 100_000), "(too deeply|not valid)", {}),
    "dive number of 5000 digits": (
        dive_case(lambda d, t: '{"version": 2, "tracks": {"1": {"begin": 1' + "0" * 5000 + "}}}"), "more digits than any", {}),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_import_is_refused_before_allocating(setup, tmp_path, name):
    from sam2_tracking.formats.limits import ImportLimits

    store, ds, db_path, annotations = setup
    build, message, limits = HOSTILE[name]
    path = build(annotations, tmp_path)
    before = snapshot(db_path)
    with pytest.raises(ValueError, match=message):
        store.import_annotations(ds.dataset_id, load_annotations(path, frame_size=(H, W), limits=ImportLimits(**limits)))
    assert snapshot(db_path) == before


def test_absurd_rle_without_a_video_leaves_the_process_alive(setup, tmp_path):
    """No video to compare with (convert without --video): the pixel cap still stops the decode. In a subprocess,
    since the failure this guards against is pycocotools killing the process."""
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    _store, _ds, _db, annotations = setup
    path = coco_case(lambda d, a: [(_set(i, "width", 60_000), _set(i, "height", 60_000)) for i in d["images"]]
                     + [_huge_rle(x["segmentation"]) for x in d["annotations"]])(annotations, tmp_path)
    code = ("import sys; from sam2_tracking.formats import load_annotations\n"
            "try:\n    load_annotations(sys.argv[1])\nexcept ValueError as exc:\n    print('refused:', exc)\n")
    run = subprocess.run([sys.executable, "-c", code, str(path)], cwd=REPO_ROOT, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert "refused:" in run.stdout and "pixels allowed" in run.stdout
