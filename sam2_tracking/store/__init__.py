"""Persistence: datasets, tracks, features (masks as COCO RLE), people's edits, jobs, workers, settings and models.

    store = open_store(settings.store_path)
    ...
    store.close()

No other module writes SQL. Two backends, one contract (backend.py): a SQLite file serves the app and any number of
consumer processes on one machine (WAL, busy timeout, IMMEDIATE write transactions); a PostgreSQL database
(SAM2T_DATABASE_URL) serves processes on several machines (row locks, versioned migrations run on open). The API is split by topic into mixins (huey-style: one short class per concern).
"""

from __future__ import annotations

import os

from sam2_tracking.store.annotations import AnnotationsMixin
from sam2_tracking.store.core import StoreCore
from sam2_tracking.store.exchange import ExchangeMixin
from sam2_tracking.store.jobs import JobsMixin
from sam2_tracking.store.records import (
    DATASET_KINDS,
    DOWNLOADING_MODEL_STATUSES,
    JOB_STATUSES,
    MODEL_STATUSES,
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
from sam2_tracking.store.schema import SCHEMA_VERSION


class Store(AnnotationsMixin, JobsMixin, ExchangeMixin, StoreCore):
    """The whole store API; see each mixin for its part. Thread-safe; one per process is enough."""


def open_store(path: str | os.PathLike) -> Store:
    """Open (creating or migrating) the store: a SQLite file path, or a postgresql:// URL."""
    return Store(path)


__all__ = [
    "DATASET_KINDS", "DOWNLOADING_MODEL_STATUSES", "JOB_STATUSES", "MODEL_STATUSES", "SCHEMA_VERSION", "CreateTrack", "Dataset", "DeleteFeature",
    "DeleteTrack", "Edit", "EditError", "Feature", "Job", "JobNotification", "ModelRecord", "NotFound",
    "RevisionConflict", "SavedRevision", "Store", "StoreError", "Track", "UpdateTrack", "UpsertKeyframe", "Worker",
    "open_store", "spec_from_json", "spec_to_json",
]
