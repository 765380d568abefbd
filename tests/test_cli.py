"""The command line on the sample clip with the test model: `track` writes every format, `convert` between them."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import av
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from sam2_tracking.cli import main
from sam2_tracking.engine.plan import FramePlan
from sam2_tracking.formats import load_annotations
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow


# Few frames: the model is slow on a busy 2-core machine, and the bookkeeping is the same for 3 frames as for 300.
FRAMES = 3


def track_args(sample_video, sample_video_meta, model_dir, out, fmt, *extra, frames=FRAMES):
    seed = sample_video_meta["seeds"][0]
    box = ",".join(str(v) for v in seed["box"])
    return ["track", str(sample_video), "--frame", str(seed["frame"]), "--box", box, "--frames", str(frames),
            "--batch-size", "10", "--model", str(model_dir), "--out", str(out), "--format", fmt,
            "--label", seed["label"], "--quiet", *extra]


def test_track_command_in_a_real_process(sample_video, sample_video_meta, test_model_dir, tmp_path):
    out = tmp_path / "tracks.json"
    args = track_args(sample_video, sample_video_meta, test_model_dir, out, "coco", frames=6)
    run = subprocess.run([sys.executable, "-m", "sam2_tracking", *args], cwd=REPO_ROOT, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert f"wrote {out}" in run.stdout
    coco = json.loads(out.read_text())
    assert len(coco["images"]) == 150 and coco["categories"][0]["name"] == "red disc"
    frames = sorted(a["image_id"] - 1 for a in coco["annotations"])
    assert set(frames) <= set(range(6)) and frames  # random weights: some frames may score absent
    for ann in coco["annotations"]:
        rle = {"size": ann["segmentation"]["size"], "counts": ann["segmentation"]["counts"].encode()}
        assert mask_utils.decode(rle).shape == (360, 640) and ann["area"] == int(mask_utils.area(rle))


@pytest.mark.parametrize("fmt", ["dive", "maskzip", "viame", "mp4"])
def test_track_writes_each_format(sample_video, sample_video_meta, test_model_dir, tmp_path, fmt, capsys):
    out = tmp_path / f"tracks.{fmt}"
    store = tmp_path / "kept.db"
    assert main(track_args(sample_video, sample_video_meta, test_model_dir, out, fmt, "--store", str(store))) == 0
    assert out.stat().st_size > 0
    if fmt == "dive":
        data = json.loads(out.read_text())
        [track] = data["tracks"].values()
        # DIVE's rules: every feature has integer bounds and is a keyframe; the person's seed box travels in meta.
        assert all(f["keyframe"] is True and len(f["bounds"]) == 4 for f in track["features"])
        [seed] = [f for f in load_annotations(out).tracks[0].features if f.keyframe]
        assert seed.box.as_list() == [462, 142, 538, 218]
    elif fmt == "maskzip":
        with zipfile.ZipFile(out) as archive:
            assert {"masks/RLE_MASKS.json", "masks/TrackJSON.json"} <= set(archive.namelist())
        assert load_annotations(out).tracks[0].features
    elif fmt == "viame":
        rows = [line for line in out.read_text().splitlines() if not line.startswith("#")]
        assert rows and all(",red disc," in row for row in rows)
    else:
        with av.open(str(out)) as container:
            decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert len(decoded) == FRAMES and decoded[0].shape == (360, 640, 3)
    from sam2_tracking.store import open_store

    kept = open_store(store)
    [job] = kept.list_jobs()
    assert job.status == "done" and job.frames_done == FRAMES
    assert kept.job_frames_written(job.job_id) == set(range(FRAMES))
    kept.close()


def test_track_backward_from_a_mask_seed(sample_video, sample_video_meta, test_model_dir, tmp_path):
    from PIL import Image

    mask = np.zeros((360, 640), np.uint8)
    mask[142:218, 462:538] = 255
    Image.fromarray(mask).save(tmp_path / "seed.png")
    out = tmp_path / "back.json"
    seed_args = track_args(sample_video, sample_video_meta, test_model_dir, out, "dive", "--mask",
                           str(tmp_path / "seed.png"), "--direction", "both")
    seed_args[seed_args.index("--frame") + 1] = "20"
    assert main(seed_args) == 0
    [track] = json.loads(out.read_text())["tracks"].values()
    frames = [f["frame"] for f in track["features"]]
    assert 20 in frames and all(20 - FRAMES < f < 20 + FRAMES for f in frames)


def test_convert_between_formats(sample_video, sample_video_meta, test_model_dir, tmp_path):
    zip_path = tmp_path / "tracks.zip"
    assert main(track_args(sample_video, sample_video_meta, test_model_dir, zip_path, "maskzip")) == 0
    coco = tmp_path / "tracks.json"
    assert main(["convert", str(zip_path), str(coco), "--format", "coco"]) == 0
    original, converted = load_annotations(zip_path), load_annotations(coco)
    assert [(f.frame_idx, f.rle) for f in converted.tracks[0].features] == [
        (f.frame_idx, f.rle) for f in original.tracks[0].features if f.rle is not None
    ]
    overlay = tmp_path / "overlay.mp4"
    assert main(["convert", str(coco), str(overlay), "--format", "mp4", "--video", str(sample_video)]) == 0
    with av.open(str(overlay)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 150


def test_track_several_objects_seeded_by_box_clicks_and_mask(sample_video, sample_video_meta, test_model_dir,
                                                             tmp_path, capsys):
    from PIL import Image

    seed = sample_video_meta["seeds"][0]
    mask = np.zeros((360, 640), np.uint8)
    mask[142:218, 462:538] = 255
    Image.fromarray(mask).save(tmp_path / "seed.png")
    out = tmp_path / "many.json"
    args = track_args(sample_video, sample_video_meta, test_model_dir, out, "dive", frames=2)
    at = args.index("--box")
    del args[at : at + 2]
    args += ["--object", "label=boxed;box=" + ",".join(str(v) for v in seed["box"]),
             "--object", "label=clicked;click=500,180;neg=100,100",
             "--object", f"label=masked;mask={tmp_path / 'seed.png'}"]
    assert main(args) == 0, capsys.readouterr().err
    tracks = load_annotations(out).tracks
    assert [t.label for t in tracks] == ["boxed", "clicked", "masked"]
    seeds = [next(f for f in t.features if f.keyframe) for t in tracks]
    assert seeds[0].box.as_list() == seed["box"] and seeds[0].clicks == ()
    assert [(c.x, c.y, c.positive) for c in seeds[1].clicks] == [(500, 180, True), (100, 100, False)]
    assert seeds[1].box is None  # clicks alone: no box, whatever DIVE's bounds show
    for track in tracks:  # one job gave all three a result (a mask, or "absent": random weights) on both frames
        assert {f.frame_idx for f in track.features} == {seed["frame"], seed["frame"] + 1}
        assert all(f.frame_idx in track.masks_elsewhere or not f.present for f in track.features if not f.keyframe)
    assert main(args[: args.index("--object")] + ["--object", "label=x;colour=red"]) == 2
    assert "unknown key 'colour'" in capsys.readouterr().err
    assert main(args[: args.index("--object")]) == 2
    assert "nothing to track" in capsys.readouterr().err


def test_cli_errors_are_messages(sample_video, test_model_dir, tmp_path, capsys):
    out = tmp_path / "x.json"
    base = ["track", str(sample_video), "--frame", "0", "--model", str(test_model_dir), "--out", str(out),
            "--format", "coco"]
    assert main([*base, "--box", "1,2,3"]) == 2
    assert "--box must be four numbers" in capsys.readouterr().err
    assert main([*base, "--box", "10,10,50,50", "--frame", "999"]) == 2
    assert "outside the video" in capsys.readouterr().err
    assert main(["track", str(sample_video), "--frame", "0", "--box", "1,1,9,9", "--model", "no-such-model",
                 "--out", str(out), "--format", "coco"]) == 2
    assert "neither a folder nor a downloaded model" in capsys.readouterr().err
    dive = tmp_path / "d.json"
    dive.write_text(json.dumps({"version": 2, "tracks": {}, "groups": {}}))
    assert main(["convert", str(dive), str(tmp_path / "o.mp4"), "--format", "mp4"]) == 2
    assert "--video" in capsys.readouterr().err


def test_the_frame_plan_counts_what_the_cli_tracks():
    assert FramePlan(3, 150, 8, "forward").total == 8
    assert FramePlan(145, 150, 8, "forward").total == 5
    assert FramePlan(3, 150, 8, "backward").total == 4
    assert FramePlan(20, 150, 8, "both").total == 15
    assert FramePlan(0, 150, None, "forward").total == 150
    assert FramePlan(2, 4, None, "both").frames() == [2, 3, 1, 0]
    assert FramePlan(0, 10, 3, "both").passes() == [(range(0, 3), False)]  # stock skips a reverse pass from 0


def test_convert_reports_what_it_drops(tmp_path, capsys):
    from tests.test_interop_dive import dive_style_file

    source = tmp_path / "dive_style.json"
    source.write_text(json.dumps(dive_style_file()))
    assert main(["convert", str(source), str(tmp_path / "out.json"), "--format", "dive"]) == 0
    err = capsys.readouterr().err
    assert "warning (not imported" in err and "Polygon geometry" in err and "head points" in err
    # Nothing in it has a mask: a COCO file of it holds no annotation, and the person is told so.
    assert main(["convert", str(source), str(tmp_path / "out.coco.json"), "--format", "coco", "--video",
                 str(REPO_ROOT / "assets" / "sample_shapes.mp4")]) == 0
    assert "holds 0 annotations" in capsys.readouterr().err


def constant_png(width: int, height: int) -> bytes:
    """A real RGB PNG of one colour, written row by row through zlib: a 13000x13000 frame (507 MB decoded) is a few
    hundred KB, and this process never holds its pixels."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes([40, 90, 160]) * width  # filter byte "none", then the pixels
    packer = zlib.compressobj(9)
    pixels = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


