"""Tracks, features and people's edits (saved atomically against a dataset revision)."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from sam2_tracking.engine.masks import mask_to_box, mask_to_rle
from sam2_tracking.store.core import dataset_row
from sam2_tracking.store.records import (
    CreateTrack,
    DeleteFeature,
    DeleteTrack,
    Edit,
    EditError,
    Feature,
    RevisionConflict,
    SavedRevision,
    Track,
    UpdateTrack,
    UpsertKeyframe,
)
from sam2_tracking.store.rows import (
    FEATURE_COLUMNS,
    FEATURE_NAMES,
    INSERT_TRACK,
    TRACK_SELECT,
    attributes_json,
    check_track_in_dataset,
    feature_from_row,
    feature_values,
    get_feature_row,
    load_track,
    pairs_json,
    put_feature_row,
    track_from_row,
)
from sam2_tracking.types import Box, Click, Seed


class TracksMixin:
    """Tracks and features. Reads return records; people's changes go through save_edits."""

    def create_track(
        self, dataset_id: int, label: str = "object", confidence: float = 1.0, attributes: dict | None = None
    ) -> Track:
        """Create an empty track now (for tools and imports; the UI saves CreateTrack edits with its other edits).

        Does not change the dataset revision: adding a track cannot overwrite anyone's work.
        """
        where = f"new track in dataset {dataset_id}"
        pairs, attrs = pairs_json(label, confidence, where), attributes_json(attributes, where)
        with self._write() as conn:
            dataset_row(conn, dataset_id)
            track_id = conn.execute(
                INSERT_TRACK, {"dataset_id": dataset_id, "pairs": pairs, "attributes": attrs},
            ).fetchone()[0]
            return load_track(conn, track_id)

    def get_track(self, track_id: int) -> Track:
        with self._read() as conn:
            return load_track(conn, track_id)

    def list_tracks(self, dataset_id: int) -> list[Track]:
        with self._read() as conn:
            dataset_row(conn, dataset_id)
            rows = conn.execute(TRACK_SELECT + " WHERE t.dataset_id = :dataset_id ORDER BY t.track_id",
                                {"dataset_id": dataset_id}).fetchall()
        return [track_from_row(row) for row in rows]

    def get_features(
        self, track_id: int, start_frame_idx: int | None = None, stop_frame_idx: int | None = None
    ) -> list[Feature]:
        """A track's features (absent ones included) in frame order, from start (inclusive) to stop (exclusive)."""
        start = -1 if start_frame_idx is None else int(start_frame_idx)
        stop = 2**62 if stop_frame_idx is None else int(stop_frame_idx)
        with self._read() as conn:
            load_track(conn, track_id)
            rows = conn.execute(
                f"SELECT {FEATURE_COLUMNS} FROM features WHERE track_id = :track_id AND frame_idx >= :start"
                " AND frame_idx < :stop ORDER BY frame_idx",
                {"track_id": track_id, "start": start, "stop": stop},
            ).fetchall()
        return [feature_from_row(row) for row in rows]

    def get_frame_features(self, dataset_id: int, frame_idx: int) -> list[Feature]:
        """Every track's feature on one frame (absent ones included), in track order: what a frame view draws."""
        columns = ", ".join("f." + name for name in FEATURE_NAMES)
        with self._read() as conn:
            dataset_row(conn, dataset_id)
            rows = conn.execute(
                f"SELECT {columns} FROM tracks t JOIN features f ON f.track_id = t.track_id AND f.frame_idx = :frame_idx"
                " WHERE t.dataset_id = :dataset_id ORDER BY t.track_id",
                {"frame_idx": int(frame_idx), "dataset_id": dataset_id},
            ).fetchall()
        return [feature_from_row(row) for row in rows]

    def keyframe_seeds(self, track_id: int) -> list[Seed]:
        """The track's keyframes as tracker seeds, in frame order.

        A mask a person drew is the seed; otherwise the person's box and/or clicks are. A mask a job added to a
        keyframe is the model's answer to that box, not a person's prompt, so it does not replace the box.
        """
        seeds = []
        for feature in self.get_features(track_id):
            if not feature.keyframe:
                continue
            if feature.rle is not None and feature.job_id is None:
                seeds.append(Seed(feature.frame_idx, mask=feature.mask))
            elif feature.box is not None or feature.clicks:
                seeds.append(Seed(feature.frame_idx, box=feature.box, clicks=feature.clicks))
            elif feature.rle is not None:
                seeds.append(Seed(feature.frame_idx, mask=feature.mask))
        return seeds

    # ---- saving people's edits --------------------------------------------------------------------------------

    def save_edits(self, dataset_id: int, base_revision: int, edits: Sequence[Edit]) -> SavedRevision:
        """Apply edits in one transaction and return the new revision (with new track ids, see SavedRevision).

        Refused with RevisionConflict if anyone saved since base_revision, and with EditError (naming the edit,
        track and frame) if an edit is invalid; either way nothing is changed.
        """
        with self._write() as conn:
            # Locked until commit on PostgreSQL: two saves from the same revision cannot both pass this check.
            dataset = dataset_row(conn, dataset_id, lock=True)
            if dataset.revision != base_revision:
                raise RevisionConflict(dataset_id, base_revision, dataset.revision)
            created: dict[int, int] = {}
            for number, edit in enumerate(edits, start=1):
                _apply_edit(conn, dataset, edit, number, created)
            new_revision = dataset.revision + 1
            conn.execute("UPDATE datasets SET revision = :revision WHERE dataset_id = :dataset_id",
                         {"revision": new_revision, "dataset_id": dataset_id})
        return SavedRevision(new_revision, created)


