"""The DIVE mask zip (see shared FORMATS.md): masks/RLE_MASKS.json, masks/<track>/<frame>.png, masks/TrackJSON.json.

`annotations_to_mask_files` / `mask_files_to_annotations` are pure (a dict of archive names to bytes);
`write_mask_zip` / `load_mask_zip` do the file work. Reading refuses names that leave the archive, links, and
archives that expand past a size limit, before anything is decoded.
"""

from __future__ import annotations

import io
import json
import os
import stat
import zipfile
from dataclasses import replace
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from sam2_tracking.annotation_set import AnnotationSet, Feature, FormatError, TrackData
from sam2_tracking.engine.masks import check_rle, mask_to_rle, rle_to_box, rle_to_mask
from sam2_tracking.formats.dive import annotations_to_dive, dive_to_annotations
from sam2_tracking.formats.limits import DEFAULT_LIMITS, ImportLimits, check_frame_size
from sam2_tracking.formats.parsing import Dropped, check_dict, json_error_text, parse_int_key

PREFIX = "masks/"
RLE_NAME = "masks/RLE_MASKS.json"
TRACK_JSON_NAME = "masks/TrackJSON.json"


def annotations_to_mask_files(
    annotations: AnnotationSet, png: bool = True, rle: bool = True, track_json: bool = True
) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    rle_masks: dict[str, dict] = {}
    for track in annotations.tracks:
        for feature in track.present_features:
            if feature.rle is None:
                continue
            if rle:
                rle_masks.setdefault(str(track.track_id), {})[str(feature.frame_idx)] = {"rle": feature.rle}
            if png:
                files[f"{PREFIX}{track.track_id}/{feature.frame_idx}.png"] = mask_to_png(feature.mask)
    if rle:
        files[RLE_NAME] = json.dumps(rle_masks).encode()
    if track_json:
        files[TRACK_JSON_NAME] = json.dumps(annotations_to_dive(annotations)).encode()
    return files


