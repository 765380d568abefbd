"""COCO instance segmentation with track ids (see shared FORMATS.md): pure converters, a reader and a writer.

One annotation per masked, present feature: `segmentation` compressed RLE, `area` its pixel count and `bbox` the
mask's box (pycocotools), the track id both as `track_id` and `attributes.track_id` (datumaro and supervision keep
only the latter) and `score` a 0-1 confidence (the sigmoid of SAM2's object score logit, which DIVE's COCO reader
takes as the class confidence). What COCO has no field for travels in extra keys other readers ignore:
`sam2_logit`, `keyframe`, `sam2_clicks` ([[x, y, 1|0], ...]), `sam2_box` (a seed box that is not the mask's box),
the feature's own attributes next to track_id in `attributes`, and a top-level `sam2_tracks` list (id,
confidencePairs, attributes, absent frames). `videos[0]` carries `fps` and DIVE's `annotation_fps`.

`file_name` is `<video file name>/<frame:06d>.jpg` for a video (the same from the CLI and the app) and the real
image file name for an image sequence. The reader also takes DIVE's own COCO export (no width/height on images,
frames in file-name order), polygon segmentations (rasterised) and annotations without track ids (each its own
track, as DIVE does), and reports what it could not keep.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

from pycocotools import mask as mask_utils

from sam2_tracking.annotation_set import AnnotationSet, Feature, FormatError, TrackData
from sam2_tracking.engine.masks import check_rle, mask_to_rle, rle_area, rle_to_box, rle_to_mask
from sam2_tracking.formats.limits import DEFAULT_LIMITS, ImportLimits, check_frame_size
from sam2_tracking.formats.parsing import (
    Dropped,
    check_dict,
    check_list,
    check_number,
    parse_bool,
    parse_id,
    plain,
    read_json,
)
from sam2_tracking.types import Box, Click, SeedError

TRACK_ATTRIBUTE = "track_id"


def sigmoid(logit: float) -> float:
    return 1.0 / (1.0 + math.exp(-logit)) if logit >= 0 else math.exp(logit) / (1.0 + math.exp(logit))


def frame_file_name(annotations: AnnotationSet, frame_idx: int, video_name: str | None = None) -> str:
    """The image name of a frame: its real file for an image sequence, `<video>/<frame:06d>.jpg` for a video."""
    if frame_idx < len(annotations.frame_names) and annotations.frame_names[frame_idx]:
        return annotations.frame_names[frame_idx]
    return f"{video_name or annotations.name or 'video'}/{frame_idx:06d}.jpg"


def annotations_to_coco(annotations: AnnotationSet, video_name: str | None = None) -> dict:
    size = annotations.frame_size()
    if size is None:
        raise FormatError("COCO needs the frame size: give the video (its width and height are unknown)")
    height, width = size
    name = video_name or annotations.name or "video"
    images = [
        {"id": idx + 1, "file_name": frame_file_name(annotations, idx, name), "width": width, "height": height,
         "frame_index": idx, "video_id": 1}
        for idx in _frames(annotations)
    ]
    categories: dict[str, int] = {}
    coco_tracks, coco_annotations = [], []
    for track in annotations.tracks:
        category_id = categories.setdefault(track.label, len(categories) + 1)
        info = {
            "id": track.track_id, "category_id": category_id,
            "confidencePairs": [[label, score] for label, score in track.confidence_pairs],
            "attributes": dict(track.attributes),
        }
        absent = [f.frame_idx for f in track.features if not f.present]
        if absent:
            info["absent"] = absent
            info["absent_scores"] = {str(f.frame_idx): f.score for f in track.features
                                     if not f.present and f.score is not None}
        coco_tracks.append(info)
        for feature in track.present_features:
            if feature.rle is None:
                continue
            box = rle_to_box(feature.rle)
            entry = {
                "id": len(coco_annotations) + 1, "image_id": feature.frame_idx + 1, "category_id": category_id,
                "track_id": track.track_id, "segmentation": dict(feature.rle), "area": rle_area(feature.rle),
                "bbox": box.as_xywh() if box is not None else [0.0, 0.0, 0.0, 0.0], "iscrowd": 0,
                "attributes": {**feature.attributes, TRACK_ATTRIBUTE: track.track_id},
                "keyframe": feature.keyframe,
            }
            if feature.score is not None:
                entry["score"] = sigmoid(feature.score)
                entry["sam2_logit"] = feature.score
            if feature.clicks:
                entry["sam2_clicks"] = [[plain(c.x), plain(c.y), int(c.positive)] for c in feature.clicks]
            if feature.box is not None and feature.box != box:
                entry["sam2_box"] = [plain(v) for v in feature.box.as_list()]
            coco_annotations.append(entry)
    return {
        "info": {"description": f"SAM2 mask tracks of {name}"},
        "videos": [{"id": 1, "name": name, "width": width, "height": height,
                    "frame_count": annotations.frame_count, "fps": annotations.fps,
                    "annotation_fps": annotations.fps}],
        "images": images,
        "categories": [{"id": cid, "name": label, "supercategory": "object"} for label, cid in categories.items()],
        "annotations": coco_annotations,
        "sam2_tracks": coco_tracks,
    }


def _frames(annotations: AnnotationSet) -> list[int]:
    if annotations.frame_count:
        return list(range(annotations.frame_count))
    used = {f.frame_idx for t in annotations.tracks for f in t.features}
    return list(range(max(used) + 1)) if used else []


def _natural_key(name: str):
    """DIVE's image order (strNumericCompare): numbers compare as numbers, before text."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part]


