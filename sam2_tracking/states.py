"""The states a job, a model and a job's lease can be in: one enum each, the only place their values are spelled.

StrEnum members compare equal to their values, so rows written by older versions (plain strings) read back as the
same states, and the store keeps them as text.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in FINISHED_JOB_STATES


FINISHED_JOB_STATES = frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED})


class ModelState(StrEnum):
    """A catalogue model's state. UPDATING: a usable model being downloaded again (the verified copy stays in use)."""

    ABSENT = "absent"
    QUEUED = "queued"
    DOWNLOADING = "downloading"
    UPDATING = "updating"
    READY = "ready"
    FAILED = "failed"
    REMOVING = "removing"

    @property
    def usable(self) -> bool:
        return self in USABLE_MODEL_STATES

    @property
    def downloading(self) -> bool:
        return self in DOWNLOADING_MODEL_STATES


USABLE_MODEL_STATES = frozenset({ModelState.READY, ModelState.UPDATING})
DOWNLOADING_MODEL_STATES = frozenset({ModelState.QUEUED, ModelState.DOWNLOADING, ModelState.UPDATING})


class Lease(StrEnum):
    """What a worker's per-frame check of the job it holds answers."""

    OK = "ok"
    CANCEL = "cancel"  # the owner, an admin, or 'SAM2 off' asked it to stop: commit what was tracked, then end
    LOST = "lost"  # another worker holds the job now: stop without touching it


class SourceKind(StrEnum):
    """Where a model's checkpoint came from (a column; formerly an 'upload' sentinel in the URL column)."""

    URL = "url"
    UPLOAD = "upload"
