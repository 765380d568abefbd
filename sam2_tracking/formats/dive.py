"""DIVE annotation JSON, version 2 (see shared FORMATS.md): pure converters plus a reader and a writer.

Written so DIVE's web client and server models accept it: every feature has integer `bounds` (the mask's box in
DIVE-DSA's inclusive convention when there is a mask, else the person's box, else the clicks' extent) and so is
written `keyframe: true` (the client refuses `keyframe` XOR `bounds`). Clicks travel as GeoJSON Points
{"key": "click", "positive": bool}. What DIVE has no field for lives in the track's `meta["sam2"]`:

    {"seeds": [frames a person seeded], "absent": [frames the tracker found the object absent],
     "scores": {"frame": SAM2 object score logit}, "boxes": {"frame": [x1, y1, x2, y2], or [] for none}}

`boxes` holds a feature's own box only where it differs from what the reader rebuilds from `bounds` (a seed box
next to a mask, fractional coordinates, a clicks-only seed that has no box: [] as DIVE's server drops nulls). The reader takes it all back, accepts
what DIVE itself writes (string ids, "positive": "False", `interpolate`, which it expands into the boxes DIVE
shows between keyframes) and reports what it cannot keep (polygons, head/tail points, fish length, flick).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from sam2_tracking.annotation_set import AnnotationSet, Feature, FormatError, TrackData
from sam2_tracking.engine.masks import rle_to_box
from sam2_tracking.formats.parsing import (
    Dropped,
    check_dict,
    check_list,
    check_number,
    parse_bool,
    parse_id,
    parse_int_key,
    plain,
    read_json,
)
from sam2_tracking.types import Box, Click, SeedError

DIVE_VERSION = 2
META_KEY = "sam2"


def annotations_to_dive(annotations: AnnotationSet) -> dict:
    tracks = {}
    for track in annotations.tracks:
        present = track.present_features
        features, boxes = [], {}
        for feature in present:
            out, own_box = _feature_to_dive(feature, track.masks_elsewhere.get(feature.frame_idx))
            features.append(out)
            if own_box is not False:
                boxes[str(feature.frame_idx)] = own_box
        meta = {k: v for k, v in track.meta.items() if k != META_KEY}
        app = {
            "seeds": [f.frame_idx for f in present if f.keyframe],
            "absent": [f.frame_idx for f in track.features if not f.present],
            "scores": {str(f.frame_idx): f.score for f in track.features if f.score is not None},
            "boxes": boxes,
        }
        meta[META_KEY] = {key: value for key, value in app.items() if value}
        tracks[str(track.track_id)] = {
            "id": track.track_id,
            "meta": meta,
            "attributes": dict(track.attributes),
            "confidencePairs": [[label, score] for label, score in track.confidence_pairs],
            "begin": track.begin if track.begin is not None else 0,
            "end": track.end if track.end is not None else 0,
            "features": features,
        }
    return {"version": DIVE_VERSION, "tracks": tracks, "groups": dict(annotations.groups)}


def dive_bounds(feature: Feature, mask_bounds=None) -> list[int] | None:
    """Integer DIVE bounds: the mask's box with inclusive x2/y2 (DIVE-DSA) (mask_bounds: those read from a file
    whose mask travels elsewhere), else the box widened to whole pixels, else the clicks' extent; None for none."""
    if feature.rle is not None:
        box = rle_to_box(feature.rle)
        if box is not None:
            return [int(box.x1), int(box.y1), int(box.x2) - 1, int(box.y2) - 1]
    if mask_bounds:
        return [int(v) for v in mask_bounds]
    if feature.box is not None:
        b = feature.box
        return [math.floor(b.x1), math.floor(b.y1), math.ceil(b.x2), math.ceil(b.y2)]
    if feature.clicks:
        xs, ys = [c.x for c in feature.clicks], [c.y for c in feature.clicks]
        return [math.floor(min(xs)), math.floor(min(ys)), math.ceil(max(xs)), math.ceil(max(ys))]
    return None


