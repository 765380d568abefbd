"""DIVE annotation JSON, version 2 (see shared FORMATS.md): pure converters plus a reader and a writer.

What DIVE JSON carries: tracks (id, confidence pairs, attributes, meta), features (frame, bounds, keyframe,
attributes, hasMask) and groups. Clicks travel as GeoJSON Points whose properties say {"key": "click",
"positive": bool}. Absent frames and object scores have no place in DIVE and are left out; masks travel in the
mask zip (formats.maskzip), so a feature read from DIVE JSON alone has hasMask but no mask.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..annotations import Feature
from ..types import Box, Click, SeedError
from .model import AnnotationSet, FormatError, TrackData, check_dict, check_list, check_number, parse_int_key, read_json

DIVE_VERSION = 2


def annotations_to_dive(annotations: AnnotationSet) -> dict:
    tracks = {}
    for track in annotations.tracks:
        features = [_feature_to_dive(f) for f in track.present_features]
        tracks[str(track.track_id)] = {
            "id": track.track_id,
            "meta": dict(track.meta),
            "attributes": dict(track.attributes),
            "confidencePairs": [[label, score] for label, score in track.confidence_pairs],
            "begin": track.begin if track.begin is not None else 0,
            "end": track.end if track.end is not None else 0,
            "features": features,
        }
    return {"version": DIVE_VERSION, "tracks": tracks, "groups": dict(annotations.groups)}


def _feature_to_dive(feature: Feature) -> dict:
    out: dict = {"frame": feature.frame_idx, "keyframe": feature.keyframe}
    if feature.box is not None:
        out["bounds"] = feature.box.as_list()
    if feature.rle is not None:
        out["hasMask"] = True
    if feature.attributes:
        out["attributes"] = dict(feature.attributes)
    if feature.clicks:
        out["geometry"] = {
            "type": "FeatureCollection",
            "features": [
                {"type": "Feature", "geometry": {"type": "Point", "coordinates": [c.x, c.y]},
                 "properties": {"key": "click", "positive": c.positive}}
                for c in feature.clicks
            ],
        }
    return out


def dive_to_annotations(data: dict) -> AnnotationSet:
    """Validate and convert DIVE JSON; FormatError names the track, frame and field at fault."""
    check_dict(data, "the DIVE file")
    version = data.get("version", DIVE_VERSION)
    if version != DIVE_VERSION:
        raise FormatError(f"DIVE JSON version {version!r} is not supported (only version {DIVE_VERSION})")
    if "tracks" not in data:
        raise FormatError("the DIVE file has no 'tracks' object: is it DIVE annotation JSON?")
    raw_tracks = check_dict(data["tracks"], "'tracks'")
    tracks = [_track_from_dive(key, value) for key, value in raw_tracks.items()]
    groups = check_dict(data.get("groups", {}), "'groups'")
    for key, group in groups.items():
        where = f"group {key}"
        check_dict(group, where)
        for member in check_dict(group.get("members", {}), f"{where} 'members'"):
            parse_int_key(member, f"{where} member")
            if member not in raw_tracks:
                raise FormatError(f"{where}: member track {member} is not in the file")
    return AnnotationSet(tuple(sorted(tracks, key=lambda t: t.track_id)), groups=groups)


def _track_from_dive(key: str, raw) -> TrackData:
    where = f"track {key}"
    track_id = parse_int_key(key, "a key of 'tracks'")
    check_dict(raw, where)
    if raw.get("id", track_id) != track_id:
        raise FormatError(f"{where}: its 'id' is {raw.get('id')!r} but it is stored under key {key!r}")
    pairs = []
    for number, pair in enumerate(check_list(raw.get("confidencePairs", []), f"{where} 'confidencePairs'")):
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
            raise FormatError(f"{where} 'confidencePairs'[{number}] must be [label, score], got {pair!r}")
        pairs.append((pair[0], float(check_number(pair[1], f"{where} confidence of {pair[0]!r}"))))
    attributes = check_dict(raw.get("attributes", {}), f"{where} 'attributes'")
    meta = check_dict(raw.get("meta", {}) or {}, f"{where} 'meta'")
    features, frames = [], set()
    for raw_feature in check_list(raw.get("features", []), f"{where} 'features'"):
        feature = _feature_from_dive(track_id, raw_feature, where)
        if feature.frame_idx in frames:
            raise FormatError(f"{where}, frame {feature.frame_idx}: two features on the same frame")
        frames.add(feature.frame_idx)
        features.append(feature)
    for name in ("begin", "end"):
        if name in raw:
            check_number(raw[name], f"{where} '{name}'", integer=True, minimum=0)
    features.sort(key=lambda f: f.frame_idx)
    return TrackData(track_id, tuple(pairs), tuple(features), dict(attributes), dict(meta))


def _feature_from_dive(track_id: int, raw, track_where: str) -> Feature:
    check_dict(raw, f"{track_where}: a feature")
    if "frame" not in raw:
        raise FormatError(f"{track_where}: a feature has no 'frame'")
    frame = check_number(raw["frame"], f"{track_where}: feature 'frame'", integer=True, minimum=0)
    where = f"{track_where}, frame {frame}"
    box = None
    if raw.get("bounds") is not None:
        bounds = check_list(raw["bounds"], f"{where} 'bounds'")
        if len(bounds) != 4:
            raise FormatError(f"{where} 'bounds' must be [x1, y1, x2, y2], got {bounds!r}")
        values = [check_number(v, f"{where} 'bounds'") for v in bounds]
        try:
            box = Box(*(float(v) for v in values))
        except SeedError as exc:
            raise FormatError(f"{where} 'bounds': {exc}") from exc
    keyframe = raw.get("keyframe", True)  # DIVE omits it on features a person drew
    if not isinstance(keyframe, bool):
        raise FormatError(f"{where} 'keyframe' must be true or false, got {keyframe!r}")
    has_mask = raw.get("hasMask", False)
    if not isinstance(has_mask, bool):
        raise FormatError(f"{where} 'hasMask' must be true or false, got {has_mask!r}")
    attributes = check_dict(raw.get("attributes", {}) or {}, f"{where} 'attributes'")
    clicks = _clicks_from_geometry(raw.get("geometry"), where)
    return Feature(track_id=track_id, frame_idx=frame, box=box, keyframe=keyframe, clicks=clicks,
                   attributes=dict(attributes), present=True)


def _clicks_from_geometry(geometry, where: str) -> tuple[Click, ...]:
    if geometry is None:
        return ()
    check_dict(geometry, f"{where} 'geometry'")
    clicks = []
    for item in check_list(geometry.get("features", []), f"{where} 'geometry.features'"):
        check_dict(item, f"{where} a geometry feature")
        props = item.get("properties") or {}
        shape = item.get("geometry") or {}
        if not (isinstance(props, dict) and props.get("key") == "click" and isinstance(shape, dict)
                and shape.get("type") == "Point"):
            continue  # other DIVE geometry (head/tail points, polygons) has no place in this store
        coords = check_list(shape.get("coordinates"), f"{where} click 'coordinates'")
        if len(coords) != 2:
            raise FormatError(f"{where}: a click needs [x, y] coordinates, got {coords!r}")
        x, y = (float(check_number(v, f"{where} click coordinate")) for v in coords)
        clicks.append(Click(x, y, bool(props.get("positive", True))))
    return tuple(clicks)


def load_dive_json(path: str | os.PathLike) -> AnnotationSet:
    return dive_to_annotations(read_json(path))


def write_dive_json(annotations: AnnotationSet, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.write_text(json.dumps(annotations_to_dive(annotations)), encoding="utf-8")
    return path
