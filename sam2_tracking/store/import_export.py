"""Importing and exporting whole annotation sets (the formats package converts them to and from files)."""

from __future__ import annotations

import json
import time
from dataclasses import replace

from sam2_tracking.annotation_set import AnnotationSet, TrackData
from sam2_tracking.store.core import dataset_row
from sam2_tracking.store.job_results import refuse_replace_during_jobs
from sam2_tracking.store.records import EditError, RevisionConflict
from sam2_tracking.store.rows import (
    FEATURE_COLUMNS,
    FEATURE_UPSERT,
    INSERT_TRACK,
    TRACK_SELECT,
    attributes_json,
    feature_from_row,
    feature_params,
    feature_values,
    track_from_row,
)
from sam2_tracking.types import Box, Click

# A staging dataset this old belongs to an import that died: the largest import measured took 34 s (150,000 features).
ABANDONED_IMPORT_AGE_S = 24 * 3600


class ImportExportMixin:
    """export_annotations / import_annotations."""

    def export_annotations(self, dataset_id: int, include_absent: bool = True) -> AnnotationSet:
        """Every track of the dataset with its features, read in one snapshot."""
        with self._read() as conn:
            dataset = dataset_row(conn, dataset_id)
            tracks = [
                track_from_row(row)
                for row in conn.execute(TRACK_SELECT + " WHERE t.dataset_id = :dataset_id ORDER BY t.track_id",
                                        {"dataset_id": dataset_id})
            ]
            sql = f"SELECT {FEATURE_COLUMNS} FROM features WHERE track_id = :track_id"
            if not include_absent:
                sql += " AND present = 1"
            sql += " ORDER BY frame_idx"
            data = []
            for track in tracks:
                features = tuple(feature_from_row(row) for row in conn.execute(sql, {"track_id": track.track_id}))
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
        """Add the set's tracks to the dataset, all at once for everyone else; returns {track id in the file: new
        track id}.

        Everything is checked against the dataset (frames in range, masks at video size) before anything is
        written, and a failure names the track and frame: then the store is unchanged. replace_existing deletes the
        dataset's tracks (refused while a job on the dataset is queued or running). Imported features count as
        people's work (no job), keeping their keyframe flags.

        No transaction holds the write lock for long, whatever the file's size: the consumers' heartbeats and batch
        commits wait on it (see queues.config.STALE_AFTER_S). A file of more than IMPORT_CHUNK_ROWS features is
        written into a hidden staging dataset IMPORT_CHUNK_ROWS rows per transaction, then swapped in by moving
        track rows (not features) in one short transaction; the tracks it replaces are deleted afterwards, again in
        bounded transactions.
        """
        with self._read() as conn:
            dataset = dataset_row(conn, dataset_id)
            if replace_existing:  # answer at once; checked again in the transaction that deletes
                refuse_replace_during_jobs(conn, dataset_id)
        _check_against_dataset(annotations, dataset)
        # Encode every row before taking the write lock: the transactions are SQL only.
        prepared = []
        for track in annotations.tracks:
            pairs = [[str(label), float(score)] for label, score in track.confidence_pairs] or [["object", 1.0]]
            rows = [feature_values(replace(feature, job_id=None))[1:] for feature in track.features]
            prepared.append((track.track_id, json.dumps(pairs), attributes_json(track.attributes,
                                                                                 f"track {track.track_id}"), rows))
        if sum(len(rows) for *_, rows in prepared) <= IMPORT_CHUNK_ROWS:
            with self._write() as conn:
                _check_revision(conn, dataset_id, base_revision)
                if replace_existing:
                    refuse_replace_during_jobs(conn, dataset_id)
                mapping = {}
                for file_track_id, pairs_json, attributes, rows in prepared:
                    mapping[file_track_id] = track_id = _insert_track(conn, dataset_id, pairs_json, attributes)
                    _insert_features(conn, track_id, rows)
                if replace_existing and mapping:
                    # Delete after inserting, so the new tracks never take the ids of the ones they replace (a
                    # finished job or an open page naming an old id must not reach a new track).
                    conn.execute("DELETE FROM tracks WHERE dataset_id = :dataset_id AND track_id < :first",
                                 {"dataset_id": dataset_id, "first": min(mapping.values())})
                elif replace_existing:
                    conn.execute("DELETE FROM tracks WHERE dataset_id = :dataset_id", {"dataset_id": dataset_id})
                conn.execute(_BUMP_REVISION, {"dataset_id": dataset_id})
            return mapping
        return self._staged_import(dataset, prepared, replace_existing, base_revision)

    def _staged_import(self, dataset, prepared: list, replace_existing: bool, base_revision: int | None) -> dict:
        staging = self._add_staging_dataset(dataset)
        trash = self._add_staging_dataset(dataset) if replace_existing else None
        try:
            mapping: dict[int, int] = {}
            for unit in _units_of_work(prepared, IMPORT_CHUNK_ROWS):
                with self._write() as conn:  # commits between units, letting other writers in
                    for file_track_id, pairs_json, attributes, rows in unit:
                        if file_track_id not in mapping:
                            mapping[file_track_id] = _insert_track(conn, staging, pairs_json, attributes)
                        _insert_features(conn, mapping[file_track_id], rows)
            with self._write() as conn:
                _check_revision(conn, dataset.dataset_id, base_revision)
                if trash is not None:
                    refuse_replace_during_jobs(conn, dataset.dataset_id)
                    conn.execute(_MOVE_TRACKS, {"target_id": trash, "source_id": dataset.dataset_id})
                conn.execute(_MOVE_TRACKS, {"target_id": dataset.dataset_id, "source_id": staging})
                conn.execute(_BUMP_REVISION, {"dataset_id": dataset.dataset_id})
        finally:
            for leftover in (staging, trash):
                if leftover is not None:
                    self._drop_staging_dataset(leftover)
        return mapping

    def drop_abandoned_imports(self, older_than_s: float = ABANDONED_IMPORT_AGE_S) -> int:
        """Delete the staging datasets of imports whose process died mid-way (its `finally` never ran), and what they
        hold; returns how many. Only those older than older_than_s: a running import (the app's, or the CLI's beside
        it) is minutes old at most, and its staging rows must survive until it swaps them in."""
        with self._read() as conn:
            abandoned = [row[0] for row in conn.execute(
                "SELECT dataset_id FROM datasets WHERE staging = 1 AND created_at < :before ORDER BY dataset_id",
                {"before": time.time() - older_than_s})]
        for staging_id in abandoned:
            self._drop_staging_dataset(staging_id)
        return len(abandoned)

    def _add_staging_dataset(self, like) -> int:
        with self._write() as conn:
            return conn.execute(
                "INSERT INTO datasets (name, path, kind, frame_count, fps, width, height, revision, created_at, staging)"
                " VALUES (:name, '', :kind, :frame_count, :fps, :width, :height, 0, :now, 1) RETURNING dataset_id",
                {"name": f"import staging for dataset {like.dataset_id}", "kind": like.kind,
                 "frame_count": like.frame_count, "fps": like.fps, "width": like.width, "height": like.height,
                 "now": time.time()},
            ).fetchone()[0]

    def _drop_staging_dataset(self, staging_id: int) -> None:
        """Delete a staging dataset and its tracks, IMPORT_CHUNK_ROWS features per transaction."""
        with self._read() as conn:
            track_ids = [row[0] for row in conn.execute("SELECT track_id FROM tracks WHERE dataset_id = :dataset_id",
                                                        {"dataset_id": staging_id})]
        for track_id in track_ids:
            deleted = IMPORT_CHUNK_ROWS
            while deleted == IMPORT_CHUNK_ROWS:
                with self._write() as conn:
                    deleted = conn.execute(
                        "DELETE FROM features WHERE track_id = :track_id AND frame_idx IN"
                        " (SELECT frame_idx FROM features WHERE track_id = :track_id LIMIT :rows)",
                        {"track_id": track_id, "rows": IMPORT_CHUNK_ROWS},
                    ).rowcount
        for start in range(0, len(track_ids), 200):
            with self._write() as conn:
                chunk = track_ids[start:start + 200]
                marks = ", ".join(f":t{i}" for i in range(len(chunk)))
                conn.execute(f"DELETE FROM tracks WHERE track_id IN ({marks})",
                             {f"t{i}": track_id for i, track_id in enumerate(chunk)})
        with self._write() as conn:
            conn.execute("DELETE FROM datasets WHERE dataset_id = :dataset_id AND staging = 1",
                         {"dataset_id": staging_id})


