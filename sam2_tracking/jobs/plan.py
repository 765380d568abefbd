"""Which frames a tracking job covers (its FramePlan) and which of them carry a progress notification.

A job that a dead worker left half done needs no plan of its own: the job run continues it from the tracker's saved
state (exact), or tracks it again from its seeds, skipping the frames already committed.
"""

from __future__ import annotations

import math

from sam2_tracking.engine.plan import FramePlan
from sam2_tracking.types import JobSpec


def job_frames(spec: JobSpec, frame_count: int) -> list[int]:
    """Every frame the job writes, in the order it writes them (the start frame once)."""
    return FramePlan.for_job(spec, frame_count).frames()


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
    return frames_with_notification(job_frames(spec, frame_count), spec.notify_percent)


def frames_with_notification(order: list[int], notify_percent: int) -> set[int]:
    """Of frames in processing order, those that carry a notification."""
    return {idx for done, idx in enumerate(order, 1) if is_notification_frame(done, len(order), notify_percent)}