def coco_to_annotations(data: dict, frame_size: tuple[int, int] | None = None,
                        limits: ImportLimits = DEFAULT_LIMITS) -> AnnotationSet:
    """Validate and convert; FormatError names the annotation, track, frame or field at fault.

    frame_size: the video's (height, width) when known; every size the file declares must match it, and none may
    pass limits.max_frame_pixels, before any mask is decoded."""
    check_dict(data, "the COCO file")
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise FormatError(f"the COCO file has no {key!r} list: is it COCO instance segmentation JSON?")
    dropped = Dropped()
    images, size, names = _images(check_list(data["images"], "'images'"))
    check_frame_size(size, frame_size, limits, "the COCO file")
    size = size or (tuple(frame_size) if frame_size else None)
    categories = {}
    for number, category in enumerate(check_list(data["categories"], "'categories'")):
        check_dict(category, f"categories[{number}]")
        cid = check_number(category.get("id"), f"categories[{number}] 'id'", integer=True)
        if not isinstance(category.get("name"), str) or not category["name"]:
            raise FormatError(f"categories[{number}] 'name' must be a non-empty string")
        categories[cid] = category["name"]
    raw_tracks = data.get("sam2_tracks", data.get("tracks", []))
    track_info = _track_info(raw_tracks)

    features: dict[int, dict[int, Feature]] = {}
    labels: dict[int, tuple[str, float]] = {}
    for number, ann in enumerate(check_list(data["annotations"], "'annotations'")):
        track_id, feature, pair = _annotation(number, ann, images, categories, size, dropped, limits)
        if size is None and feature.rle is not None:
            size = tuple(feature.rle["size"])
        if feature.frame_idx in features.setdefault(track_id, {}):
            raise FormatError(f"track {track_id}, frame {feature.frame_idx}: two annotations on the same frame")
        features[track_id][feature.frame_idx] = feature
        labels.setdefault(track_id, pair)
    tracks = []
    for track_id in sorted(set(features) | set(track_info)):
        pairs, attributes, absent = track_info.get(track_id, ((labels.get(track_id, ("object", 1.0)),), {}, {}))
        by_frame = dict(features.get(track_id, {}))
        for frame, score in absent.items():
            if frame in by_frame:
                raise FormatError(f"track {track_id}, frame {frame}: listed absent but it has an annotation")
            by_frame[frame] = Feature(track_id=track_id, frame_idx=frame, present=False, score=score)
        tracks.append(TrackData(track_id, pairs, tuple(by_frame[f] for f in sorted(by_frame)), attributes))
    videos = data.get("videos") or [{}]
    video = videos[0] if isinstance(videos, list) and isinstance(videos[0], dict) else {}
    frame_count = video.get("frame_count") if isinstance(video.get("frame_count"), int) else None
    fps = next((video[k] for k in ("fps", "annotation_fps") if isinstance(video.get(k), (int, float))
                and not isinstance(video.get(k), bool) and math.isfinite(video[k]) and video[k] > 0), None)
    name = str(video.get("name", ""))
    frame_names = ()
    if names and any(names.get(i) != f"{name or 'video'}/{i:06d}.jpg" for i in names):
        frame_names = tuple(names.get(i, "") for i in range(max(names) + 1))
    return AnnotationSet(
        tuple(tracks), width=None if size is None else size[1], height=None if size is None else size[0],
        frame_count=frame_count, fps=fps, name=name, frame_names=frame_names, warnings=dropped.warnings(),
    )