_BUMP_REVISION = "UPDATE datasets SET revision = revision + 1 WHERE dataset_id = :dataset_id"
_MOVE_TRACKS = "UPDATE tracks SET dataset_id = :target_id WHERE dataset_id = :source_id"

# Rows (features, tracks) per write transaction of a large import: well under a second of write lock here.
IMPORT_CHUNK_ROWS = 5000


def _units_of_work(prepared: list, max_rows: int) -> list[list]:
    """Split (file track id, labels, attributes, feature rows) items into units of at most max_rows features (a
    track with more is split across units; each of its pieces carries the same file track id)."""
    units, unit, size = [], [], 0
    for file_track_id, pairs_json, attributes, rows in prepared:
        for start in range(0, max(len(rows), 1), max_rows):
            piece = rows[start:start + max_rows]
            if unit and size + len(piece) > max_rows:
                units.append(unit)
                unit, size = [], 0
            unit.append((file_track_id, pairs_json, attributes, piece))
            size += len(piece) + 1
    if unit:
        units.append(unit)
    return units


def _check_revision(conn, dataset_id: int, base_revision: int | None) -> None:
    dataset = dataset_row(conn, dataset_id, lock=True)  # held until commit on PostgreSQL, see save_edits
    if base_revision is not None and base_revision != dataset.revision:
        raise RevisionConflict(dataset_id, base_revision, dataset.revision)


def _insert_track(conn, dataset_id: int, pairs_json: str, attributes: str) -> int:
    return conn.execute(INSERT_TRACK, {"dataset_id": dataset_id, "pairs": pairs_json,
                                       "attributes": attributes}).fetchone()[0]


def _insert_features(conn, track_id: int, rows: list[tuple]) -> None:
    conn.executemany(FEATURE_UPSERT, [feature_params((track_id, *row)) for row in rows])


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
