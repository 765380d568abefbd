"""Persistence: datasets, tracks, features (masks as COCO RLE), people's edits, jobs, workers, settings and models.

    store = open_store(settings.store_location)
    ...
    store.close()

No other module writes SQL. Two backends behind one small interface (backend.py), siblings: sqlite.py (a file that
serves the app and any number of consumer processes on one machine) and postgres.py (a database that serves
processes on several machines); one schema (sql_schema.py) and one versioned migration runner (migrations.py) for
both. Reads never wait for writers on either. The API is split by topic into mixins (huey-style: one short class per
concern): core (datasets, settings, models, workers), tracks (tracks, features, people's edits), jobs (job rows and
leases), job_results (batches and undo), import_export (whole annotation sets).
"""

from __future__ import annotations

import os

from sam2_tracking.store.core import StoreCore
from sam2_tracking.store.import_export import ImportExportMixin
from sam2_tracking.store.job_results import JobResultsMixin
from sam2_tracking.store.jobs import JobsMixin, LeaseLost
from sam2_tracking.store.records import (
    DATASET_KINDS,
    CreateTrack,
    Dataset,
    DeleteFeature,
    DeleteTrack,
    Edit,
    EditError,
    Feature,
    Job,
    JobNotification,
    ModelRecord,
    NotFound,
    RevisionConflict,
    SavedRevision,
    StoreError,
    Track,
    UpdateTrack,
    UpsertKeyframe,
    Worker,
    spec_from_json,
    spec_to_json,
)
from sam2_tracking.store.sql_schema import SCHEMA_VERSION
from sam2_tracking.store.tracks import TracksMixin


class Store(TracksMixin, JobsMixin, JobResultsMixin, ImportExportMixin, StoreCore):
    """The whole store API; see each mixin for its part. Thread-safe; one per process is enough."""


def open_store(path: str | os.PathLike) -> Store:
    """Open (creating or migrating) the store: a SQLite file path, or a postgresql:// URL."""
    return Store(path)


__all__ = [
    "DATASET_KINDS", "SCHEMA_VERSION", "CreateTrack", "Dataset", "DeleteFeature",
    "DeleteTrack", "Edit", "EditError", "Feature", "Job", "JobNotification", "LeaseLost", "ModelRecord", "NotFound",
    "RevisionConflict", "SavedRevision", "Store", "StoreError", "Track", "UpdateTrack", "UpsertKeyframe", "Worker",
    "open_store", "spec_from_json", "spec_to_json",
]
