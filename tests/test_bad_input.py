"""One table of hostile and broken input: uploads, imports, seeds, tracking requests, model sources and configs.

Every case asserts three things: the person gets a message they can act on (matched below), the store is byte for
byte what it was (every row of every table, tests/support/db_snapshot.py), and the app process is still alive.

Crash-class cases (frames or RLE sizes that would take gigabytes, zip bombs) run against a REAL app subprocess
through gradio_client, exactly as a browser's upload would reach it; the rest run in-process through the functions
the UI handlers call (library.add_uploaded_video, ui.annotation_files.import_file, store.save_edits, dispatch's job
validation, ui.admin's model handlers, model_config.validate_config). Files are tiny and made in the test.
"""

from __future__ import annotations

import io
import json
import re
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from sam2_tracking.testing.db_snapshot import snapshot

ASSETS = Path(__file__).resolve().parent.parent / "assets"
VIDEO_W, VIDEO_H, VIDEO_FRAMES = 640, 360, 150  # assets/sample_shapes.mp4
REMOTE_ZIP_BYTES = 64 * 1024**2  # the app subprocess's SAM2T_MAX_ZIP_BYTES, so a bomb stays a few hundred KB
REMOTE_ZIP_MEMBERS = 500
REMOTE_UPLOAD_BYTES = 2 * 1024**2  # the app subprocess's SAM2T_MAX_UPLOAD_BYTES (Gradio's max_file_size)


# ---- tiny hostile files -------------------------------------------------------------------------------------------

def png_bytes(width: int, height: int) -> bytes:
    """A valid 1-bit greyscale PNG of any declared size: 13000x13000 is ~20 KB, and 500 MB once decoded to RGB."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    row = b"\0" * (1 + (width + 7) // 8)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row * height, 9)) + chunk(b"IEND", b""))


def small_png(width=8, height=8, rgba=False) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGBA" if rgba else "RGB", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small JPEG whose frame header (SOF0) claims another size."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buffer, format="JPEG")
    data = buffer.getvalue()
    sof = data.index(b"\xff\xc0")
    return data[: sof + 5] + struct.pack(">HH", height, width) + data[sof + 9:]


def lying_mkv(size: int = 8000) -> bytes:
    """An MJPEG Matroska file whose headers (container and JPEG) say size x size; 2 KB on disk."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="matroska") as container:
        stream = container.add_stream("mjpeg", rate=5)
        stream.width = stream.height = 256
        stream.pix_fmt = "yuvj420p"
        frame = av.VideoFrame.from_ndarray(np.zeros((256, 256, 3), np.uint8), format="rgb24").reformat(
            format="yuvj420p")
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    data, new = buffer.getvalue(), struct.pack(">H", size)
    for old in (b"\xb0\x82\x01\x00", b"\xba\x82\x01\x00"):  # Matroska PixelWidth / PixelHeight = 256
        data = data.replace(old, old[:2] + new)
    sof = data.index(b"\xff\xc0")
    return data[: sof + 5] + new + new + data[sof + 9:]


def growing_mkv(big: int = 3000) -> bytes:
    """An MJPEG Matroska file declared (and starting) 256x256 whose third frame is big x big: headers alone cannot
    tell, so the decoder itself must refuse to allocate it."""
    from fractions import Fraction

    import av

    def first_packet(size):
        encoder = av.CodecContext.create("mjpeg", "w")
        encoder.width = encoder.height = size
        encoder.pix_fmt, encoder.time_base = "yuvj420p", Fraction(1, 5)
        frame = av.VideoFrame.from_ndarray(np.full((size, size, 3), 90, np.uint8), format="rgb24")
        return bytes(encoder.encode(frame.reformat(format="yuvj420p"))[0])

    small, large = first_packet(256), first_packet(big)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="matroska") as container:
        stream = container.add_stream("mjpeg", rate=5)
        stream.width = stream.height = 256
        stream.pix_fmt = "yuvj420p"
        for idx, data in enumerate([small, small, large, small]):
            packet = av.Packet(data)
            packet.stream, packet.pts, packet.dts, packet.time_base = stream, idx, idx, Fraction(1, 5)
            container.mux(packet)
    return buffer.getvalue()


