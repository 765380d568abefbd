"""Pure checks of the job plan: which frames a job covers and when notifications fire."""

from __future__ import annotations

import pytest

from sam2_tracking.jobs.plan import (
    expected_notifications,
    is_notification_frame,
    job_frames,
    notification_frames,
    notification_interval,
)
from sam2_tracking.types import Direction, JobSpec


def spec(start=10, frames=5, direction="forward") -> JobSpec:
    return JobSpec(dataset_id=1, track_ids=(1,), start_frame_idx=start, model_name="m", queue="cpu",
                   num_frames=frames, direction=Direction(direction))


def test_job_frames_in_each_direction_are_clipped_to_the_video():
    assert job_frames(spec(10, 5, "forward"), 100) == [10, 11, 12, 13, 14]
    assert job_frames(spec(10, 5, "backward"), 100) == [10, 9, 8, 7, 6]
    assert job_frames(spec(10, 5, "both"), 100) == [10, 11, 12, 13, 14, 9, 8, 7, 6]
    assert job_frames(spec(98, 5, "forward"), 100) == [98, 99]
    assert job_frames(spec(2, 5, "backward"), 100) == [2, 1, 0]
    assert job_frames(spec(2, None, "both"), 4) == [2, 3, 1, 0]


def test_notification_frames_are_the_frames_whose_commit_notifies():
    both = JobSpec(dataset_id=1, track_ids=(1,), start_frame_idx=10, model_name="m", queue="cpu", num_frames=5,
                   direction=Direction.BOTH, notify_percent=25)
    # frames 10..14 then 9..6; 9 frames at 25 %: every 3rd frame written
    assert notification_frames(both, 100) == {12, 9, 6}
    assert notification_frames(spec(10, 5, "forward"), 12) == {10, 11}  # 2 frames at 5 %: each one


@pytest.mark.parametrize(("total", "percent", "interval", "count"),
                         [(20, 10, 2, 10), (23, 10, 3, 8), (100, 5, 5, 20), (7, 50, 4, 2), (1, 5, 1, 1)])
def test_notifications_every_interval_and_on_the_final_frame(total, percent, interval, count):
    assert notification_interval(total, percent) == interval
    fired = [done for done in range(1, total + 1) if is_notification_frame(done, total, percent)]
    assert len(fired) == count == expected_notifications(total, percent)
    assert fired[-1] == total
