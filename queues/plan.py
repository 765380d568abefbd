"""Which frames a tracking job covers, and how to finish a job that a dead worker left half done.

Pure functions over frame indices: the runner (queues.runner) turns the legs into tracker calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sam2_tracking.types import Direction, JobSpec


@dataclass(frozen=True)
class Leg:
    """One tracker call: `num_frames` frames from `start_frame_idx` (inclusive) in `direction`.

    resume_frame_idx: a frame this job already committed that seeds the leg with its mask (None on a fresh job).
    """

    direction: Direction
    start_frame_idx: int
    num_frames: int | None  # None: to the end of the video (or its first frame going backward)
    resume_frame_idx: int | None = None


def forward_frames(spec: JobSpec, frame_count: int) -> range:
    stop = frame_count if spec.num_frames is None else min(frame_count, spec.start_frame_idx + spec.num_frames)
    return range(spec.start_frame_idx, stop)


def backward_frames(spec: JobSpec) -> range:
    stop = -1 if spec.num_frames is None else max(-1, spec.start_frame_idx - spec.num_frames)
    return range(spec.start_frame_idx, stop, -1)


def job_frames(spec: JobSpec, frame_count: int) -> list[int]:
    """Every frame the job writes, in the order it writes them (the start frame once)."""
    if spec.direction == Direction.FORWARD:
        return list(forward_frames(spec, frame_count))
    if spec.direction == Direction.BACKWARD:
        return list(backward_frames(spec))
    return list(forward_frames(spec, frame_count)) + list(backward_frames(spec))[1:]


def plan_legs(spec: JobSpec, frame_count: int, committed: set[int]) -> list[Leg]:
    """Legs that finish the job given the frames already committed.

    A fresh job is one leg in the job's own direction, so its masks equal one stock SAM2 run. A resumed job restarts
    each direction at its last committed frame; the runner skips frames already committed, so none is written twice.
    """
    if not committed:
        return [Leg(spec.direction, spec.start_frame_idx, spec.num_frames)]
    legs: list[Leg] = []
    if spec.direction in (Direction.FORWARD, Direction.BOTH):
        legs += _resume_leg(Direction.FORWARD, forward_frames(spec, frame_count), committed)
    if spec.direction in (Direction.BACKWARD, Direction.BOTH):
        legs += _resume_leg(Direction.BACKWARD, backward_frames(spec), committed)
    return legs


def _resume_leg(direction: Direction, frames: range, committed: set[int]) -> list[Leg]:
    remaining = [idx for idx in frames if idx not in committed]
    if not remaining:
        return []
    done_in_direction = [idx for idx in frames if idx in committed]
    if not done_in_direction:
        return [Leg(direction, frames[0], len(frames))]
    # Frames are committed batch by batch in order, so the last committed one sits just before the first remaining.
    last_idx = max(done_in_direction) if direction == Direction.FORWARD else min(done_in_direction)
    start_pos = frames.index(last_idx)
    resume_frame = None if last_idx == frames[0] else last_idx
    return [Leg(direction, last_idx, len(frames) - start_pos, resume_frame)]


def notification_interval(frames_total: int, notify_percent: int) -> int:
    """Frames between two progress notifications: ceil(total * percent / 100), at least 1."""
    return max(1, math.ceil(frames_total * notify_percent / 100))


def is_notification_frame(frames_done: int, frames_total: int, notify_percent: int) -> bool:
    """True when the frames_done-th frame carries a notification: every interval, and always the final frame."""
    return frames_done == frames_total or frames_done % notification_interval(frames_total, notify_percent) == 0


def expected_notifications(frames_total: int, notify_percent: int) -> int:
    interval = notification_interval(frames_total, notify_percent)
    return frames_total // interval + (1 if frames_total % interval else 0)