def zip_bytes(members: dict[str, bytes], compress: bool = True) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def understating_zip(members: dict[str, bytes], claimed: int) -> bytes:
    """A zip whose end record claims fewer entries than its directory holds."""
    data = bytearray(zip_bytes(members))
    end = data.rindex(b"PK\x05\x06")
    data[end + 8:end + 12] = struct.pack("<HH", claimed, claimed)
    return bytes(data)


def zip_bomb(total: int, name: str = "f0.png") -> bytes:
    """One deflated member of `total` zero bytes (~1000x smaller on disk), named like a frame or a mask."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open(name, "w", force_zip64=True) as member:
            block = b"\0" * (1024 * 1024)
            for _ in range(total // len(block)):
                member.write(block)
    return buffer.getvalue()


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


# ---- the table ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    case_id: str
    area: str  # upload, import, seed, track, model, config
    act: Callable  # act(ctx) -> None, expected to raise
    message: str  # a regex the error's text must match
    remote: bool = False  # run against the app subprocess (crash-class)


def upload(name: str, data: bytes | Callable[[], bytes], **limits):
    def act(ctx):
        return ctx.upload(name, data() if callable(data) else data, limits)
    return act


def import_(name: str, data: bytes | Callable[[], bytes], fmt: str = "Detect from the file", dataset="video"):
    def act(ctx):
        return ctx.import_file(name, data() if callable(data) else data, fmt, dataset)
    return act


def seed(pending: dict | Callable, **value):
    """Save, as the Save button sends it: the viewer's value (untrusted JSON) with its unsaved seeds."""
    def act(ctx):
        return ctx.save(pending(ctx) if callable(pending) else pending, value)
    return act


def track(model="ready-model", queue="cpu", num_frames=0, direction="forward", batch_size="100", notify=5,
          **value):
    """Track, as the track button sends it: the viewer's value plus the tracking controls' values."""
    def act(ctx):
        return ctx.track(value, model, queue, num_frames, direction, batch_size, notify)
    return act


def add_model(name="mine", config="configs/sam2.1/sam2.1_hiera_t.yaml", url="http://127.0.0.1:9/model.pt"):
    def act(ctx):
        return ctx.add_model(name, config, url)
    return act


def config_text(text: str | Callable[[], str]):
    def act(ctx):
        from sam2_tracking.models.config import validate_config

        validate_config(text() if callable(text) else text)
    return act


def _box(*values):
    from sam2_tracking.types import Box

    return Box(*values)