def _images(raw: list) -> tuple[dict, tuple[int, int] | None, dict[int, str]]:
    """{image id: frame}, (height, width) if the images say, {frame: file name}. Images without frame_index get
    DIVE's: their position in file-name order."""
    size = None
    for number, image in enumerate(raw):
        where = f"images[{number}]"
        check_dict(image, where)
        check_number(image.get("id"), f"{where} 'id'", integer=True)
        if not isinstance(image.get("file_name", ""), str):
            raise FormatError(f"{where} 'file_name' must be a string")
        if image.get("width") is None and image.get("height") is None:
            continue  # DIVE's own COCO export leaves them out
        w = check_number(image.get("width"), f"{where} 'width'", integer=True, minimum=1)
        h = check_number(image.get("height"), f"{where} 'height'", integer=True, minimum=1)
        if size is not None and size != (h, w):
            raise FormatError(f"{where}: images differ in size ({w}x{h} vs {size[1]}x{size[0]}): one video only")
        size = (h, w)
    ordered = sorted(raw, key=lambda image: _natural_key(image.get("file_name", "")))
    images, names = {}, {}
    for position, image in enumerate(ordered):
        frame = image.get("frame_index", image.get("frame_id", position))
        frame = int(check_number(frame, f"image {image['id']} 'frame_index'", integer=True, minimum=0))
        if image["id"] in images:
            raise FormatError(f"image id {image['id']} appears twice in 'images'")
        images[image["id"]] = frame
        if "file_name" in image:
            names[frame] = image["file_name"]
    return images, size, names


def _track_info(raw) -> dict[int, tuple[tuple[tuple[str, float], ...], dict, dict[int, float | None]]]:
    info = {}
    for number, track in enumerate(check_list(raw, "'sam2_tracks'")):
        where = f"sam2_tracks[{number}]"
        check_dict(track, where)
        track_id = parse_id(track.get("id"), f"{where} 'id'")
        pairs = []
        for pair in check_list(track.get("confidencePairs", []), f"{where} 'confidencePairs'"):
            if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
                raise FormatError(f"track {track_id} 'confidencePairs' entries must be [label, score]")
            pairs.append((pair[0], float(check_number(pair[1], f"track {track_id} confidence"))))
        scores = check_dict(track.get("absent_scores", {}), f"{where} 'absent_scores'")
        absent = {}
        for frame in check_list(track.get("absent", []), f"{where} 'absent'"):
            frame = int(check_number(frame, f"{where} absent frame", integer=True, minimum=0))
            score = scores.get(str(frame))
            absent[frame] = None if score is None else float(check_number(score, f"{where} absent score"))
        info[track_id] = (tuple(pairs), dict(check_dict(track.get("attributes", {}), f"track {track_id} 'attributes'")),
                          absent)
    return info


