"""COCO instance segmentation with track ids (see shared FORMATS.md): pure converters, a reader and a writer.

One annotation per masked, present feature: segmentation is compressed RLE, area its pixel count (pycocotools),
bbox the feature's box as [x, y, w, h]. Beyond COCO proper we add `keyframe` and `score` to each annotation and a
top-level `tracks` list (id, confidencePairs, attributes) so a round trip keeps what the store knows; readers that
do not know these keys ignore them. Features without a mask have no place in COCO and are left out.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..annotations import Feature
from ..masks import mask_to_box, mask_to_rle, rle_area, rle_to_mask
from ..types import Box, SeedError
from .model import AnnotationSet, FormatError, TrackData, check_dict, check_list, check_number, read_json


def annotations_to_coco(annotations: AnnotationSet, video_name: str | None = None) -> dict:
    size = annotations.frame_size()
    if size is None:
        raise FormatError("COCO needs the frame size: give the video (its width and height are unknown)")
    height, width = size
    name = video_name or annotations.name or "video"
    frames = _frames(annotations)
    images = [
        {"id": idx + 1, "file_name": f"{name}/{idx:06d}.jpg", "width": width, "height": height,
         "frame_index": idx, "video_id": 1}
        for idx in frames
    ]
    categories: dict[str, int] = {}
    coco_tracks, coco_annotations = [], []
    for track in annotations.tracks:
        category_id = categories.setdefault(track.label, len(categories) + 1)
        coco_tracks.append({
            "id": track.track_id, "category_id": category_id,
            "confidencePairs": [[label, score] for label, score in track.confidence_pairs],
            "attributes": dict(track.attributes),
        })
        for feature in track.present_features:
            if feature.rle is None:
                continue
            box = feature.box or mask_to_box(feature.mask)
            entry = {
                "id": len(coco_annotations) + 1, "image_id": feature.frame_idx + 1, "category_id": category_id,
                "track_id": track.track_id, "segmentation": dict(feature.rle), "area": rle_area(feature.rle),
                "bbox": box.as_xywh() if box is not None else [0, 0, 0, 0], "iscrowd": 0,
                "keyframe": feature.keyframe,
            }
            if feature.score is not None:
                entry["score"] = feature.score
            coco_annotations.append(entry)
    return {
        "info": {"description": f"SAM2 mask tracks of {name}"},
        "videos": [{"id": 1, "name": name, "width": width, "height": height,
                    "frame_count": annotations.frame_count, "fps": annotations.fps}],
        "images": images,
        "categories": [{"id": cid, "name": label, "supercategory": "object"} for label, cid in categories.items()],
        "annotations": coco_annotations,
        "tracks": coco_tracks,
    }


def _frames(annotations: AnnotationSet) -> list[int]:
    if annotations.frame_count:
        return list(range(annotations.frame_count))
    used = {f.frame_idx for t in annotations.tracks for f in t.features}
    return list(range(max(used) + 1)) if used else []


def coco_to_annotations(data: dict) -> AnnotationSet:
    """Validate and convert; FormatError names the annotation, track, frame or field at fault."""
    check_dict(data, "the COCO file")
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise FormatError(f"the COCO file has no {key!r} list: is it COCO instance segmentation JSON?")
    images = {}
    size = None
    for number, image in enumerate(check_list(data["images"], "'images'")):
        where = f"images[{number}]"
        check_dict(image, where)
        image_id = check_number(image.get("id"), f"{where} 'id'", integer=True)
        w = check_number(image.get("width"), f"{where} 'width'", integer=True, minimum=1)
        h = check_number(image.get("height"), f"{where} 'height'", integer=True, minimum=1)
        if size is not None and size != (h, w):
            raise FormatError(f"{where}: images differ in size ({w}x{h} vs {size[1]}x{size[0]}): one video only")
        size = (h, w)
        frame = image.get("frame_index", image.get("frame_id"))
        frame = check_number(frame, f"{where} 'frame_index'", integer=True, minimum=0)
        if image_id in images:
            raise FormatError(f"{where}: image id {image_id} appears twice")
        images[image_id] = frame
    categories = {}
    for number, category in enumerate(check_list(data["categories"], "'categories'")):
        check_dict(category, f"categories[{number}]")
        cid = check_number(category.get("id"), f"categories[{number}] 'id'", integer=True)
        if not isinstance(category.get("name"), str) or not category["name"]:
            raise FormatError(f"categories[{number}] 'name' must be a non-empty string")
        categories[cid] = category["name"]
    track_info = _track_info(data.get("tracks", []))

    features: dict[int, dict[int, Feature]] = {}
    labels: dict[int, str] = {}
    for number, ann in enumerate(check_list(data["annotations"], "'annotations'")):
        track_id, feature, label = _annotation(number, ann, images, categories, size)
        if feature.frame_idx in features.setdefault(track_id, {}):
            raise FormatError(f"track {track_id}, frame {feature.frame_idx}: two annotations on the same frame")
        features[track_id][feature.frame_idx] = feature
        labels.setdefault(track_id, label)
    tracks = []
    for track_id in sorted(set(features) | set(track_info)):
        pairs, attributes = track_info.get(track_id, (((labels.get(track_id, "object"), 1.0),), {}))
        ordered = tuple(features.get(track_id, {})[f] for f in sorted(features.get(track_id, {})))
        tracks.append(TrackData(track_id, pairs, ordered, attributes))
    videos = data.get("videos") or [{}]
    video = videos[0] if isinstance(videos, list) and isinstance(videos[0], dict) else {}
    frame_count = video.get("frame_count") if isinstance(video.get("frame_count"), int) else None
    fps = video.get("fps") if isinstance(video.get("fps"), (int, float)) else None
    return AnnotationSet(
        tuple(tracks), width=None if size is None else size[1], height=None if size is None else size[0],
        frame_count=frame_count, fps=fps, name=str(video.get("name", "")),
    )


def _track_info(raw) -> dict[int, tuple[tuple[tuple[str, float], ...], dict]]:
    info = {}
    for number, track in enumerate(check_list(raw, "'tracks'")):
        where = f"tracks[{number}]"
        check_dict(track, where)
        track_id = check_number(track.get("id"), f"{where} 'id'", integer=True, minimum=0)
        pairs = []
        for pair in check_list(track.get("confidencePairs", []), f"{where} 'confidencePairs'"):
            if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
                raise FormatError(f"track {track_id} 'confidencePairs' entries must be [label, score], got {pair!r}")
            pairs.append((pair[0], float(check_number(pair[1], f"track {track_id} confidence"))))
        info[track_id] = (tuple(pairs), dict(check_dict(track.get("attributes", {}), f"track {track_id} 'attributes'")))
    return info


def _annotation(number: int, ann, images: dict, categories: dict, size) -> tuple[int, Feature, str]:
    where = f"annotations[{number}]"
    check_dict(ann, where)
    if "track_id" not in ann:
        raise FormatError(f"{where} has no 'track_id': only COCO files with track ids can be imported as tracks")
    track_id = check_number(ann["track_id"], f"{where} 'track_id'", integer=True, minimum=0)
    image_id = ann.get("image_id")
    if image_id not in images:
        raise FormatError(f"{where} (track {track_id}): image_id {image_id!r} is not in 'images'")
    frame = images[image_id]
    where = f"{where} (track {track_id}, frame {frame})"
    if ann.get("category_id") not in categories:
        raise FormatError(f"{where}: category_id {ann.get('category_id')!r} is not in 'categories'")
    segmentation = ann.get("segmentation")
    if not isinstance(segmentation, dict):
        raise FormatError(f"{where} 'segmentation' must be RLE {{size, counts}} (polygons are not supported)")
    try:
        mask = rle_to_mask(segmentation)
    except ValueError as exc:
        raise FormatError(f"{where} 'segmentation': {exc}") from exc
    if mask.shape != size:
        raise FormatError(
            f"{where} 'segmentation' size is {mask.shape[1]}x{mask.shape[0]} but the image is {size[1]}x{size[0]}"
        )
    rle = mask_to_rle(mask)
    box = None
    if ann.get("bbox") is not None:
        bbox = check_list(ann["bbox"], f"{where} 'bbox'")
        if len(bbox) != 4:
            raise FormatError(f"{where} 'bbox' must be [x, y, width, height], got {bbox!r}")
        x, y, w, h = (float(check_number(v, f"{where} 'bbox'")) for v in bbox)
        try:
            box = Box(x, y, x + w, y + h)
        except SeedError as exc:
            raise FormatError(f"{where} 'bbox' [x, y, width, height]: {exc}") from exc
    else:
        box = mask_to_box(mask)
    keyframe = ann.get("keyframe", False)
    if not isinstance(keyframe, bool):
        raise FormatError(f"{where} 'keyframe' must be true or false")
    score = ann.get("score")
    if score is not None:
        score = float(check_number(score, f"{where} 'score'"))
    feature = Feature(track_id=track_id, frame_idx=frame, box=box, rle=rle, present=True, score=score,
                      keyframe=keyframe)
    return track_id, feature, categories[ann["category_id"]]


def load_coco(path: str | os.PathLike) -> AnnotationSet:
    return coco_to_annotations(read_json(path))


def write_coco(annotations: AnnotationSet, path: str | os.PathLike, video_name: str | None = None) -> Path:
    path = Path(path)
    path.write_text(json.dumps(annotations_to_coco(annotations, video_name)), encoding="utf-8")
    return path