def mask_to_png(mask: np.ndarray) -> bytes:
    """RGBA PNG: white and opaque inside the mask, black and transparent outside. The RGB must carry the mask too:
    DIVE-DSA re-encodes PNGs with a 1-bit conversion that ignores alpha (white everywhere became a full frame)."""
    height, width = mask.shape
    value = np.where(mask, 255, 0).astype(np.uint8)
    rgba = np.repeat(value[..., None], 4, axis=2)
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def png_to_mask(data: bytes, where: str, frame_size: tuple[int, int] | None = None,
                limits: ImportLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Decode a mask PNG after checking the size its header declares against the video and the pixel cap."""
    try:
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        check_frame_size((height, width), frame_size, limits, where)
        image.load()
    except FormatError:
        raise
    except Exception as exc:  # PIL raises several unrelated types for corrupt images
        raise FormatError(f"{where} is not a readable PNG image: {exc}") from exc
    if image.mode in ("RGBA", "LA", "PA"):
        return np.asarray(image.getchannel("A")) > 127
    if image.mode in ("L", "1", "P", "I", "I;16", "RGB"):
        return np.asarray(image.convert("L")) > 127
    raise FormatError(f"{where}: mask PNGs must be RGBA (alpha marks the mask), RGB or greyscale, got {image.mode}")


def mask_files_to_annotations(files: dict[str, bytes], frame_size: tuple[int, int] | None = None,
                              limits: ImportLimits = DEFAULT_LIMITS) -> AnnotationSet:
    """Validate and convert the archive's files; FormatError names the file, track and frame at fault.

    frame_size: the video's (height, width) when known: every RLE size and PNG header is checked against it (and
    against limits.max_frame_pixels) before it is decoded."""
    rle_masks, notes = _read_rle_json(files[RLE_NAME], frame_size, limits) if RLE_NAME in files else ({}, ())
    pngs: dict[tuple[int, int], str] = {}
    for name in files:
        if name in (RLE_NAME, TRACK_JSON_NAME):
            continue
        parts = PurePosixPath(name).parts
        if len(parts) != 3 or parts[0] != "masks" or not parts[2].endswith(".png"):
            raise FormatError(f"{name}: unexpected file in the mask zip (expected masks/<track>/<frame>.png)")
        track_id = parse_int_key(parts[1], f"{name}: track folder")
        frame_idx = parse_int_key(parts[2][: -len(".png")], f"{name}: frame")
        pngs[(track_id, frame_idx)] = name
    masks: dict[tuple[int, int], dict] = dict(rle_masks)
    for key, name in pngs.items():
        if key not in masks:
            masks[key] = mask_to_rle(png_to_mask(files[name], name, frame_size, limits))
            frame_size = frame_size or tuple(masks[key]["size"])  # later masks must match the first
    _check_same_size(masks)

    dropped, warnings = Dropped(), ()
    if TRACK_JSON_NAME in files:
        try:
            dive = json.loads(files[TRACK_JSON_NAME].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FormatError(f"{TRACK_JSON_NAME} is not valid JSON: {exc}") from exc
        try:
            base = dive_to_annotations(dive)
        except FormatError as exc:
            raise FormatError(f"{TRACK_JSON_NAME}: {exc}") from exc
        tracks = [_attach_masks(track, masks, dropped) for track in base.tracks]
        known = {t.track_id for t in tracks}
        for track_id, frame_idx in sorted(masks):
            if track_id not in known:
                raise FormatError(f"track {track_id}, frame {frame_idx}: a mask for a track not in {TRACK_JSON_NAME}")
        groups, warnings = base.groups, base.warnings
    else:
        by_track: dict[int, list[Feature]] = {}
        for (track_id, frame_idx), rle in sorted(masks.items()):
            box = rle_to_box(rle)
            by_track.setdefault(track_id, []).append(
                Feature(track_id=track_id, frame_idx=frame_idx, box=box, rle=rle, keyframe=False)
            )
        tracks = [TrackData(t, (("object", 1.0),), tuple(f)) for t, f in sorted(by_track.items())]
        groups = {}
    size = next(iter(masks.values()))["size"] if masks else None
    return AnnotationSet(
        tuple(tracks), width=None if size is None else size[1], height=None if size is None else size[0],
        groups=groups, warnings=tuple(notes) + warnings + dropped.warnings(),
    )


def _read_rle_json(data: bytes, frame_size: tuple[int, int] | None, limits: ImportLimits
                   ) -> tuple[dict[tuple[int, int], dict], tuple[str, ...]]:
    """{(track, frame): canonical RLE}, and notes on what was read differently from what the file said."""
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormatError(f"{RLE_NAME} is not valid JSON: {json_error_text(exc)}") from None
    check_dict(raw, RLE_NAME)
    out, swapped = {}, []
    for track_key, frames in raw.items():
        track_id = parse_int_key(track_key, f"{RLE_NAME}: track")
        check_dict(frames, f"{RLE_NAME}: track {track_key}")
        for frame_key, entry in frames.items():
            frame_idx = parse_int_key(frame_key, f"{RLE_NAME}: track {track_key} frame")
            where = f"{RLE_NAME}: track {track_id}, frame {frame_idx}"
            if not isinstance(entry, dict) or not isinstance(entry.get("rle"), dict):
                raise FormatError(f"{where}: expected {{\"rle\": {{\"size\": [h, w], \"counts\": ...}}}}")
            rle = entry["rle"]
            size = rle.get("size")
            if (frame_size is not None and frame_size[0] != frame_size[1] and isinstance(size, list)
                    and size == [frame_size[1], frame_size[0]]):
                # DIVE-DSA's SAM2 writer (sam_tasks.py) stores PIL's image.size, [width, height]; its counts are
                # for [height, width]. Read it as that, and say so.
                rle = {**rle, "size": list(frame_size)}
                swapped.append(f"track {track_id} frame {frame_idx}")
            try:
                check_rle(rle, frame_size, limits.max_frame_pixels)
                mask = rle_to_mask(rle, frame_size, limits.max_frame_pixels)
            except ValueError as exc:
                raise FormatError(f"{where}: {exc}") from exc
            frame_size = frame_size or mask.shape  # later masks must match the first
            # Re-encode: stores one canonical string whatever the file held (list counts, odd but decodable strings).
            out[(track_id, frame_idx)] = mask_to_rle(mask)
    notes = ()
    if swapped:
        notes = (f"{RLE_NAME}: {len(swapped)} mask size(s) written as [width, height] (DIVE-DSA's SAM2 writer), read "
                 f"as [height, width], e.g. {swapped[0]}",)
    return out, notes


def _check_same_size(masks: dict[tuple[int, int], dict]) -> None:
    sizes = {}
    for key, rle in masks.items():
        sizes.setdefault(tuple(rle["size"]), key)
    if len(sizes) > 1:
        (size_a, key_a), (size_b, key_b) = list(sizes.items())[:2]
        raise FormatError(
            f"masks differ in size: track {key_a[0]} frame {key_a[1]} is {size_a[1]}x{size_a[0]}, "
            f"track {key_b[0]} frame {key_b[1]} is {size_b[1]}x{size_b[0]}"
        )


def _attach_masks(track: TrackData, masks: dict[tuple[int, int], dict], dropped: Dropped) -> TrackData:
    features = []
    frames = {f.frame_idx for f in track.features}
    for feature in track.features:
        rle = masks.get((track.track_id, feature.frame_idx))
        features.append(replace(feature, rle=rle) if rle is not None else feature)
    missing = {frame: bounds for frame, bounds in track.masks_elsewhere.items()
               if (track.track_id, frame) not in masks}
    if missing:
        dropped.add(f"masks that {TRACK_JSON_NAME} marks hasMask but the zip lacks", track.track_id, len(missing))
    for (track_id, frame_idx) in masks:
        if track_id == track.track_id and frame_idx not in frames:
            raise FormatError(
                f"track {track_id}, frame {frame_idx}: the zip has a mask but {TRACK_JSON_NAME} has no feature there"
            )
    return replace(track, features=tuple(features), masks_elsewhere=missing)


def read_zip_safely(
    path: str | os.PathLike, max_expanded_bytes: int = DEFAULT_LIMITS.max_zip_expansion_bytes,
    max_entries: int = DEFAULT_LIMITS.max_zip_members, max_ratio: int = DEFAULT_LIMITS.max_zip_ratio,
) -> dict[str, bytes]:
    """Every regular file in the archive, after refusing unsafe names, links and archives that expand too far
    (declared size or ratio checked before extracting; the bytes actually read are capped too)."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise FormatError(f"{path} is not a readable zip archive: {exc}") from exc
    with archive:
        infos = archive.infolist()
        if len(infos) > max_entries:
            raise FormatError(f"{path}: {len(infos)} entries is more than the {max_entries} allowed")
        declared = 0
        for info in infos:
            _check_name(info.filename)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise FormatError(f"{info.filename}: links are not allowed in a mask zip")
            declared += info.file_size
        if declared > max_expanded_bytes:
            raise FormatError(
                f"{path} expands to {declared} bytes, more than the {max_expanded_bytes} allowed "
                "(SAM2T_MAX_ZIP_EXPANSION_BYTES): is it a zip bomb?"
            )
        archive_bytes = max(Path(path).stat().st_size, 1)
        if declared > max_ratio * archive_bytes:
            raise FormatError(
                f"{path} expands {declared / archive_bytes:.0f} times its size, more than the {max_ratio}x allowed "
                "(SAM2T_MAX_ZIP_RATIO): is it a zip bomb?"
            )
        budget = min(max_expanded_bytes, max_ratio * archive_bytes)
        files, total = {}, 0
        for info in infos:
            if info.is_dir():
                continue
            try:
                with archive.open(info) as handle:
                    # Read no more than the budget left, whatever the header claims.
                    data = handle.read(budget - total + 1)
            except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as exc:
                raise FormatError(f"{info.filename}: cannot be read from the archive: {exc}") from exc
            total += len(data)
            if total > budget:
                raise FormatError(f"{path} expands past {budget} bytes, more than its headers say: is it a zip bomb?")
            files[info.filename] = data
    return files