def _on(frame, box=None, clicks=None, track_id="own"):
    """pending = {frame: {track: seed}} as the viewer sends it; track_id "own"/"other" is resolved per context."""
    def make(ctx):
        tid = {"own": ctx.track_id, "other": ctx.other_track_id}.get(track_id, track_id)
        seed_value = {}
        if box is not None:
            seed_value["box"] = box
        if clicks is not None:
            seed_value["clicks"] = clicks
        return {str(frame): {str(tid): seed_value}}
    return make


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
    Case("import-not-json", "import", import_("a.json", b"{not json"), r"Nothing was imported: .*JSON"),
    Case("import-json-array", "import", import_("a.json", b"[1, 2, 3]"),
         r"Nothing was imported: .*neither COCO .* nor DIVE"),
    Case("import-json-nested-deep", "import", import_("a.json", b"[" * 100000 + b"]" * 100000),
         r"Nothing was imported: .*(?i:nest|deep|JSON)"),
    Case("import-coco-rle-size-mismatch", "import",
         import_("c.json", lambda: coco({"size": [100, 100], "counts": [10000]})),
         r"Nothing was imported: .*(?i:size|video)"),
    Case("import-coco-counts-garbage", "import",
         import_("c.json", lambda: coco({"size": [VIDEO_H, VIDEO_W], "counts": "\x7f\x7f~~~"})),
         r"Nothing was imported: .*(?i:counts|RLE)"),
    Case("import-coco-counts-list-short", "import",
         import_("c.json", lambda: coco({"size": [VIDEO_H, VIDEO_W], "counts": [5, 5]})),
         r"Nothing was imported: .*(?i:add up|counts)"),
    Case("import-coco-counts-negative", "import",
         import_("c.json", lambda: coco({"size": [VIDEO_H, VIDEO_W], "counts": [-5, VIDEO_W * VIDEO_H + 5]})),
         r"Nothing was imported: .*(?i:negative|counts)"),
    Case("import-coco-size-negative", "import",
         import_("c.json", lambda: coco({"size": [-360, 640], "counts": "0"})),
         r"Nothing was imported: .*(?i:size)"),
    Case("import-coco-size-strings", "import",
         import_("c.json", lambda: coco({"size": ["a", "b"], "counts": "0"})), r"Nothing was imported: .*(?i:size)"),
    Case("import-coco-bbox-1e308", "import",
         import_("c.json", lambda: coco(None, bbox=[0, 0, 1e308, 1e308]).replace(b'"segmentation"', b'"unused"')),
         r"Nothing was imported: .*(?i:box|bbox)"),
    Case("import-coco-frame-index-huge", "import",
         import_("c.json", lambda: coco(None, image_id=10**400)),
         r"Nothing was imported: .*image_id 1000+ is not in 'images'"),
    Case("import-dive-track-id-not-int", "import",
         import_("d.json", lambda: dive({"abc": {"id": "abc", "begin": 0, "end": 0, "features": []}})),
         r"Nothing was imported: .*(?i:id|integer)"),
    Case("import-dive-frame-negative", "import", import_("d.json", lambda: dive(frame=-1)),
         r"Nothing was imported: .*(?i:frame)"),
    Case("import-dive-frame-beyond-video", "import", import_("d.json", lambda: dive(frame=VIDEO_FRAMES + 10)),
         r"Nothing was imported: .*(?i:frame)"),
    Case("import-dive-frame-10pow400", "import",
         import_("d.json", lambda: dive().replace(b'"frame": 0', b'"frame": 1' + b"0" * 400)),
         r"Nothing was imported: .*(?i:frame)"),
    Case("import-dive-bounds-inverted", "import", import_("d.json", lambda: dive(bounds=[50, 50, 10, 10])),
         r"Nothing was imported: .*(?i:box|bounds)"),
    Case("import-dive-bounds-1e308", "import", import_("d.json", lambda: dive(bounds=[0, 0, 1e308, 1e308])),
         r"Nothing was imported: .*(?i:box|bounds)"),
    Case("import-dive-bounds-nan", "import",
         import_("d.json", lambda: dive().replace(b"[10, 10, 50, 50]", b"[NaN, 10, 50, 50]")),
         r"Nothing was imported: .*(?i:box|bounds|finite|NaN)"),
    Case("import-dive-bounds-short", "import", import_("d.json", lambda: dive(bounds=[1, 2])),
         r"Nothing was imported: .*(?i:box|bounds)"),
    Case("import-dive-label-5mb", "import",
         import_("d.json", lambda: dive({"1": {"id": 1, "begin": 0, "end": 0, "confidencePairs": [["x" * 5_000_000, 1]],
                                              "features": [{"frame": 0, "bounds": [1, 1, 5, 5]}]}})),
         r"Nothing was imported: .*(?i:label)"),
    Case("import-dive-200k-tracks", "import",
         import_("d.json", lambda: dive({str(i): {"id": i, "features": []} for i in range(200_000)})),
         r"Nothing was imported: .*(?i:tracks)"),
    Case("import-dive-version-99", "import",
         import_("d.json", lambda: dive().replace(b'"version": 2', b'"version": 99')),
         r"Nothing was imported: .*(?i:version)"),
    Case("import-dive-features-not-list", "import",
         import_("d.json", lambda: dive({"1": {"id": 1, "features": "nope"}})),
         r"Nothing was imported: .*'features' must be a list"),
    Case("import-maskzip-not-zip", "import", import_("m.zip", b"PK\x03\x04nope"), r"Nothing was imported: .*zip"),
    Case("import-maskzip-png-wrong-size", "import",
         import_("m.zip", lambda: mask_zip(pngs={"masks/1/0.png": small_png(10, 10, rgba=True)})),
         r"Nothing was imported: .*(?i:size|640x360|10x10)"),
    Case("import-maskzip-path-traversal", "import",
         import_("m.zip", lambda: mask_zip(pngs={"masks/../../../etc/0.png": small_png(VIDEO_W, VIDEO_H, True)})),
         r"Nothing was imported: .*a path that leaves the archive folder is not allowed"),
    Case("import-maskzip-frame-not-int", "import",
         import_("m.zip", lambda: mask_zip(pngs={"masks/1/first.png": small_png(VIDEO_W, VIDEO_H, True)})),
         r"Nothing was imported: .*(?i:frame|name)"),
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
    Case("seed-stale-revision", "seed", seed(_on(0, box=[1, 1, 9, 9]), base_revision=-5),
         r"(?i)revision|saved|discard"),
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
    Case("track-batch-size-text", "track", track(batch_size="abc"), r"(?i)batch size"),
    Case("track-notify-0", "track", track(notify=0), r"notification percent must be between"),
    Case("track-notify-1000", "track", track(notify=1000), r"notification percent must be between"),
    Case("track-notify-nan", "track", track(notify=float("nan")), r"(?i)notification percent"),
    Case("track-num-frames-negative", "track", track(num_frames=-5), r"number of frames must be at least 1"),
    Case("track-num-frames-inf", "track", track(num_frames=float("inf")), r"(?i)number of frames"),
    Case("track-num-frames-text", "track", track(num_frames="lots"), r"(?i)number of frames"),
    Case("track-direction-sideways", "track", track(direction="sideways"), r"(?i)direction|forward|backward"),
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


