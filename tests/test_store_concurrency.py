"""Reads never wait for a writer, on both backends: while one thread holds a write transaction open for 5 seconds
(a large write, then a sleep inside the store's write context, as a batch commit or a 150,000-feature import would
hold it), other threads' reads and the per-frame `job_lease` check answer, through the same Store and through a
second one (another process's connection), before the write ends. The read p95 during the write is printed, not
asserted (tests never assert on timings)."""

from __future__ import annotations

import threading
import time

from sam2_tracking.states import Lease
from sam2_tracking.store import UpsertKeyframe, open_store
from sam2_tracking.store.rows import FEATURE_UPSERT, feature_params
from sam2_tracking.types import Box, JobSpec

HOLD_S = 5.0
READERS = 3


def test_reads_and_lease_checks_do_not_wait_for_a_long_write(store_location):
    store = open_store(store_location)
    ds = store.add_dataset("clip", "/c.mp4", "video", 5000, 30.0, 64, 48).dataset_id
    tid = store.create_track(ds).track_id
    store.save_edits(ds, 0, [UpsertKeyframe(tid, 0, box=Box(1, 1, 9, 9))])
    job = store.create_job(JobSpec(ds, (tid,), 0, "tiny", "cpu"), 100).job_id
    assert store.claim_job(job, "w1")
    other = open_store(store_location)  # another process's connection to the same store

    write_open, write_done = threading.Event(), threading.Event()
    writer_errors: list[BaseException] = []

    def long_write() -> None:
        try:
            with store._write() as conn:
                # Real work first (rows and the job row itself), then hold the transaction open.
                for frame_idx in range(1, 2001):
                    conn.execute(FEATURE_UPSERT, feature_params(
                        (tid, frame_idx, 1, 0, None, 0.5, 1.0, 1.0, 9.0, 9.0, None, None, None, None, None)))
                conn.execute("UPDATE jobs SET cancel_requested = 1 WHERE job_id = :job_id", {"job_id": job})
                write_open.set()
                time.sleep(HOLD_S)
        except BaseException as exc:  # reported by the assertion below
            writer_errors.append(exc)
        finally:
            write_open.set()
            write_done.set()

    latencies: list[float] = []
    answered_while_open: list[bool] = []
    reader_errors: list[BaseException] = []
    lock = threading.Lock()

    def reader(s) -> None:
        try:
            read_until_the_write_ends(s)
        except BaseException as exc:  # reported by the assertion below
            reader_errors.append(exc)

    def read_until_the_write_ends(s) -> None:
        # Until the write ends, or 60 reads each: enough to see whether any of them waited.
        for _ in range(60):
            if write_done.is_set():
                return
            t0 = time.perf_counter()
            lease = s.job_lease(job, "w1")
            s.get_job(job)
            features = s.get_features(tid)
            s.list_tracks(ds)
            elapsed = time.perf_counter() - t0
            open_after = not write_done.is_set()
            with lock:
                latencies.append(elapsed)
                answered_while_open.append(open_after)
            # The write is not committed yet: readers see the snapshot before it.
            assert lease is Lease.OK and len(features) == 1
            time.sleep(0.02)

    thread = threading.Thread(target=long_write)
    thread.start()
    assert write_open.wait(60)
    readers = [threading.Thread(target=reader, args=(store if i % 2 == 0 else other,)) for i in range(READERS)]
    for r in readers:
        r.start()
    for r in readers:
        r.join(60)
    thread.join(60)
    assert not writer_errors and not reader_errors, (writer_errors, reader_errors)
    assert latencies, "no read ran"
    # Every read finished while the write transaction was still open: none queued behind it.
    assert all(answered_while_open), f"{answered_while_open.count(False)} of {len(latencies)} reads ended after it"
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    print(f"\n[{store.dialect}] {len(latencies)} reads (job_lease + get_job + get_features + list_tracks) during a "
          f"{HOLD_S:.0f} s write: p95 {p95 * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms")
    # Committed now: the lease check sees the cancel, the reads see the new features.
    assert store.job_lease(job, "w1") is Lease.CANCEL and other.job_lease(job, "w1") is Lease.CANCEL
    assert len(other.get_features(tid)) == 2001
    other.close()
    store.close()