def _apply_edit(conn, dataset, edit: Edit, number: int, created: dict[int, int]) -> None:
    kind = type(edit).__name__
    if isinstance(edit, CreateTrack):
        where = f"edit {number} ({kind})"
        if edit.placeholder_id >= 0 or edit.placeholder_id in created:
            raise EditError(f"{where}: placeholder_id must be negative and unique in the save, got {edit.placeholder_id}")
        created[edit.placeholder_id] = conn.execute(INSERT_TRACK, {
            "dataset_id": dataset.dataset_id, "pairs": pairs_json(edit.label, edit.confidence, where),
            "attributes": attributes_json(edit.attributes, where),
        }).fetchone()[0]
        return
    if not isinstance(edit, (UpdateTrack, DeleteTrack, UpsertKeyframe, DeleteFeature)):
        raise EditError(f"edit {number}: unknown edit type {kind}")
    track_id = created.get(edit.track_id, edit.track_id)
    where = f"edit {number} ({kind}, track {track_id}" + (
        f", frame {edit.frame_idx})" if hasattr(edit, "frame_idx") else ")"
    )
    check_track_in_dataset(conn, track_id, dataset.dataset_id, where)
    if isinstance(edit, DeleteTrack):
        conn.execute("DELETE FROM tracks WHERE track_id = :track_id", {"track_id": track_id})
    elif isinstance(edit, UpdateTrack):
        pairs = json.loads(conn.execute("SELECT confidence_pairs FROM tracks WHERE track_id = :track_id",
                                        {"track_id": track_id}).fetchone()[0])
        if edit.label is not None or edit.confidence is not None:
            label = edit.label if edit.label is not None else (pairs[0][0] if pairs else "object")
            confidence = edit.confidence if edit.confidence is not None else (pairs[0][1] if pairs else 1.0)
            first = json.loads(pairs_json(label, confidence, where))
            conn.execute("UPDATE tracks SET confidence_pairs = :pairs WHERE track_id = :track_id",
                         {"pairs": json.dumps(first + pairs[1:]), "track_id": track_id})
        if edit.attributes is not None:
            conn.execute("UPDATE tracks SET attributes = :attributes WHERE track_id = :track_id",
                         {"attributes": attributes_json(edit.attributes, where), "track_id": track_id})
    elif isinstance(edit, DeleteFeature):
        _check_frame(edit.frame_idx, dataset, where)
        if conn.execute("DELETE FROM features WHERE track_id = :track_id AND frame_idx = :frame_idx",
                        {"track_id": track_id, "frame_idx": edit.frame_idx}).rowcount == 0:
            raise EditError(f"{where}: there is no feature to delete on that frame: reload the dataset")
    else:
        _check_frame(edit.frame_idx, dataset, where)
        put_feature_row(conn, feature_values(_keyframe_feature(conn, edit, track_id, dataset, where)))


def _check_frame(frame_idx, dataset, where: str) -> None:
    if not isinstance(frame_idx, (int, np.integer)) or not (0 <= frame_idx < dataset.frame_count):
        raise EditError(f"{where}: frame must be an integer from 0 to {dataset.frame_count - 1}, got {frame_idx!r}")


def _keyframe_feature(conn, edit: UpsertKeyframe, track_id: int, dataset, where: str) -> Feature:
    if edit.box is not None and not isinstance(edit.box, Box):
        raise EditError(f"{where}: box must be a Box, got {type(edit.box).__name__}")
    if not all(isinstance(c, Click) for c in edit.clicks):
        raise EditError(f"{where}: clicks must be Click values")
    rle, box = None, edit.box
    if edit.mask is not None:
        mask = np.asarray(edit.mask)
        if mask.shape != (dataset.height, dataset.width):
            raise EditError(
                f"{where}: mask is {mask.shape[1] if mask.ndim == 2 else mask.shape} but the video is "
                f"{dataset.width}x{dataset.height}: draw the mask on the frame as shown"
            )
        mask = mask.astype(bool, copy=False)
        if not mask.any():
            raise EditError(f"{where}: the mask is empty: paint the object, or delete the feature instead")
        rle = mask_to_rle(mask)
        if box is None:
            box = mask_to_box(mask)  # so boxes-only views and exports still show the keyframe
    if box is None and rle is None and not edit.clicks:
        raise EditError(f"{where}: a keyframe needs a box, a mask or clicks")
    attributes = edit.attributes
    if attributes is None:
        old = get_feature_row(conn, track_id, edit.frame_idx)
        attributes = feature_from_row(old).attributes if old else {}
    attributes_json(attributes, where)
    return Feature(
        track_id=track_id, frame_idx=int(edit.frame_idx), box=box, rle=rle, present=True, score=None, keyframe=True,
        clicks=tuple(edit.clicks), attributes=dict(attributes), job_id=None,
    )