def _check_name(name: str) -> None:
    path = PurePosixPath(name)
    if (
        "\\" in name
        or name.startswith("/")
        or (len(name) > 1 and name[1] == ":")
        or any(part in ("..", "") for part in name.rstrip("/").split("/"))
        or path.is_absolute()
    ):
        raise FormatError(f"{name!r}: a path that leaves the archive folder is not allowed")


def load_mask_zip(path: str | os.PathLike, max_expanded_bytes: int | None = None,
                  frame_size: tuple[int, int] | None = None, limits: ImportLimits = DEFAULT_LIMITS) -> AnnotationSet:
    files = read_zip_safely(path, max_expanded_bytes or limits.max_zip_expansion_bytes, limits.max_zip_members,
                            limits.max_zip_ratio)
    files = {name: data for name, data in files.items() if name.startswith(PREFIX)}
    if not files:
        raise FormatError(f"{path} has no masks/ folder: is it a DIVE mask zip?")
    return mask_files_to_annotations(files, frame_size, limits)


def write_mask_zip(annotations: AnnotationSet, path: str | os.PathLike, png: bool = True, rle: bool = True,
                   track_json: bool = True) -> Path:
    path = Path(path)
    files = annotations_to_mask_files(annotations, png=png, rle=rle, track_json=track_json)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            # PNGs are compressed already; deflating them again only costs time.
            # A fixed timestamp: the same annotations give the same bytes (round trips compare files exactly).
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED if name.endswith(".png") else zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return path
