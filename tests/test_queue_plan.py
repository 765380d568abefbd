"""Pure checks of the job plan: which frames a job covers, how a half-done job resumes, when notifications fire."""

from __future__ import annotations

import pytest

from queues.plan import Leg, expected_notifications, is_notification_frame, job_frames, notification_interval, plan_legs
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


def test_a_fresh_job_is_one_leg_in_its_own_direction():
    assert plan_legs(spec(10, 5, "both"), 100, set()) == [Leg(Direction.BOTH, 10, 5)]
    assert plan_legs(spec(10, None, "forward"), 100, set()) == [Leg(Direction.FORWARD, 10, None)]


def test_resume_forward_restarts_at_the_last_committed_frame():
    legs = plan_legs(spec(10, 30, "forward"), 100, set(range(10, 20)))
    assert legs == [Leg(Direction.FORWARD, 19, 21, resume_frame_idx=19)]


def test_resume_backward_restarts_at_the_lowest_committed_frame():
    legs = plan_legs(spec(50, 30, "backward"), 100, set(range(41, 51)))
    assert legs == [Leg(Direction.BACKWARD, 41, 21, resume_frame_idx=41)]


def test_resume_both_finishes_forward_then_runs_backward():
    legs = plan_legs(spec(50, 10, "both"), 100, set(range(50, 55)))
    assert legs == [Leg(Direction.FORWARD, 54, 6, resume_frame_idx=54), Leg(Direction.BACKWARD, 50, 10)]
    legs = plan_legs(spec(50, 10, "both"), 100, set(range(50, 60)) | {49, 48})
    assert legs == [Leg(Direction.BACKWARD, 48, 8, resume_frame_idx=48)]
    assert plan_legs(spec(50, 10, "both"), 100, set(range(41, 60))) == []


def test_only_the_seed_frame_committed_resumes_without_an_extra_seed():
    assert plan_legs(spec(10, 5, "forward"), 100, {10}) == [Leg(Direction.FORWARD, 10, 5)]


@pytest.mark.parametrize(("total", "percent", "interval", "count"),
                         [(20, 10, 2, 10), (23, 10, 3, 8), (100, 5, 5, 20), (7, 50, 4, 2), (1, 5, 1, 1)])
def test_notifications_every_interval_and_on_the_final_frame(total, percent, interval, count):
    assert notification_interval(total, percent) == interval
    fired = [done for done in range(1, total + 1) if is_notification_frame(done, total, percent)]
    assert len(fired) == count == expected_notifications(total, percent)
    assert fired[-1] == total
