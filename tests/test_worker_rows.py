"""Rows of dead consumers (issue 20): past the missed-heartbeat window a consumer is listed as gone in the Admin
workers table, and a day later any live consumer's heartbeat removes its row. On both store backends."""

from __future__ import annotations

import functools
import socket
import time

from queues.config import STALE_AFTER_S
from queues.dispatch import requeue_dead_workers_jobs
from queues.heartbeat import GONE_ROW_KEPT_S, PRUNE_EVERY_S, Heartbeat, remove_gone_workers, worker_gone
from queues.identity import WorkerIdentity
from sam2_tracking.settings import Settings

HOST = socket.gethostname()


def _beat(store, worker_id: str, queue: str, age_s: float) -> None:
    # pid 1 on another host: worker_is_dead's same-host pid check does not apply, only the heartbeat's age.
    store.record_heartbeat(worker_id, queue, "other-host", 1, "cpu", None, at=time.time() - age_s)


def _three_workers(store) -> None:
    _beat(store, "day-old", "cpu", GONE_ROW_KEPT_S + 60)
    _beat(store, "dead", "cpu", STALE_AFTER_S + 30)
    _beat(store, "live", "cpu", 0)


def test_a_day_old_row_is_removed_a_recent_dead_one_is_gone_a_live_one_stays(store):
    _three_workers(store)
    by_id = {w.worker_id: w for w in store.list_workers(max_age_s=None)}
    assert set(by_id) == {"day-old", "dead", "live"}
    assert worker_gone(by_id["day-old"]) and worker_gone(by_id["dead"]) and not worker_gone(by_id["live"])

    assert remove_gone_workers(store) == 1
    assert sorted(w.worker_id for w in store.list_workers(max_age_s=None)) == ["dead", "live"]
    assert remove_gone_workers(store) == 0  # nothing else is old enough
    # The live list the dispatcher and the health check use is unchanged: only beating workers.
    assert [w.worker_id for w in store.list_workers(max_age_s=STALE_AFTER_S)] == ["live"]


def test_the_admin_table_lists_gone_workers_after_the_live_ones(store, tmp_path):
    from ui.admin import WORKER_COLUMNS, status_tables
    from ui.shared_reads import SharedReads

    settings = Settings(data_dir=tmp_path, model_dir=tmp_path, queue_names=("cpu",))
    queue = settings.queue_names[0]
    _beat(store, "a-dead", queue, STALE_AFTER_S + 30)
    _beat(store, "b-live", queue, 0)
    _beat(store, "other-queue", "not-served-here", 0)  # a queue this app does not offer is not its business
    heartbeat_cell = WORKER_COLUMNS.index("last heartbeat")
    for reads in (store, SharedReads(store)):  # the Admin timer reads through SharedReads
        models, workers, jobs, summary = status_tables(settings, reads)
        assert [row[WORKER_COLUMNS.index("worker")] for row in workers] == ["b-live", "a-dead"]
        assert workers[1][heartbeat_cell].startswith("gone: last heartbeat ")
        assert not workers[0][heartbeat_cell].startswith("gone")
        assert "No worker is listening" not in summary  # b-live listens on the queue


def test_the_heartbeat_removes_day_old_rows_on_its_first_beat_then_at_most_hourly(store, tmp_path):
    settings = Settings(data_dir=tmp_path, model_dir=tmp_path)
    queue = settings.queue_names[0]
    identity = WorkerIdentity(f"{HOST}:123:{queue}:test", queue, HOST, 123, "cpu")
    heartbeat = Heartbeat(store, [identity], functools.partial(requeue_dead_workers_jobs, settings, store))
    _three_workers(store)

    heartbeat.beat_once()  # a consumer's start: rows a day old go at once
    assert {w.worker_id for w in store.list_workers(max_age_s=None)} == {"dead", identity.worker_id, "live"}

    _beat(store, "another-day-old", "cpu", GONE_ROW_KEPT_S + 60)
    heartbeat.beat_once()  # the next beat, 2 s later in real life: no second DELETE within the hour
    assert "another-day-old" in {w.worker_id for w in store.list_workers(max_age_s=None)}
    # An hour on (the heartbeat counts it on time.monotonic(), which a test cannot move): the next beat removes it.
    heartbeat._pruned_at -= PRUNE_EVERY_S
    heartbeat.beat_once()
    assert "another-day-old" not in {w.worker_id for w in store.list_workers(max_age_s=None)}
