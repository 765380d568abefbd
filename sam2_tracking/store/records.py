"""Records the store hands out, the edits it accepts, and its errors.

Records are frozen snapshots: reading one never holds a lock or a connection. Masks are kept as COCO compressed RLE
({"size": [height, width], "counts": str}) and decoded only when `.mask` is read, so listing a long track stays cheap.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from sam2_tracking.annotation_set import Feature  # noqa: F401 (the store's feature record lives in the domain types)
from sam2_tracking.states import JobState, ModelState, SourceKind
from sam2_tracking.types import Box, Click, Direction, JobSpec

DATASET_KINDS = ("video", "images")


class StoreError(Exception):
    """Base class of the store's own errors."""


class NotFound(StoreError, KeyError):  # noqa: N818 (name agreed with the other modules)
    """A dataset, track, job or model id that does not exist. A KeyError too, so `except KeyError` works."""

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0]) if self.args else "not found"


class RevisionConflict(StoreError):  # noqa: N818 (name agreed with the other modules)
    """A save was based on an old revision of the dataset: someone else saved in between."""

    def __init__(self, dataset_id: int, base_revision: int, current_revision: int) -> None:
        self.dataset_id = dataset_id
        self.base_revision = base_revision
        self.current_revision = current_revision
        super().__init__(
            f"dataset {dataset_id} changed since you loaded it (revision {base_revision}, now {current_revision}): "
            "reload it to see the other changes, then make your edits again and save"
        )


class EditError(StoreError, ValueError):
    """An edit or an import cannot be applied; the message names the track, frame or field at fault."""


@dataclass(frozen=True)
class Dataset:
    """A video file or an image sequence. `revision` counts saves of people's edits (see Store.save_edits)."""

    dataset_id: int
    name: str
    path: str
    kind: str
    frame_count: int
    fps: float
    width: int
    height: int
    revision: int = 0


@dataclass(frozen=True)
class Track:
    """One object through the video. label is the first confidence pair's label.

    begin/end: first and last frame with a present feature (None for a track without any).
    """

    track_id: int
    dataset_id: int
    label: str
    confidence_pairs: tuple[tuple[str, float], ...]
    attributes: dict = field(default_factory=dict)
    begin: int | None = None
    end: int | None = None


@dataclass(frozen=True)
class JobNotification:
    """The latest progress message of a job: where it is and a small preview (JPEG bytes and/or a file path)."""

    frame_idx: int
    frames_done: int
    percent: float
    preview_jpeg: bytes | None = None
    preview_path: str | None = None
    created_at: float | None = None
    frames_total: int | None = None


@dataclass(frozen=True)
class Job:
    """A tracking job and its progress.

    committed_forward_idx / committed_backward_idx: the furthest frame committed going forward from the start frame
    (highest index) and going backward (lowest index); None until a batch in that direction is committed. With
    `job_frames_written` they are what a resumed job needs to continue without writing a frame twice.
    """

    job_id: int
    dataset_id: int
    spec: JobSpec
    queue: str
    status: JobState
    frames_done: int
    frames_total: int
    fps: float | None
    eta_s: float | None
    current_frame_idx: int | None
    last_committed_frame_idx: int | None
    committed_forward_idx: int | None
    committed_backward_idx: int | None
    notification: JobNotification | None
    notifications_count: int
    error: str | None  # why it failed; progress notes and stop reasons are in `message`
    worker: str | None
    resumed_count: int
    cancel_requested: bool
    huey_task_id: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    heartbeat_at: float | None
    undone_at: float | None = None
    owner: str | None = None  # who started it (login name or anonymous id); None for jobs from before owners
    message: str | None = None  # a progress note ("fetching model ...") or why someone stopped it

    @property
    def finished(self) -> bool:
        return self.status.finished

    @property
    def percent(self) -> float:
        return 100.0 * self.frames_done / self.frames_total if self.frames_total else 0.0


@dataclass(frozen=True)
class Worker:
    """A consumer process, as its last heartbeat described it."""

    worker_id: str
    queue: str
    host: str
    pid: int
    device: str
    current_job_id: int | None
    started_at: float
    heartbeat_at: float
    models: tuple[str, ...] | None = None  # models verified in its own model folder; None: not reported


@dataclass(frozen=True)
class ModelRecord:
    """A model in the catalogue. config: a packaged config name or a path ("" for a model installed from uploaded
    files, whose config is in its folder; so is its checkpoint_url: see `source`). cancel_requests: how many times an
    admin asked to cancel its download; a running download stops when it changes."""

    name: str
    config: str
    checkpoint_url: str
    is_default: bool
    status: ModelState
    size: int | None = None
    sha256: str | None = None
    progress_bytes: int | None = None
    total_bytes: int | None = None
    error: str | None = None
    updated_at: float | None = None
    source: SourceKind = SourceKind.URL
    cancel_requests: int = 0

    @property
    def usable(self) -> bool:
        return self.status.usable


# ---- edits accepted by Store.save_edits -------------------------------------------------------------------------


@dataclass(frozen=True)
class CreateTrack:
    """Create a track. placeholder_id (negative) lets later edits of the same save refer to the new track; the save's
    result maps each placeholder to the real track id (`SavedRevision.track_ids`)."""

    label: str = "object"
    confidence: float = 1.0
    attributes: dict | None = None
    placeholder_id: int = -1


@dataclass(frozen=True)
class UpdateTrack:
    """Change a track's label (its first confidence pair), confidence and/or attributes; None leaves a field."""

    track_id: int
    label: str | None = None
    confidence: float | None = None
    attributes: dict | None = None


@dataclass(frozen=True)
class DeleteTrack:
    track_id: int


@dataclass(frozen=True, eq=False)
class UpsertKeyframe:
    """A person's annotation on one frame: a box, a mask (bool (height, width)), clicks, or a box plus clicks.

    Replaces whatever feature was on that frame (a job's result included). attributes=None keeps the attributes the
    feature had, if any.
    """

    track_id: int
    frame_idx: int
    box: Box | None = None
    mask: np.ndarray | None = None
    clicks: tuple[Click, ...] = ()
    attributes: dict | None = None


@dataclass(frozen=True)
class DeleteFeature:
    track_id: int
    frame_idx: int


Edit = CreateTrack | UpdateTrack | DeleteTrack | UpsertKeyframe | DeleteFeature


class SavedRevision(int):
    """The dataset's new revision (an int), carrying `track_ids`: {placeholder_id: new track_id} for CreateTrack edits."""

    track_ids: dict[int, int]

    def __new__(cls, revision: int, track_ids: dict[int, int] | None = None) -> SavedRevision:
        obj = super().__new__(cls, revision)
        obj.track_ids = dict(track_ids or {})
        return obj


# ---- JobSpec <-> JSON ---------------------------------------------------------------------------------------------


def spec_to_json(spec: JobSpec) -> str:
    data = asdict(spec)
    data["direction"] = Direction(spec.direction).value
    data["track_ids"] = list(spec.track_ids)
    return json.dumps(data, sort_keys=True)


def spec_from_json(text: str) -> JobSpec:
    data = json.loads(text)
    data["track_ids"] = tuple(data["track_ids"])
    return JobSpec(**data)