# ---- running a case -----------------------------------------------------------------------------------------------

class InProcess:
    """The functions behind the UI's handlers, on a real SQLite store with the sample clip and sequence added."""

    def __init__(self, tmp: Path) -> None:
        from queues.catalogue import ensure_default_models
        from sam2_tracking.library import add_video
        from sam2_tracking.settings import Settings
        from sam2_tracking.store import CreateTrack, UpsertKeyframe, open_store
        from ui.annotate import AnnotateHandlers

        self.tmp = tmp
        self.settings = Settings(data_dir=tmp / "data", model_dir=tmp / "data" / "models", embedded_consumers=())
        self.settings.data_dir.mkdir(parents=True)
        self.store = open_store(self.settings.store_path)
        ensure_default_models(self.store)
        self.store.set_setting("sam2_enabled", True)
        self.store.upsert_model("ready-model", "configs/sam2.1/sam2.1_hiera_t.yaml", "http://127.0.0.1:9/m.pt",
                                is_default=False, status="ready")
        self.dataset = add_video(self.store, ASSETS / "sample_shapes.mp4")
        self.other = add_video(self.store, ASSETS / "sample_sequence.zip")
        saved = self.store.save_edits(self.dataset.dataset_id, self.dataset.revision, [
            CreateTrack(label="fish"), UpsertKeyframe(track_id=-1, frame_idx=0, box=_box(10, 10, 60, 60))])
        self.track_id = saved.track_ids[-1]
        self.other_track_id = self.store.save_edits(self.other.dataset_id, self.other.revision,
                                                    [CreateTrack(label="x")]).track_ids[-1]
        self.store.set_setting("tracking_enabled", True)
        self.handlers = AnnotateHandlers(self.settings, self.store)
        self.counter = 0

    def db_path(self) -> Path:
        return self.settings.store_path

    def alive(self) -> bool:
        return True  # this process: reaching the assertion is the proof

    def _file(self, name: str, data: bytes) -> Path:
        self.counter += 1
        folder = self.tmp / "uploads" / str(self.counter)
        folder.mkdir(parents=True)
        (folder / name).write_bytes(data)
        return folder / name

    def upload(self, name, data, limits):
        import dataclasses

        from sam2_tracking.library import add_uploaded_video

        settings = dataclasses.replace(self.settings, **limits)
        before = sorted(settings.video_dir.glob("*")) if settings.video_dir.exists() else []
        try:
            add_uploaded_video(self.store, settings, self._file(name, data))
        finally:
            after = sorted(settings.video_dir.glob("*")) if settings.video_dir.exists() else []
            assert after == before, "a refused upload left a file in the video folder"

    def import_file(self, name, data, fmt, dataset):
        from ui.annotation_files import import_file

        path = None if name is None else str(self._file(name, data))
        dataset_id = None if dataset is None else self.dataset.dataset_id
        import_file(self.store, dataset_id, self.store.get_revision(self.dataset.dataset_id), path, fmt, False,
                    settings=self.settings)

    def _value(self, overrides: dict):
        from ui import viewer

        value = viewer.dataset_value(self.store, self.dataset.dataset_id, None, seek=0).to_json()
        value["active"] = self.track_id
        for key, item in overrides.items():
            value[key] = item
        if value.get("selected") == "other":
            value["selected"] = [self.other_track_id]
        pending = value.get("pending") or {}
        value["pending"] = {f: {str(self.track_id) if t == "own" else t: v for t, v in tracks.items()}
                            for f, tracks in pending.items()}
        return viewer.read_value(json.loads(json.dumps(value)))  # what the browser sends back is JSON

    def save(self, pending, overrides):
        self.handlers.save(self._value({"pending": pending, **overrides}))

    def rename(self, label):
        self.handlers.rename_track(self._value({}), label)

    def track(self, overrides, model, queue, num_frames, direction, batch_size, notify):
        self.handlers.start_tracking(self._value(overrides), model, queue, num_frames, direction, batch_size,
                                     notify, owner="ann")

    def add_model(self, name, config, url):
        from ui.admin import add_custom_model

        add_custom_model(self.settings, self.store, name, config, url, None)

    def download_model(self, name):
        from ui.admin import download_model

        download_model(self.settings, self.store, name, False, None)

    def remove_model(self, name):
        from ui.admin import remove_model

        remove_model(self.settings, self.store, name, None)


