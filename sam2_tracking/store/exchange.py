"""Moving whole annotation sets in and out of the store (the formats package converts them to files)."""

from __future__ import annotations

import json
from dataclasses import replace

from ..annotations import AnnotationSet, TrackData
from ..types import Box, Click
from .core import _dataset_row
from .jobs import refuse_replace_during_jobs
from .records import EditError, RevisionConflict
from .rows import (
    FEATURE_COLUMNS,
    FEATURE_PLACEHOLDERS,
    TRACK_SELECT,
    attributes_json,
    feature_from_row,
    feature_values,
    track_from_row,
)


class ExchangeMixin:
    """export_annotations / import_annotations."""

    def export_annotations(self, dataset_id: int, include_absent: bool = True) -> AnnotationSet:
        """Every track of the dataset with its features, read in one snapshot."""
        with self._read() as conn:
            dataset = _dataset_row(conn, dataset_id)
            tracks = [
                track_from_row(row)
                for row in conn.execute(TRACK_SELECT + " WHERE t.dataset_id = ? ORDER BY t.track_id", (dataset_id,))
            ]
            sql = f"SELECT {FEATURE_COLUMNS} FROM features WHERE track_id = ?"
            if not include_absent:
                sql += " AND present = 1"
            sql += " ORDER BY frame_idx"
            data = []
            for track in tracks:
                features = tuple(feature_from_row(row) for row in conn.execute(sql, (track.track_id,)))
                data.append(TrackData(track.track_id, track.confidence_pairs, features, dict(track.attributes)))
        return AnnotationSet(
            tuple(data), dataset.width, dataset.height, dataset.frame_count, dataset.fps, dataset.name
        )

    def import_annotations(
        self,
        dataset_id: int,
        annotations: AnnotationSet,
        replace_existing: bool = False,
        base_revision: int | None = None,
    ) -> dict[int, int]:
        """Add the set's tracks to the dataset in one transaction; returns {track id in the file: new track id}.

        Everything is checked against the dataset (frames in range, masks at video size) before anything is
        written, and a failure names the track and frame: then the store is unchanged. replace_existing deletes the
        dataset's tracks first. Imported features count as people's work (no job), keeping their keyframe flags.
        """
        # Encode every row before taking the write lock, so the transaction is SQL only and other processes (the
        # consumers' heartbeats and batch commits) wait on it for as short a time as possible.
        prepared = []
        for track in annotations.tracks:
            pairs = [[str(label), float(score)] for label, score in track.confidence_pairs] or [["object", 1.0]]
            rows = [feature_values(replace(feature, job_id=None))[1:] for feature in track.features]
            prepared.append((track.track_id, json.dumps(pairs), attributes_json(track.attributes,
                                                                                 f"track {track.track_id}"), rows))
        with self._write() as conn:
            dataset = _dataset_row(conn, dataset_id)
            if base_revision is not None and base_revision != dataset.revision:
                raise RevisionConflict(dataset_id, base_revision, dataset.revision)
            _check_against_dataset(annotations, dataset)
            if replace_existing:
                refuse_replace_during_jobs(conn, dataset_id)
                conn.execute("DELETE FROM tracks WHERE dataset_id = ?", (dataset_id,))
            mapping: dict[int, int] = {}
            for file_track_id, pairs_json, attributes, rows in prepared:
                cur = conn.execute(
                    "INSERT INTO tracks (dataset_id, confidence_pairs, attributes) VALUES (?, ?, ?)",
                    (dataset_id, pairs_json, attributes),
                )
                mapping[file_track_id] = track_id = cur.lastrowid
                conn.executemany(
                    f"INSERT OR REPLACE INTO features ({FEATURE_COLUMNS}) VALUES ({FEATURE_PLACEHOLDERS})",
                    [(track_id, *row) for row in rows],
                )
            conn.execute("UPDATE datasets SET revision = revision + 1 WHERE dataset_id = ?", (dataset_id,))
        return mapping


def _check_against_dataset(annotations: AnnotationSet, dataset) -> None:
    size = (dataset.height, dataset.width)
    if annotations.width and annotations.height and (annotations.height, annotations.width) != size:
        raise EditError(
            f"the file is for a {annotations.width}x{annotations.height} video but dataset {dataset.dataset_id} "
            f"({dataset.name}) is {dataset.width}x{dataset.height}: import it into the video it was made for"
        )
    seen_tracks = set()
    for track in annotations.tracks:
        if track.track_id in seen_tracks:
            raise EditError(f"track {track.track_id} appears twice in the file")
        seen_tracks.add(track.track_id)
        attributes_json(track.attributes, f"track {track.track_id}")
        seen_frames = set()
        for feature in track.features:
            where = f"track {track.track_id}, frame {feature.frame_idx}"
            if feature.frame_idx in seen_frames:
                raise EditError(f"{where}: two features on the same frame")
            seen_frames.add(feature.frame_idx)
            if not (0 <= feature.frame_idx < dataset.frame_count):
                raise EditError(
                    f"{where}: the frame is outside the video ({dataset.frame_count} frames, 0 to "
                    f"{dataset.frame_count - 1}): is this file for another video?"
                )
            if feature.rle is not None and tuple(feature.rle["size"]) != size:
                raise EditError(
                    f"{where}: mask is {feature.rle['size'][1]}x{feature.rle['size'][0]}, the video is "
                    f"{dataset.width}x{dataset.height}"
                )
            if feature.box is not None and not isinstance(feature.box, Box):
                raise EditError(f"{where}: box is not a Box")
            if not all(isinstance(c, Click) for c in feature.clicks):
                raise EditError(f"{where}: clicks are not Click values")
            attributes_json(feature.attributes, where)
