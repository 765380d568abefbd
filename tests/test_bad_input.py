"""One table of hostile and broken input: uploads, imports, seeds, tracking requests, model sources and configs.

Every case asserts three things: the person gets a message they can act on (matched below), the store is byte for
byte what it was (every row of every table, sam2_tracking/testing/db_snapshot.py), and the app still works.

Crash-class cases (frames or RLE sizes that would take gigabytes, zip bombs) run against a REAL app subprocess
through gradio_client, exactly as a browser's upload would reach it; the rest run in-process through the functions
the UI handlers call (library.add_uploaded_video, ui.annotation_files.import_file, store.save_edits, dispatch's job
validation, ui.admin's model handlers, model_config.validate_config). Files are tiny and made in the test.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from sam2_tracking.testing.db_snapshot import snapshot
from sam2_tracking.testing.hostile_files import (
    growing_mkv,
    jpeg_claiming,
    lying_mkv,
    png_bytes,
    small_png,
    understating_zip,
    zip_bomb,
    zip_bytes,
)
from tests.bad_input_runners import (
    ASSETS,
    REMOTE_UPLOAD_BYTES,
    REMOTE_ZIP_BYTES,
    REMOTE_ZIP_MEMBERS,
    Case,
    InProcess,
    Remote,
    _on,
    add_model,
    config_text,
    import_,
    seed,
    track,
    upload,
)

VIDEO_W, VIDEO_H, VIDEO_FRAMES = 640, 360, 150  # assets/sample_shapes.mp4


def square_rle() -> dict:
    from sam2_tracking.engine.masks import mask_to_rle

    mask = np.zeros((VIDEO_H, VIDEO_W), bool)
    mask[10:20, 10:20] = True
    return mask_to_rle(mask)


def coco(segmentation: dict | None = None, **annotation) -> bytes:
    ann = {"id": 1, "image_id": 1, "category_id": 1, "track_id": 1, "iscrowd": 0, "area": 100,
           "bbox": [10, 10, 10, 10], "segmentation": segmentation or square_rle()}
    ann.update(annotation)
    return json.dumps({"images": [{"id": 1, "file_name": "0.png", "width": VIDEO_W, "height": VIDEO_H,
                                   "frame_index": 0}],
                       "categories": [{"id": 1, "name": "fish"}], "annotations": [ann]}).encode()


def dive(tracks: dict | None = None, **feature) -> bytes:
    feat = {"frame": 0, "bounds": [10, 10, 50, 50], "keyframe": True}
    feat.update(feature)
    if tracks is None:
        tracks = {"1": {"id": 1, "begin": 0, "end": 0, "confidencePairs": [["fish", 1.0]], "attributes": {},
                        "meta": {}, "features": [feat]}}
    return json.dumps({"version": 2, "tracks": tracks, "groups": {}}).encode()


def mask_zip(rle_masks=None, pngs: dict[str, bytes] | None = None) -> bytes:
    members = {"masks/TrackJSON.json": dive(hasMask=True)}
    if rle_masks is not None:
        members["masks/RLE_MASKS.json"] = json.dumps(rle_masks).encode()
    members.update(pngs or {})
    return zip_bytes(members)


NOT_VIDEO = r"^\w+\.\w+ is not a video FFmpeg can read, or it is truncated \([^/]*\)$"


RLE_SIZE = r"Nothing was imported: .*RLE size is \d+x\d+ but the video is 640x360"


CASES = [
    # -- uploads: crash-class, against the real app
    Case("upload-png-13000x13000-in-zip", "upload", upload("big.zip", lambda: zip_bytes({"f0.png": png_bytes(13000, 13000)})),
         r"13000x13000 .*over the limit of .* pixels \(setting SAM2T_MAX_FRAME_PIXELS\)", remote=True),
    Case("upload-mjpeg-mkv-8000x8000", "upload", upload("big.mkv", lying_mkv),
         r"over the limit of .* pixels \(setting SAM2T_MAX_FRAME_PIXELS\)", remote=True),
    Case("upload-zip-bomb", "upload", upload("bomb.zip", lambda: zip_bomb(REMOTE_ZIP_BYTES + 8 * 1024**2)),
         r"expands to .* over the limit of .* \(setting SAM2T_MAX_ZIP_BYTES\)", remote=True),
    Case("upload-zip-too-many-members", "upload",
         upload("many.zip", lambda: zip_bytes({f"f{i}.png": b"" for i in range(REMOTE_ZIP_MEMBERS + 1)})),
         r"holds more than 500 files, the limit \(setting SAM2T_MAX_ZIP_MEMBERS\)", remote=True),
    Case("upload-jpeg-claiming-60000x60000", "upload",
         upload("claims.zip", lambda: zip_bytes({"f0.jpg": jpeg_claiming(60000, 60000)})),
         r"(?i)over the limit of .* pixels|larger than the limit", remote=True),
    Case("upload-second-frame-huge", "upload",
         upload("second.zip", lambda: zip_bytes({"f0.png": small_png(), "f1.png": png_bytes(13000, 13000)})),
         r"f1.png: frames are 13000x13000", remote=True),
    Case("upload-over-max-file-size", "upload",
         lambda ctx: ctx.raw_upload("long.mp4", b"\0" * (REMOTE_UPLOAD_BYTES + 1)),
         r"HTTP 413: File size exceeded maximum allowed size of 2097152 bytes", remote=True),
    # -- uploads: in-process
    Case("upload-mkv-frame-grows-mid-stream", "upload", upload("grows.mkv", growing_mkv),
         r"grows.mkv is corrupt or truncated \(Invalid argument\)"),
    Case("upload-empty-mp4", "upload", upload("empty.mp4", b""), NOT_VIDEO),
    Case("upload-random-bytes-mp4", "upload", upload("noise.mp4", bytes(range(256)) * 40), NOT_VIDEO),
    Case("upload-text-as-mkv", "upload", upload("notes.mkv", b"hello, this is not a video\n" * 50), NOT_VIDEO),
    Case("upload-garbage-webm", "upload", upload("x.webm", b"\x1a\x45\xdf\xa3" + b"\xff" * 500), NOT_VIDEO),
    Case("upload-empty-avi", "upload", upload("x.avi", b"RIFF\0\0\0\0AVI "), NOT_VIDEO),
    Case("upload-truncated-mp4", "upload",
         upload("cut.mp4", lambda: (ASSETS / "sample_shapes.mp4").read_bytes()[:20000]), NOT_VIDEO),
    Case("upload-unsupported-suffix", "upload", upload("clip.txt", b"x"),
         r"not a supported file type; use \.mp4, \.mov, \.avi, \.mkv, \.webm, \.zip"),
    Case("upload-single-png", "upload", upload("frame.png", small_png()), r"not a supported file type"),
    Case("upload-exe-suffix", "upload", upload("run.exe", b"MZ"), r"not a supported file type"),
    Case("upload-not-a-zip", "upload", upload("frames.zip", b"PK\x03\x04 not really"),
         r"not a valid zip file, or it is truncated"),
    Case("upload-empty-file-zip", "upload", upload("frames.zip", b""), r"not a valid zip file"),
    Case("upload-empty-zip", "upload", upload("frames.zip", lambda: zip_bytes({})), r"holds no JPEG or PNG images"),
    Case("upload-zip-of-text", "upload", upload("frames.zip", lambda: zip_bytes({"a.txt": b"x"})),
         r"holds no JPEG or PNG images"),
    Case("upload-zip-only-macos-junk", "upload",
         upload("frames.zip", lambda: zip_bytes({"__MACOSX/f0.png": small_png(), ".hidden.png": small_png()})),
         r"holds no JPEG or PNG images"),
    Case("upload-zip-garbage-png", "upload", upload("frames.zip", lambda: zip_bytes({"f0.png": b"not a png"})),
         r"f0.png is not a PNG or JPEG image"),
    Case("upload-zip-tiff-named-png", "upload",
         upload("frames.zip", lambda: zip_bytes({"f0.png": b"II*\0" + b"\0" * 200})),
         r"f0.png is not a PNG or JPEG image"),
    Case("upload-zip-two-frame-sizes", "upload",
         upload("frames.zip", lambda: zip_bytes({"f0.png": small_png(8, 8), "f1.png": small_png(8, 9)})),
         r"f1.png is 8x9, but f0.png is 8x8: every frame of an image sequence must have the same size"),
    Case("upload-zip-second-frame-garbage", "upload",
         upload("frames.zip", lambda: zip_bytes({"f0.png": small_png(), "f2.png": b"\x89PNG\r\n\x1a\ntrunc"})),
         r"f2.png is not a PNG or JPEG image"),
    Case("upload-video-over-frame-limit", "upload",
         upload("sample.mp4", lambda: (ASSETS / "sample_shapes.mp4").read_bytes(), max_frame_pixels=200_000),
         r"640x360 \(230,400 pixels\), over the limit of 200,000 pixels \(setting SAM2T_MAX_FRAME_PIXELS\)"),
    Case("upload-over-byte-limit", "upload",
         upload("sample.mp4", lambda: (ASSETS / "sample_shapes.mp4").read_bytes(), max_upload_bytes=1000),
         r"sample.mp4 is 5\d\d.\d KB, over the upload limit of 1000 bytes \(setting SAM2T_MAX_UPLOAD_BYTES\)"),
    Case("upload-zip-over-member-limit", "upload",
         upload("frames.zip", lambda: zip_bytes({f"{i}.png": small_png() for i in range(4)}), max_zip_members=3),
         r"holds more than 3 files, the limit"),
    Case("upload-zip-end-record-understates-members", "upload",
         upload("frames.zip", lambda: understating_zip({f"{i}.png": small_png() for i in range(5)}, claimed=2),
                max_zip_members=3),
         r"frames.zip holds more than 3 files, the limit \(setting SAM2T_MAX_ZIP_MEMBERS\)"),
    Case("upload-zip-over-expansion-limit", "upload",
         upload("frames.zip", lambda: zip_bytes({"f0.png": small_png(), "pad.bin": b"\0" * 20000}),
                max_zip_bytes=10000),
         r"expands to \d+.\d KB, over the limit of 9.8 KB \(setting SAM2T_MAX_ZIP_BYTES\)"),
    # -- imports: crash-class RLE sizes, against the real app
    Case("import-coco-rle-size-100000x100000", "import",
         import_("huge.json", lambda: coco({"size": [100000, 100000], "counts": "0"})), RLE_SIZE, remote=True),
    Case("import-coco-rle-size-2pow31", "import",
         import_("huge.json", lambda: coco({"size": [2**31, 2**31], "counts": "0"})), RLE_SIZE, remote=True),
    Case("import-coco-rle-size-46341-square", "import",
         import_("huge.json", lambda: coco({"size": [46341, 46341], "counts": [46341 * 46341]})), RLE_SIZE,
         remote=True),
    Case("import-maskzip-rle-size-huge", "import",
         import_("masks.zip", lambda: mask_zip({"1": {"0": {"rle": {"size": [90000, 90000], "counts": "0"}}}})),
         RLE_SIZE, remote=True),
    Case("import-maskzip-png-13000x13000", "import",
         import_("masks.zip", lambda: mask_zip(pngs={"masks/1/0.png": png_bytes(13000, 13000)})),
         r"Nothing was imported: .*13000x13000 video but this video is 640x360", remote=True),
    Case("import-maskzip-bomb", "import",
         import_("masks.zip", lambda: zip_bomb(REMOTE_ZIP_BYTES + 8 * 1024**2, "masks/1/0.png")),
         r"Nothing was imported: .*expands \d+ times its size, more than the 600x allowed \(SAM2T_MAX_ZIP_RATIO\)",
         remote=True),
    # -- imports: in-process
    Case("import-no-file", "import", lambda ctx: ctx.import_file(None, None, "Detect from the file", "video"),
         r"Choose a DIVE JSON, DIVE mask zip, COCO"),
    Case("import-no-video-open", "import", import_("a.json", dive(), dataset=None), r"Open a video first"),
    Case("import-empty-file", "import", import_("a.json", b""), r"Nothing was imported: .*neither a zip nor JSON"),
    Case("import-not-json", "import", import_("a.json", b"{not json"), r"Nothing was imported: a\.json is neither a zip nor JSON \(.+\): cannot tell its format"),
    Case("import-json-array", "import", import_("a.json", b"[1, 2, 3]"),
         r"Nothing was imported: .*neither COCO .* nor DIVE"),
    Case("import-json-nested-deep", "import", import_("a.json", b"[" * 100000 + b"]" * 100000),
         r"Nothing was imported: a\.json nests its data too deeply to be an annotation file"),
    Case("import-coco-rle-size-mismatch", "import",
         import_("c.json", lambda: coco({"size": [100, 100], "counts": [10000]})),
         r"Nothing was imported: annotations\[0\] \(track 1, frame 0\) 'segmentation': RLE size is 100x100 but the video is 640x360"),
    Case("import-coco-counts-garbage", "import",
         import_("c.json", lambda: coco({"size": [VIDEO_H, VIDEO_W], "counts": "\x7f\x7f~~~"})),
         r"Nothing was imported: annotations\[0\] \(track 1, frame 0\) 'segmentation': RLE counts string holds characters outside the COCO RLE alphabet"),
    Case("import-coco-counts-list-short", "import",
         import_("c.json", lambda: coco({"size": [VIDEO_H, VIDEO_W], "counts": [5, 5]})),
         r"Nothing was imported: annotations\[0\] \(track 1, frame 0\) 'segmentation': RLE counts add up to 10, expected 230400 for size \[360, 640\]"),
    Case("import-coco-counts-negative", "import",
         import_("c.json", lambda: coco({"size": [VIDEO_H, VIDEO_W], "counts": [-5, VIDEO_W * VIDEO_H + 5]})),
         r"Nothing was imported: annotations\[0\] \(track 1, frame 0\) 'segmentation': RLE counts must be non-negative integers no larger than the frame"),
    Case("import-coco-size-negative", "import",
         import_("c.json", lambda: coco({"size": [-360, 640], "counts": "0"})),
         r"Nothing was imported: annotations\[0\] \(track 1, frame 0\) 'segmentation': RLE size must be two positive integers \[height, width\], got \[-360, 640\]"),
    Case("import-coco-size-strings", "import",
         import_("c.json", lambda: coco({"size": ["a", "b"], "counts": "0"})), r"Nothing was imported: annotations\[0\] \(track 1, frame 0\) 'segmentation': RLE must have 'size' \[height, width\] and 'counts', got \{'size': \['a', 'b'\]"),
    Case("import-coco-bbox-1e308", "import",
         import_("c.json", lambda: coco(None, bbox=[0, 0, 1e308, 1e308]).replace(b'"segmentation"', b'"unused"')),
         r"Nothing was imported: track 1, frame 0: box or click \(0, 0, 1e\+308, 1e\+308\) lies far outside the 640x360 frame"),
    Case("import-coco-frame-index-huge", "import",
         import_("c.json", lambda: coco(None, image_id=10**400)),
         r"Nothing was imported: .*image_id 1000+ is not in 'images'"),
    Case("import-dive-track-id-not-int", "import",
         import_("d.json", lambda: dive({"abc": {"id": "abc", "begin": 0, "end": 0, "features": []}})),
         r"Nothing was imported: a key of 'tracks': 'abc' is not a non-negative integer"),
    Case("import-dive-frame-negative", "import", import_("d.json", lambda: dive(frame=-1)),
         r"Nothing was imported: track 1: feature 'frame' must be at least 0, got -1"),
    Case("import-dive-frame-beyond-video", "import", import_("d.json", lambda: dive(frame=VIDEO_FRAMES + 10)),
         r"Nothing was imported: track 1, frame 160: the frame is outside the video \(150 frames, 0 to 149\)"),
    Case("import-dive-frame-10pow400", "import",
         import_("d.json", lambda: dive().replace(b'"frame": 0', b'"frame": 1' + b"0" * 400)),
         r"Nothing was imported: track 1: feature 'frame' must be an integer, got 10{20,}"),
    Case("import-dive-bounds-inverted", "import", import_("d.json", lambda: dive(bounds=[50, 50, 10, 10])),
         r"Nothing was imported: track 1, frame 0 'bounds' \[50, 50, 10, 10\] is inverted"),
    Case("import-dive-bounds-1e308", "import", import_("d.json", lambda: dive(bounds=[0, 0, 1e308, 1e308])),
         r"Nothing was imported: track 1, frame 0: box or click \(0, 0, 1e\+308, 1e\+308\) lies far outside the 640x360 frame"),
    Case("import-dive-bounds-nan", "import",
         import_("d.json", lambda: dive().replace(b"[10, 10, 50, 50]", b"[NaN, 10, 50, 50]")),
         r"Nothing was imported: track 1, frame 0 'bounds' must be a finite number, got nan"),
    Case("import-dive-bounds-short", "import", import_("d.json", lambda: dive(bounds=[1, 2])),
         r"Nothing was imported: track 1, frame 0 'bounds' must be \[x1, y1, x2, y2\], got \[1, 2\]"),
    Case("import-dive-label-5mb", "import",
         import_("d.json", lambda: dive({"1": {"id": 1, "begin": 0, "end": 0, "confidencePairs": [["x" * 5_000_000, 1]],
                                              "features": [{"frame": 0, "bounds": [1, 1, 5, 5]}]}})),
         r"Nothing was imported: track 1: a label of 5000000 characters is longer than the 256 allowed \(SAM2T_MAX_LABEL_CHARS\)"),
    Case("import-dive-200k-tracks", "import",
         import_("d.json", lambda: dive({str(i): {"id": i, "features": []} for i in range(200_000)})),
         r"Nothing was imported: the file has 200000 tracks, more than the 10000 one import may hold \(SAM2T_MAX_TRACKS_PER_IMPORT\)"),
    Case("import-dive-version-99", "import",
         import_("d.json", lambda: dive().replace(b'"version": 2', b'"version": 99')),
         r"Nothing was imported: DIVE JSON version 99 is not supported \(only version 2\)"),
    Case("import-dive-features-not-list", "import",
         import_("d.json", lambda: dive({"1": {"id": 1, "features": "nope"}})),
         r"Nothing was imported: .*'features' must be a list"),
    Case("import-maskzip-not-zip", "import", import_("m.zip", b"PK\x03\x04nope"), r"Nothing was imported: m\.zip is not a readable zip archive"),
    Case("import-maskzip-png-wrong-size", "import",
         import_("m.zip", lambda: mask_zip(pngs={"masks/1/0.png": small_png(10, 10, rgba=True)})),
         r"Nothing was imported: masks/1/0\.png is for a 10x10 video but this video is 640x360"),
    Case("import-maskzip-path-traversal", "import",
         import_("m.zip", lambda: mask_zip(pngs={"masks/../../../etc/0.png": small_png(VIDEO_W, VIDEO_H, True)})),
         r"Nothing was imported: .*a path that leaves the archive folder is not allowed"),
    Case("import-maskzip-frame-not-int", "import",
         import_("m.zip", lambda: mask_zip(pngs={"masks/1/first.png": small_png(VIDEO_W, VIDEO_H, True)})),
         r"Nothing was imported: masks/1/first\.png: frame: 'first' is not a non-negative integer"),
    Case("import-maskzip-rle-json-broken", "import",
         import_("m.zip", lambda: zip_bytes({"masks/RLE_MASKS.json": b"{broken"})),
         r"Nothing was imported: masks/RLE_MASKS.json is not valid JSON"),
    Case("import-dive-as-coco-forced", "import", import_("d.json", dive(), fmt="COCO"),
         r"Nothing was imported: the COCO file has no 'images' list"),
    # -- seeds: what the Save button sends (the viewer's value is JSON from the browser)
    Case("seed-box-outside-frame", "seed", seed(_on(0, box=[5000, 5000, 5100, 5100])), r"the box is empty"),
    Case("seed-box-nan", "seed", seed(_on(0, box=[float("nan"), 0, 10, 10])), r"box: not a number"),
    Case("seed-box-inf", "seed", seed(_on(0, box=[0, 0, float("inf"), 10])), r"box: not a number"),
    Case("seed-box-strings", "seed", seed(_on(0, box=["a", "b", "c", "d"])), r"box: not a number"),
    Case("seed-box-three-numbers", "seed", seed(_on(0, box=[1, 2, 3])), r"a box has four numbers"),
    Case("seed-box-inverted", "seed", seed(_on(0, box=[50, 50, 10, 10])), r"the box is empty"),
    Case("seed-box-a-dict", "seed", seed(_on(0, box={"x": 1})), r"a box has four numbers"),
    Case("seed-frame-negative", "seed", seed(_on(-1, box=[1, 1, 9, 9])), r"frame '-1': not a frame of this video"),
    Case("seed-frame-beyond-video", "seed", seed(_on(VIDEO_FRAMES, box=[1, 1, 9, 9])), r"not a frame of this video"),
    Case("seed-frame-not-a-number", "seed", seed(_on("abc", box=[1, 1, 9, 9])), r"not a frame of this video"),
    Case("seed-track-not-a-number", "seed", seed(_on(0, box=[1, 1, 9, 9], track_id="abc")), r"not a track id"),
    Case("seed-unknown-track", "seed", seed(_on(0, box=[1, 1, 9, 9], track_id=987654)),
         r"Track #987654 no longer exists"),
    Case("seed-other-videos-track", "seed", seed(_on(0, box=[1, 1, 9, 9], track_id="other")),
         r"belongs to another video"),
    Case("seed-too-many-clicks", "seed", seed(_on(0, clicks=[[5, 5, True]] * 1000)), r"at most \d+ clicks"),
    Case("seed-click-malformed", "seed", seed(_on(0, clicks=[[5, 5]])), r"a click is \[x, y, positive\]"),
    Case("seed-click-nan", "seed", seed(_on(0, clicks=[[float("nan"), 5, True]])), r"click: not a number"),
    # Revision 0 is the video before the fixture's own save: someone else saved since this page loaded it.
    Case("seed-stale-revision", "seed", seed(_on(0, box=[1, 1, 9, 9]), base_revision=0),
         r"changed since you loaded it \(revision 0, now [1-9]\d*\): reload it to see the other changes"),
    Case("seed-negative-revision", "seed", seed(_on(0, box=[1, 1, 9, 9]), base_revision=-5),
         r"viewer state the server cannot use: base_revision must be 0 or more, got -5"),
    Case("seed-no-video-open", "seed", seed(_on(0, box=[1, 1, 9, 9]), dataset=None), r"Open a video first"),
    Case("seed-removed-video", "seed", seed(_on(0, box=[1, 1, 9, 9]), dataset={"id": 424242}),
         r"This video was removed; open another one"),
    Case("seed-rename-to-nothing", "seed", lambda ctx: ctx.rename("   "), r"Type the new label first"),
    # -- tracking requests: what the track button sends
    Case("track-unknown-queue", "track", track(queue="evil"), r"unknown queue 'evil': this server offers cpu, gpu"),
    Case("track-removed-video", "track", track(dataset={"id": 424242}), r"This video was removed"),
    Case("track-no-video-open", "track", track(dataset=None), r"Open a video first"),
    Case("track-unknown-model", "track", track(model="nope"), r"unknown model 'nope': an admin adds models"),
    Case("track-no-model", "track", track(model=""), r"Choose a model"),
    Case("track-model-not-downloaded", "track", track(model="sam2.1_hiera_large"),
         r"is not downloaded \(status: absent\); ask an admin"),
    Case("track-start-beyond-video", "track", track(frame_idx=VIDEO_FRAMES), r"outside the video"),
    Case("track-start-negative", "track", track(frame_idx=-3), r"frame must be 0 or more"),
    Case("track-no-seed-on-start-frame", "track", track(frame_idx=7), r"has no saved box, mask or clicks on frame 7"),
    Case("track-unknown-track", "track", track(selected=[99999]), r"Track #99999 no longer exists"),
    Case("track-other-videos-track", "track", track(selected="other"), r"belongs to another video"),
    Case("track-no-track-selected", "track", track(selected=[], active=None), r"Select a track first"),
    Case("track-unsaved-edits", "track", track(pending={"0": {"own": {"box": [1, 1, 9, 9]}}}),
         r"Save your edits first"),
    Case("track-batch-size-7", "track", track(batch_size="7"), r"batch size must be one of"),
    Case("track-batch-size-text", "track", track(batch_size="abc"), r"batch size must be a whole number, got 'abc'"),
    Case("track-notify-0", "track", track(notify=0), r"notification percent must be between"),
    Case("track-notify-1000", "track", track(notify=1000), r"notification percent must be between"),
    Case("track-notify-nan", "track", track(notify=float("nan")), r"notification percent must be a whole number, got 'nan'"),
    Case("track-num-frames-negative", "track", track(num_frames=-5), r"number of frames must be at least 1"),
    Case("track-num-frames-inf", "track", track(num_frames=float("inf")), r"number of frames must be a whole number, got 'inf'"),
    Case("track-num-frames-text", "track", track(num_frames="lots"), r"number of frames must be a whole number, got 'lots'"),
    Case("track-direction-sideways", "track", track(direction="sideways"), r"direction must be one of forward, backward, both, got 'sideways'"),
    # -- model sources (admin handlers; the admin is allowed, the input is not)
    Case("model-empty-name", "model", add_model(name=""), r"model name .* may only use letters, digits"),
    Case("model-name-with-path", "model", add_model(name="../../etc"), r"model name .* may only use letters, digits"),
    Case("model-name-10k", "model", add_model(name="m" * 10_000), r"model name .* may only use letters, digits"),
    Case("model-default-name", "model", add_model(name="sam2.1_hiera_tiny"), r"is the name of a default model"),
    Case("model-config-abs-path", "model", add_model(config="/etc/passwd"), r"must be a built-in sam2 config"),
    Case("model-config-file-url", "model", add_model(config="file:///etc/passwd"), r"must be a built-in sam2 config"),
    Case("model-config-traversal", "model", add_model(config="configs/../../../../etc/x.yaml"),
         r"must be a built-in sam2 config"),
    Case("model-checkpoint-ftp", "model", add_model(url="ftp://example.org/x.pt"), r"checkpoint URL must be an http:// or https:// URL"),
    Case("model-checkpoint-file-url", "model", add_model(url="file:///etc/shadow"), r"checkpoint URL must be an http:// or https:// URL"),
    Case("model-checkpoint-no-host", "model", add_model(url="http:///x.pt"), r"checkpoint URL must be an http:// or https:// URL"),
    Case("model-download-unknown", "model", lambda ctx: ctx.download_model("no-such-model"), r"model 'no-such-model' is not in the catalogue"),
    Case("model-remove-unknown", "model", lambda ctx: ctx.remove_model("no-such-model"), r"model 'no-such-model' is not in the catalogue"),
    # -- model configs (what a consumer checks before it builds anything)
    Case("config-target-os-system", "config", config_text("model:\n  _target_: os.system\n  command: id\n"),
         r"model._target_ = 'os.system': only SAM2 model classes may be instantiated"),
    Case("config-target-build-sam", "config",
         config_text("model:\n  _target_: sam2.build_sam.build_sam2\n  config_file: x\n"), r"model._target_ = '[\w.]+': only SAM2 model classes may be instantiated"),
    Case("config-oc-env", "config",
         config_text("model:\n  _target_: sam2.modeling.sam2_base.SAM2Base\n  x: ${oc.env:SAM2T_ADMIN_PASSWORD}\n"),
         r"holds an interpolation .*never resolved"),
    Case("config-python-tag", "config", config_text("model: !!python/object/apply:os.system ['id']\n"),
         r"model config is not valid YAML at line 1, column \d+: could not determine a constructor"),
    Case("config-not-yaml", "config", config_text("model: [unclosed\n"), r"model config is not valid YAML at line 2"),
    Case("config-a-list", "config", config_text("- 1\n- 2\n"), r"is a YAML list, not a YAML mapping"),
    Case("config-a-path", "config", config_text("configs/sam2.1/sam2.1_hiera_t.yaml"), r"single line of text \(it is never read as a file path\)"),
    Case("config-billion-laughs", "config",
         config_text("a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
                     "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nmodel: *e\n"),
         r"over 100000 entries \(YAML aliases\?\)"),
    Case("config-huge", "config", config_text(lambda: "model:\n  x: " + "a" * 2_000_000 + "\n"),
         r"model config is over 1 MB"),
    Case("config-builtins-eval", "config", config_text("model:\n  _target_: builtins.eval\n  _args_: ['1']\n"),
         r"model._target_ = '[\w.]+': only SAM2 model classes may be instantiated"),
]


@pytest.fixture(scope="module")
def in_process(tmp_path_factory):
    return InProcess(tmp_path_factory.mktemp("bad-input"))


@pytest.fixture(scope="module")
def remote_app(tmp_path_factory):
    app = Remote(tmp_path_factory.mktemp("bad-input-app"))
    yield app
    app.stop()


def test_the_table_is_large_and_covers_every_area():
    assert len(CASES) >= 80
    assert len({c.case_id for c in CASES}) == len(CASES)
    assert {c.area for c in CASES} == {"upload", "import", "seed", "track", "model", "config"}


# The crash-class cases start the app in a subprocess (once for the module): slow, like the other app tests.
@pytest.mark.parametrize("case", [pytest.param(c, id=c.case_id, marks=[pytest.mark.slow] if c.remote else [])
                                  for c in CASES])
def test_bad_input_is_refused_with_a_message_and_changes_nothing(case: Case, request):
    ctx = request.getfixturevalue("remote_app" if case.remote else "in_process")
    before = snapshot(ctx.db_path())
    with pytest.raises(Exception) as refused:  # noqa: B017 - gr.Error, VideoError, ValueError...: the text matters
        case.act(ctx)
    message = str(refused.value)
    assert refused.type.__name__ not in ("OverflowError", "RecursionError", "MemoryError", "KeyError",
                                         "TypeError", "AttributeError", "IndexError", "ZeroDivisionError"), message
    assert re.search(case.message, message), f"{refused.type.__name__}: {message[:500]}"
    assert snapshot(ctx.db_path()) == before, "the store changed"
    assert ctx.alive(), "the app process died"
