"""Every stop keeps every tracked frame: a job committing every 100 frames, stopped after 40 or more tracked frames,
keeps each of them, through a real consumer process, on SQLite and PostgreSQL. Three ways to stop it: its owner's
cancel, an admin's stop of that job, and the admin turning SAM2 off (which stops every job)."""

from __future__ import annotations

import dataclasses

import pytest

from queues import jobs_api
from queues.dispatch import enqueue_tracking_job
from sam2_tracking.states import JobState
from sam2_tracking.testing.queue_harness import TEST_MODEL_NAME, QueueHarness
from sam2_tracking.testing.wait import wait_for
from sam2_tracking.types import JobSpec

pytestmark = pytest.mark.slow

OWNER = jobs_api.Caller("ann", False)
ADMIN = jobs_api.Caller("admin", True)
STOP_AFTER = 40  # tracked frames seen before the stop is asked for
FRAMES = 150
BATCH = 100  # nothing is committed before frame 100: every frame kept below it comes from the stop itself


class _Harness(QueueHarness):
    """The queue harness with its store (and its consumers' store) on PostgreSQL when given a URL."""

    def __init__(self, tmp_path, model_dir, database_url: str = "") -> None:
        super().__init__(tmp_path, model_dir, queues=("cpu",))
        if database_url:
            from queues.config import get_store

            self.settings = dataclasses.replace(self.settings, database_url=database_url)
            self.store = get_store(self.settings)

    @property
    def env(self) -> dict[str, str]:
        env = super().env
        if self.settings.database_url:
            env["SAM2T_DATABASE_URL"] = self.settings.database_url
        return env


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def harness(request, tmp_path_factory, shared_model_dir):
    # A database of its own on the session's PostgreSQL server, for the three stops of this module.
    url = request.getfixturevalue("postgres_server").create_database() if request.param == "postgres" else ""
    h = _Harness(tmp_path_factory.mktemp(f"stop-{request.param}"), shared_model_dir, url)
    h.register_model()
    h.start_consumer("cpu")
    yield h
    h.close()
    from queues.config import forget_instances

    forget_instances()


def _stop_by_owner(h, job_id):
    jobs_api.cancel_job_by_id(h.settings, h.store, OWNER, job_id)


def _stop_by_admin(h, job_id):
    jobs_api.cancel_job_by_id(h.settings, h.store, ADMIN, job_id)


def _sam2_off(h, job_id):
    from ui.admin import SAM2_OFF_MESSAGE

    assert job_id in jobs_api.stop_all_jobs(h.settings, h.store, ADMIN, SAM2_OFF_MESSAGE)


@pytest.mark.parametrize("stop", [_stop_by_owner, _stop_by_admin, _sam2_off], ids=["cancel", "admin", "sam2-off"])
def test_a_stop_keeps_every_tracked_frame(harness, stop):
    dataset, tracks = harness.add_sample()
    spec = JobSpec(dataset_id=dataset.dataset_id, track_ids=(tracks[0],), start_frame_idx=0,
                   model_name=TEST_MODEL_NAME, queue="cpu", num_frames=FRAMES, batch_size=BATCH, notify_percent=10)
    job_id = enqueue_tracking_job(harness.settings, harness.store, spec, owner=OWNER.user).job_id
    # current_frame_idx follows the tracker between commits (written every half second by the job's writer).
    wait_for(lambda: (harness.store.get_job(job_id).current_frame_idx or 0) >= STOP_AFTER - 1, 240,
             f"{STOP_AFTER} tracked frames ({harness.logs()})", 0.05)
    tracked_when_asked = harness.store.get_job(job_id).current_frame_idx + 1
    stop(harness, job_id)
    job = wait_for(lambda: (j := harness.store.get_job(job_id)).finished and j, 120,
                   f"job {job_id} to end ({harness.logs()})", 0.1)
    assert job.status == JobState.CANCELLED, (job.status, job.error, harness.logs())
    written = harness.store.job_frames_written(job_id)
    # Every frame tracked before the stop is committed, in one piece from the seed frame on, and none was lost to
    # the batch size: the job had not reached its first commit (frame 100).
    assert len(written) >= tracked_when_asked >= STOP_AFTER, (len(written), tracked_when_asked)
    assert written == set(range(len(written)))
    assert len(written) < BATCH, f"the stop came after the first commit ({len(written)} frames): nothing was tested"
    # What the person is shown is what the store holds.
    assert job.frames_done == len(written) == jobs_api.frames_tracked(job)
    # Each kept frame holds this job's mask (or its "absent" record) for the track.
    features = harness.store.get_features(tracks[0], 0, FRAMES)
    assert {f.frame_idx for f in features if f.job_id == job_id} == written