def box_from_bounds(bounds: list[int], has_mask: bool) -> Box | None:
    """The box a reader rebuilds from DIVE bounds (inverse of dive_bounds for a mask; None if degenerate)."""
    x1, y1, x2, y2 = bounds
    if has_mask:
        x2, y2 = x2 + 1, y2 + 1
    try:
        return Box(float(x1), float(y1), float(x2), float(y2))
    except SeedError:
        return None


def _feature_to_dive(feature: Feature, mask_bounds) -> tuple[dict, list | bool]:
    """(DIVE feature, the feature's own box for meta boxes, or False when the bounds rebuild it exactly).
    mask_bounds: the bounds of a mask that travels elsewhere (the mask zip), None if the feature has no such mask."""
    bounds = dive_bounds(feature, mask_bounds) or [0, 0, 0, 0]
    has_mask = feature.rle is not None or mask_bounds is not None
    out: dict = {"frame": feature.frame_idx, "bounds": bounds, "keyframe": True}
    if has_mask:
        out["hasMask"] = True
    out["attributes"] = dict(feature.attributes)  # always, as DIVE's Feature model writes it back
    if feature.clicks:
        out["geometry"] = {
            "type": "FeatureCollection",
            "features": [
                {"type": "Feature", "geometry": {"type": "Point", "coordinates": [plain(c.x), plain(c.y)]},
                 "properties": {"key": "click", "positive": c.positive}}
                for c in feature.clicks
            ],
        }
    rebuilt = box_from_bounds(bounds, has_mask)
    own = feature.box
    if own == rebuilt:
        return out, False
    return out, [] if own is None else [plain(v) for v in own.as_list()]


def dive_to_annotations(data: dict) -> AnnotationSet:
    """Validate and convert DIVE JSON; FormatError names the track, frame and field at fault."""
    check_dict(data, "the DIVE file")
    version = data.get("version", DIVE_VERSION)
    if version != DIVE_VERSION:
        raise FormatError(f"DIVE JSON version {version!r} is not supported (only version {DIVE_VERSION})")
    if "tracks" not in data:
        raise FormatError("the DIVE file has no 'tracks' object: is it DIVE annotation JSON?")
    raw_tracks = check_dict(data["tracks"], "'tracks'")
    dropped = Dropped()
    tracks = [_track_from_dive(key, value, dropped) for key, value in raw_tracks.items()]
    ids = [t.track_id for t in tracks]
    if len(set(ids)) != len(ids):
        raise FormatError("two tracks have the same id")
    groups = check_dict(data.get("groups", {}) or {}, "'groups'")
    for key, group in groups.items():
        where = f"group {key}"
        check_dict(group, where)
        for member in check_dict(group.get("members", {}), f"{where} 'members'"):
            if parse_int_key(member, f"{where} member") not in ids:
                raise FormatError(f"{where}: member track {member} is not in the file")
    return AnnotationSet(tuple(sorted(tracks, key=lambda t: t.track_id)), groups=groups, warnings=dropped.warnings())