class Remote:
    """The real app (python app.py) in a subprocess, driven through gradio_client like a browser."""

    def __init__(self, tmp: Path) -> None:
        from sam2_tracking.testing.app_server import AppServer

        self.tmp = tmp
        data_dir = tmp / "data"
        self.server = AppServer(data_dir, data_dir / "models", SAM2T_EMBED_CONSUMERS="none",
                                SAM2T_MAX_ZIP_BYTES=str(REMOTE_ZIP_BYTES), SAM2T_MAX_ZIP_MEMBERS=str(REMOTE_ZIP_MEMBERS),
                                SAM2T_MAX_UPLOAD_BYTES=str(REMOTE_UPLOAD_BYTES))
        self.data_dir = data_dir
        self.counter = 0

    def db_path(self) -> Path:
        return self.data_dir / "store.db"

    def alive(self) -> bool:
        import httpx

        return self.server.process.poll() is None and httpx.get(self.server.url, timeout=10).status_code == 200

    def _client(self):
        from gradio_client import Client

        return Client(self.server.url, verbose=False, analytics_enabled=False, download_files=False)

    def _file(self, name: str, data: bytes) -> Path:
        self.counter += 1
        folder = self.tmp / "uploads" / str(self.counter)
        folder.mkdir(parents=True)
        (folder / name).write_bytes(data)
        return folder / name

    def _call(self, client, api_name: str, by_component: dict):
        """Call an endpoint with one value per parameter, chosen by the parameter's component kind (the layout
        passes some inputs as a set, so their order is not fixed). A refusal is a raised error, or a returned
        status that says the file was not added/imported: the message is raised here for the table to check."""
        endpoint = client.view_api(return_format="dict", print_info=False)["named_endpoints"][api_name]
        args = []
        for parameter in endpoint["parameters"]:
            kind = parameter["component"]
            args.append(by_component[kind] if kind in by_component else parameter.get("parameter_default"))
        result = client.predict(*args, api_name=api_name)
        for item in result if isinstance(result, (list, tuple)) else [result]:
            if isinstance(item, str) and re.search(r"Not added|Nothing was imported|not added", item):
                raise RuntimeError(item)
        return result

    def raw_upload(self, name, data):
        """POST to Gradio's upload route as a browser does, bypassing gradio_client's own size check: the server
        must refuse it (max_file_size) while it streams in."""
        import httpx

        response = httpx.post(self.server.url + "gradio_api/upload", files={"files": (name, data)}, timeout=60)
        if response.status_code >= 400:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text}")

    def upload(self, name, data, limits):
        from gradio_client import handle_file

        assert not limits, "the app subprocess has fixed limits"
        self._call(self._client(), "/upload_video", {"File": handle_file(str(self._file(name, data)))})

    def import_file(self, name, data, fmt, dataset):
        import sqlite3

        from gradio_client import handle_file

        conn = sqlite3.connect(self.db_path())
        try:
            dataset_id = conn.execute("SELECT dataset_id FROM datasets WHERE name = 'sample_shapes.mp4'").fetchone()[0]
        finally:
            conn.close()
        client = self._client()
        opened = self._call(client, "/open_dataset", {"Dropdown": dataset_id})
        viewer = opened[0] if isinstance(opened, (list, tuple)) else opened
        self._call(client, "/import_annotations", {"Html": viewer, "File": handle_file(str(self._file(name, data))),
                                                   "Dropdown": fmt, "Checkbox": False})

    def stop(self) -> None:
        self.server.stop()


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