def _annotation(number: int, ann, images: dict, categories: dict, size, dropped: Dropped, limits: ImportLimits):
    where = f"annotations[{number}]"
    check_dict(ann, where)
    attributes = dict(check_dict(ann.get("attributes", {}) or {}, f"{where} 'attributes'"))
    if "track_id" in ann:
        track_id = parse_id(ann["track_id"], f"{where} 'track_id'")
    elif TRACK_ATTRIBUTE in attributes:
        track_id = parse_id(attributes[TRACK_ATTRIBUTE], f"{where} 'attributes.track_id'")
    else:
        # DIVE's rule: an annotation without a track id is its own track, numbered by its annotation id.
        track_id = parse_id(ann.get("id"), f"{where} 'id' (used as the track id: it has no track_id)")
    attributes.pop(TRACK_ATTRIBUTE, None)
    image_id = ann.get("image_id")
    if not isinstance(image_id, int) or image_id not in images:
        raise FormatError(f"{where} (track {track_id}): image_id {str(image_id)[:40]} is not in 'images'")
    frame = images[image_id]
    where = f"{where} (track {track_id}, frame {frame})"
    if ann.get("category_id") not in categories:
        raise FormatError(f"{where}: category_id {str(ann.get('category_id'))[:40]} is not in 'categories'")
    rle = _segmentation(ann.get("segmentation"), size, where, limits)
    mask_box = rle_to_box(rle) if rle is not None else None
    box = mask_box
    if ann.get("sam2_box") is not None:
        box = _box(ann["sam2_box"], f"{where} 'sam2_box'", xywh=False)
    elif mask_box is None and ann.get("bbox") is not None:
        box = _box(ann["bbox"], f"{where} 'bbox'", xywh=True)
    keyframe = parse_bool(ann.get("keyframe", False), f"{where} 'keyframe'")
    score = None
    if ann.get("sam2_logit") is not None:
        score = float(check_number(ann["sam2_logit"], f"{where} 'sam2_logit'"))
    confidence = 1.0
    if ann.get("score") is not None:
        raw_score = ann["score"][0] if isinstance(ann["score"], list) and ann["score"] else ann["score"]
        confidence = float(check_number(raw_score, f"{where} 'score'"))
    clicks = []
    for click in check_list(ann.get("sam2_clicks", []), f"{where} 'sam2_clicks'"):
        if not (isinstance(click, list) and len(click) == 3):
            raise FormatError(f"{where} 'sam2_clicks' entries must be [x, y, 1 or 0]")
        x, y = (float(check_number(v, f"{where} click coordinate")) for v in click[:2])
        clicks.append(Click(x, y, bool(check_number(click[2], f"{where} click polarity", integer=True))))
    if ann.get("keypoints"):
        dropped.add("keypoints (the app has no place for them)", track_id)
    feature = Feature(track_id=track_id, frame_idx=frame, box=box, rle=rle, present=True, score=score,
                      keyframe=keyframe, clicks=tuple(clicks), attributes=attributes)
    return track_id, feature, (categories[ann["category_id"]], confidence)


def _box(raw, where: str, xywh: bool) -> Box:
    values = [float(check_number(v, where)) for v in check_list(raw, where)]
    if len(values) != 4:
        raise FormatError(f"{where} must have 4 numbers, got {str(raw)[:80]}")
    if xywh:
        values[2] += values[0]
        values[3] += values[1]
    try:
        return Box(*values)
    except SeedError as exc:
        raise FormatError(f"{where}: {exc}") from exc


def _segmentation(segmentation, size, where: str, limits: ImportLimits) -> dict | None:
    """Canonical compressed RLE of an RLE or polygon segmentation; None for none. Sizes are checked first: an
    absurd declared size makes pycocotools crash the process."""
    if segmentation is None or segmentation == []:
        return None
    if isinstance(segmentation, dict):
        try:
            check_rle(segmentation, size, limits.max_frame_pixels)
            mask = rle_to_mask(segmentation, size, limits.max_frame_pixels)
        except ValueError as exc:
            raise FormatError(f"{where} 'segmentation': {exc}") from exc
        return mask_to_rle(mask)
    if isinstance(segmentation, list):
        if size is None:
            raise FormatError(f"{where}: a polygon segmentation needs the image size: give width and height")
        polygons = segmentation if isinstance(segmentation[0], list) else [segmentation]
        flat = []
        for polygon in polygons:
            values = [float(check_number(v, f"{where} polygon coordinate")) for v in check_list(polygon, where)]
            if len(values) < 6 or len(values) % 2:
                raise FormatError(f"{where}: a polygon needs at least 3 (x, y) points")
            flat.append(values)
        merged = mask_utils.merge(mask_utils.frPyObjects(flat, size[0], size[1]))
        return mask_to_rle(mask_utils.decode(merged).astype(bool))
    raise FormatError(f"{where} 'segmentation' must be RLE {{size, counts}} or polygons")


def load_coco(path: str | os.PathLike, frame_size: tuple[int, int] | None = None,
              limits: ImportLimits = DEFAULT_LIMITS) -> AnnotationSet:
    return coco_to_annotations(read_json(path), frame_size, limits)


def write_coco(annotations: AnnotationSet, path: str | os.PathLike, video_name: str | None = None) -> Path:
    path = Path(path)
    path.write_text(json.dumps(annotations_to_coco(annotations, video_name)), encoding="utf-8")
    return path