def _track_from_dive(key: str, raw, dropped: Dropped) -> TrackData:
    where = f"track {key}"
    track_id = parse_id(key, "a key of 'tracks'")
    check_dict(raw, where)
    if "id" in raw and parse_id(raw["id"], f"{where} 'id'") != track_id:
        raise FormatError(f"{where}: its 'id' is {raw.get('id')!r} but it is stored under key {key!r}")
    pairs = []
    for number, pair in enumerate(check_list(raw.get("confidencePairs", []), f"{where} 'confidencePairs'")):
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
            raise FormatError(f"{where} 'confidencePairs'[{number}] must be [label, score], got {str(pair)[:80]}")
        pairs.append((pair[0], float(check_number(pair[1], f"{where} confidence of {pair[0][:80]!r}"))))
    attributes = check_dict(raw.get("attributes", {}) or {}, f"{where} 'attributes'")
    meta = dict(check_dict(raw.get("meta", {}) or {}, f"{where} 'meta'"))
    app = _app_meta(meta.pop(META_KEY, None), where)
    raw_features = []
    for item in check_list(raw.get("features", []), f"{where} 'features'"):
        raw_features.append(_feature_from_dive(track_id, item, where, app, dropped))
    raw_features.sort(key=lambda pair: pair[0].frame_idx)
    features: dict[int, Feature] = {}
    interpolated: set[int] = set()  # frames filled in between keyframes; a real feature there wins
    masks_elsewhere = {}
    for number, (feature, has_mask, interpolate, bounds) in enumerate(raw_features):
        if feature.frame_idx in features and feature.frame_idx not in interpolated:
            raise FormatError(f"{where}, frame {feature.frame_idx}: two features on the same frame")
        interpolated.discard(feature.frame_idx)
        features[feature.frame_idx] = feature
        if has_mask:
            masks_elsewhere[feature.frame_idx] = tuple(int(v) for v in bounds) if bounds is not None else ()
        if interpolate and number + 1 < len(raw_features):
            following, *_, next_bounds = raw_features[number + 1]
            for between in _interpolate(track_id, feature.frame_idx, bounds, following.frame_idx, next_bounds):
                if between.frame_idx not in features:
                    features[between.frame_idx] = between
                    interpolated.add(between.frame_idx)
    for frame in app["absent"]:
        if frame in features:
            raise FormatError(f"{where}, frame {frame}: meta lists the frame as absent but it has a feature")
        features[frame] = Feature(track_id=track_id, frame_idx=frame, present=False,
                                  score=app["scores"].get(frame))
    for name in ("begin", "end"):
        if name in raw:
            check_number(raw[name], f"{where} '{name}'", integer=True, minimum=0)
    ordered = tuple(features[f] for f in sorted(features))
    return TrackData(track_id, tuple(pairs), ordered, dict(attributes), meta, masks_elsewhere)


def _interpolate(track_id: int, frame_a: int, bounds_a, frame_b: int, bounds_b) -> list[Feature]:
    """The boxes DIVE shows between a keyframe with `interpolate: true` and the next keyframe: DIVE's own formula
    (dive_utils.models.interpolate), rounding each linearly blended bounds coordinate."""
    if bounds_a is None or bounds_b is None:
        return []
    out = []
    span = frame_b - frame_a
    for step in range(1, span):
        delta = step / span
        coords = [round(p * (1 - delta) + q * delta) for p, q in zip(bounds_a, bounds_b, strict=True)]
        box = box_from_bounds(coords, has_mask=False)
        if box is not None:
            out.append(Feature(track_id=track_id, frame_idx=frame_a + step, box=box, keyframe=False))
    return out


def _app_meta(raw, where: str) -> dict:
    """Parse meta["sam2"]; absent keys default to empty."""
    out = {"seeds": None, "absent": [], "scores": {}, "boxes": {}}
    if raw is None:
        return out
    check_dict(raw, f"{where} meta 'sam2'")
    if "seeds" in raw:
        out["seeds"] = {int(check_number(f, f"{where} meta seeds", integer=True, minimum=0))
                        for f in check_list(raw["seeds"], f"{where} meta 'seeds'")}
    out["absent"] = [int(check_number(f, f"{where} meta absent", integer=True, minimum=0))
                     for f in check_list(raw.get("absent", []), f"{where} meta 'absent'")]
    for frame, score in check_dict(raw.get("scores", {}), f"{where} meta 'scores'").items():
        out["scores"][parse_int_key(frame, f"{where} meta scores frame")] = float(
            check_number(score, f"{where} meta score of frame {frame}"))
    for frame, box in check_dict(raw.get("boxes", {}), f"{where} meta 'boxes'").items():
        frame_idx = parse_int_key(frame, f"{where} meta boxes frame")
        if box is None or box == []:
            out["boxes"][frame_idx] = None
            continue
        values = [float(check_number(v, f"{where} meta box of frame {frame}")) for v in check_list(box, where)]
        if len(values) != 4:
            raise FormatError(f"{where} meta box of frame {frame} must be [x1, y1, x2, y2]")
        try:
            out["boxes"][frame_idx] = Box(*values)
        except SeedError as exc:
            raise FormatError(f"{where} meta box of frame {frame}: {exc}") from exc
    return out


