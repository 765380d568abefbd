"""The store's concurrency contract on both backends: several connections (as the app and its consumers on other
machines hold) racing for one revision or one job lease; and SAM2T_DATABASE_URL choosing the backend.

On SQLite the file's write lock serialises them; on PostgreSQL the row locks (SELECT ... FOR UPDATE on the dataset
and job rows, conditional UPDATEs) must give the same answers: exactly one winner, the others refused cleanly.
"""

from __future__ import annotations

import threading

import pytest

from sam2_tracking.settings import Settings
from sam2_tracking.store import RevisionConflict, UpdateTrack, UpsertKeyframe, open_store
from sam2_tracking.store.jobs import LeaseLost
from sam2_tracking.types import Box, FrameMask, JobSpec

RACERS = 4


def _race(location: str, action) -> list:
    """Run action(store) on RACERS threads, each with its own store connection, released together."""
    stores = [open_store(location) for _ in range(RACERS)]
    barrier = threading.Barrier(RACERS)
    outcomes: list = [None] * RACERS

    def run(i: int) -> None:
        barrier.wait()
        try:
            outcomes[i] = action(stores[i])
        except Exception as exc:  # the outcome under test: which racers were refused, and how
            outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for store in stores:
        store.close()
    return outcomes


def test_saves_from_one_revision_exactly_one_wins(store_location):
    store = open_store(store_location)
    ds = store.add_dataset("clip", "/c.mp4", "video", 20, 30.0, 64, 48).dataset_id
    tid = store.create_track(ds).track_id
    outcomes = _race(store_location, lambda s: s.save_edits(ds, 0, [
        UpdateTrack(tid, attributes={"by": threading.get_ident()}),
        UpsertKeyframe(tid, 3, box=Box(1, 1, 9, 9)),
    ]))
    winners = [o for o in outcomes if not isinstance(o, Exception)]
    assert len(winners) == 1 and winners[0] == 1, outcomes
    assert all(isinstance(o, RevisionConflict) for o in outcomes if o is not winners[0]), outcomes
    assert store.get_revision(ds) == 1 and [f.frame_idx for f in store.get_features(tid)] == [3]
    store.close()


def test_one_job_lease_among_racing_workers(store_location):
    store = open_store(store_location)
    ds = store.add_dataset("clip", "/c.mp4", "video", 20, 30.0, 64, 48).dataset_id
    tid = store.create_track(ds).track_id
    job = store.create_job(JobSpec(ds, (tid,), 0, "tiny", "cpu"), 20).job_id
    outcomes = _race(store_location, lambda s: s.claim_job(job, f"w{threading.get_ident()}"))
    assert sorted(outcomes) == [False] * (RACERS - 1) + [True], outcomes
    holder = store.get_job(job).worker
    # Every racer now writes a batch as itself: only the holder's lands, the rest learn they lost the lease.
    names = [holder] + [f"other{i}" for i in range(RACERS - 1)]
    batches = iter(names)
    lock = threading.Lock()

    def write(s):
        with lock:
            name = next(batches)
        s.write_job_batch(job, [FrameMask(0, tid, False, -1.0)], worker=name)
        return name

    outcomes = _race(store_location, write)
    assert [o for o in outcomes if not isinstance(o, Exception)] == [holder], outcomes
    assert sum(isinstance(o, LeaseLost) for o in outcomes) == RACERS - 1, outcomes
    assert store.get_job(job).frames_done == 1
    store.close()


def test_database_url_setting_is_checked(tmp_path):
    with pytest.raises(ValueError, match="SAM2T_DATABASE_URL"):
        Settings(data_dir=tmp_path, model_dir=tmp_path, database_url="mysql://x@y/z")
    settings = Settings(data_dir=tmp_path, model_dir=tmp_path, database_url="postgresql://u:secret@db:5432/s")
    assert settings.store_location == "postgresql://u:secret@db:5432/s"
    assert "secret" not in settings.store_description
    assert Settings(data_dir=tmp_path, model_dir=tmp_path).store_location == tmp_path / "store.db"


@pytest.mark.postgres
def test_get_store_opens_the_database_url(tmp_path, monkeypatch, postgres_url):
    from queues import config
    from sam2_tracking.settings import load_settings

    monkeypatch.setenv("SAM2T_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SAM2T_DATABASE_URL", postgres_url)
    store = config.get_store(load_settings())
    try:
        assert store.dialect == "postgresql" and store.path is None
        store.add_dataset("clip", "/c.mp4", "video", 20, 30.0, 64, 48)
        assert not (tmp_path / "store.db").exists()
        with open_store(postgres_url) as other:  # another machine's consumer sees the same rows
            assert [d.name for d in other.list_datasets()] == ["clip"]
    finally:
        config._stores.pop(postgres_url, None)
        store.close()
