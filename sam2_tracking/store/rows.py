"""Conversions between feature/track rows and records, shared by the annotation, job and import code."""

from __future__ import annotations

import json

from sam2_tracking.store.records import EditError, Feature, NotFound, Track
from sam2_tracking.types import Box, Click

FEATURE_NAMES = ("track_id", "frame_idx", "present", "keyframe", "job_id", "score", "x1", "y1", "x2", "y2", "clicks",
                 "attributes", "mask_height", "mask_width", "mask_counts")
FEATURE_COLUMNS = ", ".join(FEATURE_NAMES)
# "Replace the row for this (track, frame)", spelled as an upsert both SQLite and PostgreSQL run (SQLite's INSERT OR
# REPLACE is not PostgreSQL). Parameters: a feature_params() dict.
FEATURE_UPSERT = (
    f"INSERT INTO features ({FEATURE_COLUMNS}) VALUES ({', '.join(':' + name for name in FEATURE_NAMES)})"
    " ON CONFLICT (track_id, frame_idx) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in FEATURE_NAMES[2:])
)

INSERT_TRACK = ("INSERT INTO tracks (dataset_id, confidence_pairs, attributes) VALUES (:dataset_id, :pairs, :attributes)"
                " RETURNING track_id")

# begin/end are computed, not stored, so no write path can leave them stale; the primary key makes this a range scan.
TRACK_SELECT = (
    "SELECT t.track_id, t.dataset_id, t.confidence_pairs, t.attributes,"
    " (SELECT MIN(frame_idx) FROM features f WHERE f.track_id = t.track_id AND f.present = 1),"
    " (SELECT MAX(frame_idx) FROM features f WHERE f.track_id = t.track_id AND f.present = 1)"
    " FROM tracks t"
)


def track_from_row(row: tuple) -> Track:
    track_id, dataset_id, pairs_json, attributes_json, begin, end = row
    pairs = tuple((str(label), float(score)) for label, score in json.loads(pairs_json))
    label = pairs[0][0] if pairs else ""
    return Track(track_id, dataset_id, label, pairs, json.loads(attributes_json), begin, end)


def load_track(conn, track_id: int) -> Track:
    row = conn.execute(TRACK_SELECT + " WHERE t.track_id = :track_id", {"track_id": track_id}).fetchone()
    if row is None:
        raise NotFound(f"track {track_id} does not exist (it may have been deleted): reload the dataset")
    return track_from_row(row)


def feature_from_row(row: tuple) -> Feature:
    (track_id, frame_idx, present, keyframe, job_id, score, x1, y1, x2, y2, clicks_json, attributes_json,
     mask_height, mask_width, mask_counts) = row
    box = None if x1 is None else Box(x1, y1, x2, y2)
    rle = None if mask_counts is None else {"size": [mask_height, mask_width], "counts": mask_counts}
    clicks = tuple(Click(x, y, bool(positive)) for x, y, positive in json.loads(clicks_json)) if clicks_json else ()
    return Feature(
        track_id=track_id,
        frame_idx=frame_idx,
        box=box,
        rle=rle,
        present=bool(present),
        score=score,
        keyframe=bool(keyframe),
        clicks=clicks,
        attributes=json.loads(attributes_json) if attributes_json else {},
        job_id=job_id,
    )


def feature_values(feature: Feature) -> tuple:
    """The row for a feature, in FEATURE_COLUMNS order."""
    box = feature.box
    rle = feature.rle
    clicks = json.dumps([[c.x, c.y, int(c.positive)] for c in feature.clicks]) if feature.clicks else None
    attributes = json.dumps(feature.attributes) if feature.attributes else None
    return (
        int(feature.track_id), int(feature.frame_idx), int(bool(feature.present)), int(bool(feature.keyframe)),
        feature.job_id, None if feature.score is None else float(feature.score),
        None if box is None else float(box.x1), None if box is None else float(box.y1),
        None if box is None else float(box.x2), None if box is None else float(box.y2),
        clicks, attributes,
        None if rle is None else int(rle["size"][0]), None if rle is None else int(rle["size"][1]),
        None if rle is None else rle["counts"],
    )


def feature_params(values: tuple) -> dict:
    """A feature row (FEATURE_COLUMNS order, as feature_values gives and undo records keep) as FEATURE_UPSERT's
    parameters."""
    return dict(zip(FEATURE_NAMES, values, strict=True))


def put_feature_row(conn, values: tuple) -> None:
    conn.execute(FEATURE_UPSERT, feature_params(values))


def get_feature_row(conn, track_id: int, frame_idx: int) -> tuple | None:
    return conn.execute(
        f"SELECT {FEATURE_COLUMNS} FROM features WHERE track_id = :track_id AND frame_idx = :frame_idx",
        {"track_id": track_id, "frame_idx": frame_idx},
    ).fetchone()


def check_track_in_dataset(conn, track_id: int, dataset_id: int, where: str) -> None:
    row = conn.execute("SELECT dataset_id FROM tracks WHERE track_id = :track_id", {"track_id": track_id}).fetchone()
    if row is None:
        raise EditError(f"{where}: track {track_id} does not exist (it may have been deleted): reload the dataset")
    if row[0] != dataset_id:
        raise EditError(f"{where}: track {track_id} belongs to dataset {row[0]}, not {dataset_id}")


def pairs_json(label: str, confidence: float, where: str) -> str:
    if not isinstance(label, str) or not label.strip():
        raise EditError(f"{where}: a track label must be a non-empty string, got {label!r}")
    if not isinstance(confidence, (int, float)) or not (0.0 <= float(confidence) <= 1.0):
        raise EditError(f"{where}: confidence must be a number from 0 to 1, got {confidence!r}")
    return json.dumps([[label, float(confidence)]])


def attributes_json(attributes: dict | None, where: str) -> str:
    if attributes is None:
        return "{}"
    if not isinstance(attributes, dict):
        raise EditError(f"{where}: attributes must be a dict, got {type(attributes).__name__}")
    try:
        return json.dumps(attributes, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise EditError(f"{where}: attributes must be JSON values: {exc}") from exc
