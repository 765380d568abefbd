"""Which frames a tracking job covers, in the order it writes them, and which of them carry a notification.

Pure functions over frame indices, used by the runner (queues.runner). A job that a dead worker left half done needs
no plan of its own: the runner continues it from the tracker's saved state (exact), or tracks it again from its
seeds, skipping the frames already committed.
"""

from __future__ import annotations

import math

from sam2_tracking.types import Direction, JobSpec


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


def notification_interval(frames_total: int, notify_percent: int) -> int:
    """Frames between two progress notifications: ceil(total * percent / 100), at least 1."""
    return max(1, math.ceil(frames_total * notify_percent / 100))


def is_notification_frame(frames_done: int, frames_total: int, notify_percent: int) -> bool:
    """True when the frames_done-th frame carries a notification: every interval, and always the final frame."""
    return frames_done == frames_total or frames_done % notification_interval(frames_total, notify_percent) == 0


def expected_notifications(frames_total: int, notify_percent: int) -> int:
    interval = notification_interval(frames_total, notify_percent)
    return frames_total // interval + (1 if frames_total % interval else 0)


def notification_frames(spec: JobSpec, frame_count: int) -> set[int]:
    """The frames whose commit carries a progress notification (with a preview), known before tracking starts."""
    frames = job_frames(spec, frame_count)
    return {idx for done, idx in enumerate(frames, 1) if is_notification_frame(done, len(frames), spec.notify_percent)}