# `python -m sam2_tracking ARGS` that prints its peak RSS as it exits: VmHWM counts this process's own memory, where
# getrusage's ru_maxrss starts from the RSS of the parent that forked it (here pytest, with models loaded).
_CLI_REPORTING_PEAK_RSS = """
import atexit, re, runpy, sys
from pathlib import Path

def report():
    peak = re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1)
    print(f"peak RSS {peak} kB", file=sys.stderr)

atexit.register(report)
sys.argv = ["sam2_tracking", *sys.argv[1:]]
runpy.run_module("sam2_tracking", run_name="__main__", alter_sys=True)
"""


def test_the_cli_applies_the_app_upload_caps_before_decoding(test_model_dir, tmp_path, capsys):
    """Two 13000x13000 frames (over SAM2T_MAX_FRAME_PIXELS) in a zip of a few hundred KB: `track` and `convert
    --video` refuse it from the PNG headers with the app's own upload message, and the process stays small."""
    import os
    import re

    from sam2_tracking.library import add_uploaded_video
    from sam2_tracking.settings import Settings
    from sam2_tracking.store import open_store
    from sam2_tracking.upload_checks import UploadError

    frame = constant_png(13000, 13000)
    frames = tmp_path / "huge_frames.zip"
    with zipfile.ZipFile(frames, "w") as archive:
        archive.writestr("frame_0.png", frame)
        archive.writestr("frame_1.png", frame)
    assert frames.stat().st_size < 2 * 1024**2
    # What the app's upload says about this file.
    store = open_store(tmp_path / "app.db")
    try:
        with pytest.raises(UploadError) as refused:
            add_uploaded_video(store, Settings(data_dir=tmp_path / "app", model_dir=tmp_path / "models"), frames)
    finally:
        store.close()
    message = str(refused.value)
    assert "13000x13000" in message and "SAM2T_MAX_FRAME_PIXELS" in message
    # The CLI in its own process, which reports its own peak RSS as it exits.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAM2T_")}
    run = subprocess.run(
        [sys.executable, "-c", _CLI_REPORTING_PEAK_RSS, "track", str(frames), "--frame", "0", "--box", "10,10,50,50",
         "--model", str(test_model_dir), "--out", str(tmp_path / "never.json"), "--format", "coco", "--quiet"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
        env={**env, "SAM2T_DATA_DIR": str(tmp_path / "cli")})
    assert run.returncode == 2, run.stderr
    assert f"python -m sam2_tracking track: error: {message}" in run.stderr
    peak = int(re.search(r"peak RSS (\d+) kB", run.stderr).group(1)) * 1024
    assert peak < 1024**3, run.stderr
    assert not (tmp_path / "never.json").exists()
    # convert --video takes the video the same way.
    dive = tmp_path / "tracks.json"
    dive.write_text(json.dumps({"version": 2, "tracks": {}, "groups": {}}))
    assert main(["convert", str(dive), str(tmp_path / "o.json"), "--format", "coco", "--video", str(frames)]) == 2
    assert f"convert: error: {message}" in capsys.readouterr().err