def _feature_from_dive(track_id: int, raw, track_where: str, app: dict, dropped: Dropped):
    """(Feature, hasMask, interpolate, bounds) of one DIVE feature."""
    check_dict(raw, f"{track_where}: a feature")
    if "frame" not in raw:
        raise FormatError(f"{track_where}: a feature has no 'frame'")
    frame = int(check_number(raw["frame"], f"{track_where}: feature 'frame'", integer=True, minimum=0))
    where = f"{track_where}, frame {frame}"
    has_mask = parse_bool(raw.get("hasMask", False) or False, f"{where} 'hasMask'")
    box = values = None
    if raw.get("bounds") is not None:
        bounds = check_list(raw["bounds"], f"{where} 'bounds'")
        if len(bounds) != 4:
            raise FormatError(f"{where} 'bounds' must be [x1, y1, x2, y2], got {str(bounds)[:80]}")
        values = [check_number(v, f"{where} 'bounds'") for v in bounds]
        if values[2] < values[0] or values[3] < values[1]:
            raise FormatError(f"{where} 'bounds' {values} is inverted: x2 must not be left of x1, nor y2 above y1")
        box = box_from_bounds(values, has_mask)
    if frame in app["boxes"]:
        box = app["boxes"][frame]
    keyframe = parse_bool(raw.get("keyframe", True), f"{where} 'keyframe'")  # DIVE omits it on drawn features
    if app["seeds"] is not None:
        keyframe = frame in app["seeds"]
    interpolate = parse_bool(raw.get("interpolate", False) or False, f"{where} 'interpolate'")
    attributes = check_dict(raw.get("attributes", {}) or {}, f"{where} 'attributes'")
    clicks = _clicks_from_geometry(raw.get("geometry"), where, track_id, dropped)
    for name, what in (("head", "head points"), ("tail", "tail points"), ("fishLength", "fish lengths"),
                       ("flick", "flick timestamps")):
        if raw.get(name) is not None:
            dropped.add(f"{what} (the app has no place for them)", track_id)
    for name in raw.keys() - _FEATURE_KEYS:
        dropped.add(f"feature field {str(name)[:40]!r} (not part of DIVE JSON)", track_id)
    feature = Feature(track_id=track_id, frame_idx=frame, box=box, keyframe=keyframe, clicks=clicks,
                      attributes=dict(attributes), present=True, score=app["scores"].get(frame))
    return feature, has_mask, interpolate, values


_FEATURE_KEYS = {"frame", "bounds", "keyframe", "interpolate", "hasMask", "attributes", "geometry", "head", "tail",
                 "fishLength", "flick"}


def _clicks_from_geometry(geometry, where: str, track_id: int, dropped: Dropped) -> tuple[Click, ...]:
    if geometry is None:
        return ()
    check_dict(geometry, f"{where} 'geometry'")
    clicks = []
    for item in check_list(geometry.get("features", []), f"{where} 'geometry.features'"):
        check_dict(item, f"{where} a geometry feature")
        props = item.get("properties") or {}
        shape = item.get("geometry") or {}
        if not isinstance(props, dict) or not isinstance(shape, dict):
            raise FormatError(f"{where}: a geometry feature needs 'geometry' and 'properties' objects")
        if not (props.get("key") == "click" and shape.get("type") == "Point"):
            kind = shape.get("type") if isinstance(shape.get("type"), str) else "unknown"
            dropped.add(f"{kind[:20]} geometry (the app keeps masks and clicks, not DIVE shapes)", track_id)
            continue
        coords = check_list(shape.get("coordinates"), f"{where} click 'coordinates'")
        if len(coords) != 2:
            raise FormatError(f"{where}: a click needs [x, y] coordinates, got {str(coords)[:80]}")
        x, y = (float(check_number(v, f"{where} click coordinate")) for v in coords)
        clicks.append(Click(x, y, parse_bool(props.get("positive", True), f"{where} click 'positive'")))
    return tuple(clicks)


def load_dive_json(path: str | os.PathLike) -> AnnotationSet:
    return dive_to_annotations(read_json(path))


def write_dive_json(annotations: AnnotationSet, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.write_text(json.dumps(annotations_to_dive(annotations)), encoding="utf-8")
    return path
