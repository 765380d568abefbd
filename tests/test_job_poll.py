"""The Annotate tab's job poll (ui/job_poll.poll_job_panel) and the Admin refresh (ui/admin.refresh_admin_tables)
on a real SQLite store with real job rows: queued, running with notifications and committed frames, done, failed,
cancelled with a reason. Store calls are counted by a proxy around the real store: a page makes at most one read per
tick, and what every page shows alike is read once per interval however many pages poll."""

from __future__ import annotations

import dataclasses
import io
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from queues.jobs_api import Caller
from sam2_tracking.states import JobState
from sam2_tracking.store import JobNotification, UpsertKeyframe
from sam2_tracking.types import Box, FrameMask, JobSpec
from ui.job_poll import JOBS_SHOWN, JobSeen, PollUpdate, poll_job_panel
from ui.shared_reads import SharedReads
from ui.viewer import dataset_value
from ui.viewer_value import PendingSeed, ViewerValue

WORKER = "host:1:cpu:0"
ANN, BOB, ADMIN = Caller("ann", False), Caller("bob", False), Caller("admin", True)


class CountingStore:
    """The real store; each call of one of its public methods is recorded (by name) before it runs."""

    def __init__(self, store) -> None:
        self._store = store
        self.calls: list[str] = []

    def __getattr__(self, name: str):
        attr = getattr(self._store, name)
        if name.startswith("_") or not callable(attr):
            return attr

        def counted(*args, **kwargs):
            self.calls.append(name)
            return attr(*args, **kwargs)

        return counted

    def take(self) -> list[str]:
        calls, self.calls = self.calls, []
        return calls


class Clock:
    """The shared reads' clock (time.monotonic in the app), moved on by the test one poll interval at a time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclasses.dataclass
class Page:
    """One open page: who it belongs to, the job it follows, its gr.State and the viewer value it holds."""

    caller: Caller
    job_id: int | None
    viewer: ViewerValue
    seen: JobSeen | None = None

    def tick(self, page_store: CountingStore, shared: SharedReads) -> tuple[PollUpdate, list[str]]:
        update = poll_job_panel(page_store, shared, self.caller, self.job_id, self.seen, self.viewer)
        self.seen = update.seen
        if update.viewer is not None:  # the page gets JSON and sends it back with the next event
            self.viewer = ViewerValue.from_json(update.viewer.to_json())
        return update, page_store.take()


@pytest.fixture()
def app(tmp_path: Path, sample_video: Path):
    from queues.config import get_store
    from sam2_tracking.library import add_video_if_missing
    from sam2_tracking.settings import Settings

    settings = Settings(data_dir=tmp_path / "data", model_dir=tmp_path / "models")
    store = get_store(settings)
    dataset = add_video_if_missing(store, sample_video, seed_file=sample_video.with_suffix(".json"))
    store.set_setting("sam2_enabled", True)
    store.set_setting("tracking_enabled", True)
    store.upsert_model("m", "configs/sam2.1/sam2.1_hiera_t.yaml", "http://127.0.0.1:9/m.pt", is_default=False,
                       status="ready")
    clock = Clock()
    shared_store = CountingStore(store)
    return settings, store, dataset, CountingStore(store), shared_store, SharedReads(shared_store, clock=clock), clock


def new_job(store, dataset, owner: str, frames: int = 15) -> int:
    track_id = store.list_tracks(dataset.dataset_id)[0].track_id
    spec = JobSpec(dataset_id=dataset.dataset_id, track_ids=(track_id,), start_frame_idx=0, model_name="m",
                   queue="cpu", num_frames=frames, batch_size=10)
    return store.create_job(spec, frames_total=frames, owner=owner).job_id


def commit_frames(store, dataset, job_id: int, frame_idxs) -> None:
    """A batch as the runner writes it: one mask per frame for the job's track."""
    track_id = store.get_job(job_id).spec.track_ids[0]
    mask = np.zeros((dataset.height, dataset.width), dtype=bool)
    mask[100:140, 200:260] = True
    store.write_job_batch(job_id, [FrameMask(f, track_id, True, 3.0, mask=mask) for f in frame_idxs], worker=WORKER)


def preview_jpeg(width: int = 64, height: int = 36) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, format="JPEG")
    return buffer.getvalue()


def opened(store, dataset) -> ViewerValue:
    return dataset_value(store, dataset.dataset_id, None, seek=0)


def test_the_panel_follows_a_job_through_each_state(app):
    from queues import dispatch

    settings, store, dataset, page_store, _shared_store, shared, clock = app
    queued = new_job(store, dataset, "ann")
    running = new_job(store, dataset, "ann")
    assert store.claim_job(running, WORKER)
    commit_frames(store, dataset, running, range(10))
    store.update_job(running, notification=JobNotification(frame_idx=11, frames_done=12, percent=80.0,
                                                           preview_jpeg=preview_jpeg(), frames_total=15))
    done = new_job(store, dataset, "ann")
    assert store.claim_job(done, WORKER)
    commit_frames(store, dataset, done, range(15))
    assert store.finish_job(done, WORKER, JobState.DONE)
    failed = new_job(store, dataset, "ann")
    assert store.claim_job(failed, WORKER)
    assert store.finish_job(failed, WORKER, JobState.FAILED, error="out of memory: lower the batch size")
    cancelled = new_job(store, dataset, "ann")
    assert dispatch.cancel_job(settings, store, cancelled, reason="cancelled by admin") == JobState.CANCELLED

    expected = {  # job -> words the panel shows, and its bar
        queued: (["queued", "no worker is listening on cpu"], 0.0),
        running: (["running", "10/15 frames", "Tracked 12/15: saved at the end of each batch"], 12 / 15),
        done: (["done", "15/15 frames (100%)"], 1.0),
        failed: (["failed", "out of memory: lower the batch size"], 0.0),
        cancelled: (["cancelled", "cancelled by admin"], 0.0),
    }
    for job_id, (words, fraction) in expected.items():
        clock.now += 1.0
        page = Page(ANN, job_id, opened(store, dataset))
        update, calls = page.tick(page_store, shared)
        assert calls == ["list_jobs"], job_id  # the page's one read: its owner's newest jobs
        assert all(w in update.panel.text for w in words), (job_id, update.panel.text)
        assert update.panel.fraction == pytest.approx(fraction)
        assert [row[0] for row in update.jobs_rows] == [cancelled, failed, done, running, queued]
        assert [row[3] for row in update.jobs_rows] == ["cancelled", "failed", "done", "running", "queued"]
        assert update.tracking_visible and update.model_choices == ["m"]
        assert (update.preview is not None) == (job_id == running)
        assert update.seen.job_id == job_id and update.seen.finished == (job_id in (done, failed, cancelled))
        # The video on screen is the job's: the next tick reloads the viewer (and only that: one read).
        assert update.seen.reload_viewer and update.viewer is None
        update, calls = page.tick(page_store, shared)
        assert calls == ["list_tracks"] and update.jobs_rows is None and update.panel is None
        assert update.viewer.poll and page.viewer.job == (None if update.seen.finished else update.seen.overlay)
        # Nothing new: the next tick reads the list again and leaves the viewer and the preview as they are.
        update, calls = page.tick(page_store, shared)
        assert calls == ["list_jobs"] and update.viewer is None and update.preview is None

    running_page = Page(ANN, running, opened(store, dataset))
    update, _calls = running_page.tick(page_store, shared)
    assert update.preview.shape == (36, 64, 3) and update.preview[18, 32, 0] > 150  # the notification's JPEG
    overlay = update.seen.overlay
    assert (overlay.id, overlay.status, overlay.start, overlay.frames) == (running, JobState.RUNNING, 0, (0, 14))


def test_a_running_job_reloads_the_viewer_after_each_commit_and_keeps_the_persons_work(app):
    _settings, store, dataset, page_store, _shared_store, shared, clock = app
    job_id = new_job(store, dataset, "ann")
    assert store.claim_job(job_id, WORKER)
    track_id = store.get_job(job_id).spec.track_ids[0]
    value = opened(store, dataset)
    seed = PendingSeed(7, track_id, (10.0, 10.0, 60.0, 60.0), ((30.0, 30.0, True),))
    page = Page(ANN, job_id, dataclasses.replace(value, frame_idx=7, selected=(track_id,), pending=(seed,)))
    page.tick(page_store, shared)  # first sight of the job on screen: reload next tick (to draw its span)
    page.tick(page_store, shared)
    update, calls = page.tick(page_store, shared)
    assert calls == ["list_jobs"] and not update.seen.reload_viewer

    # The person saves a keyframe: their page's base revision moves on, the shared dataset row is a second older.
    saved = store.save_edits(dataset.dataset_id, page.viewer.base_revision,
                             [UpsertKeyframe(track_id, 3, box=Box(5, 5, 50, 50))])
    assert saved > shared.get_dataset(dataset.dataset_id).revision
    page.viewer = dataclasses.replace(page.viewer, base_revision=int(saved))
    commit_frames(store, dataset, job_id, range(10))
    clock.now += 1.0
    update, calls = page.tick(page_store, shared)
    assert calls == ["list_jobs"] and update.seen.reload_viewer and update.seen.done == 10
    update, calls = page.tick(page_store, shared)
    assert calls == ["list_tracks"]
    reloaded = page.viewer
    assert reloaded.poll and reloaded.frame_idx == 7 and reloaded.selected == (track_id,)
    assert reloaded.pending == (seed,) and not reloaded.reset_pending
    assert reloaded.base_revision == saved  # never the shared row's older one
    assert reloaded.job.id == job_id and reloaded.job.frames == (0, 14)
    [track] = [t for t in reloaded.tracks if t.id == track_id]
    assert track.end == 9  # the committed frames 0-9 are in the track's span (its keyframes end at 3)
    assert reloaded.revision != value.revision  # the page reloads masks and timeline

    assert store.finish_job(job_id, WORKER, JobState.DONE)
    clock.now += 1.0
    page.tick(page_store, shared)
    update, _calls = page.tick(page_store, shared)
    assert update.viewer.job is None  # ended: the timeline drops the job's span
    update, _calls = page.tick(page_store, shared)
    assert update.viewer is None and not update.seen.reload_viewer  # and stays quiet after


def test_a_page_on_another_video_is_not_reloaded(app, sample_sequence):
    from sam2_tracking.library import add_video

    _settings, store, dataset, page_store, _shared_store, shared, _clock = app
    other = add_video(store, sample_sequence)
    job_id = new_job(store, dataset, "ann")
    page = Page(ANN, job_id, opened(store, other))
    for _ in range(3):
        update, calls = page.tick(page_store, shared)
        assert calls == ["list_jobs"] and update.viewer is None and not update.seen.reload_viewer


def test_an_old_or_someone_elses_job_is_read_alone_on_the_next_tick(app):
    _settings, store, dataset, page_store, _shared_store, shared, clock = app
    old = new_job(store, dataset, "ann")
    for _ in range(JOBS_SHOWN):
        newer = new_job(store, dataset, "ann")
        assert store.claim_job(newer, WORKER) and store.finish_job(newer, WORKER, JobState.DONE)
    page = Page(ANN, old, ViewerValue())  # no video open: no viewer reloads in between
    update, calls = page.tick(page_store, shared)
    assert calls == ["list_jobs"] and old not in [row[0] for row in update.jobs_rows] and update.panel is None
    assert update.seen.read_alone
    update, calls = page.tick(page_store, shared)
    assert calls == ["get_job"] and update.jobs_rows is None and "queued" in update.panel.text
    update, calls = page.tick(page_store, shared)
    assert calls == ["list_jobs"] and update.seen.read_alone  # still unfinished and still not among the newest

    theirs = Page(BOB, old, ViewerValue())
    theirs.tick(page_store, shared)
    update, calls = theirs.tick(page_store, shared)
    assert calls == ["get_job"] and "started by someone else" in update.panel.text
    update, calls = theirs.tick(page_store, shared)
    assert calls == ["list_jobs"] and update.panel is None and update.jobs_rows == []  # bob has no jobs

    # The admin's list is everyone's and comes from the shared reads: the page itself reads nothing.
    clock.now += 1.0
    admin = Page(ADMIN, old, ViewerValue())
    update, calls = admin.tick(page_store, shared)
    assert calls == [] and len(update.jobs_rows) == JOBS_SHOWN and update.seen.read_alone
    update, calls = admin.tick(page_store, shared)
    assert calls == ["get_job"] and f"Job {old}: queued" in update.panel.text


def test_many_pages_cost_one_read_each_and_the_shared_reads_do_not_grow_with_them(app):
    _settings, store, dataset, page_store, shared_store, shared, clock = app
    running = new_job(store, dataset, "ann", frames=40)
    for _ in range(3):
        new_job(store, dataset, "bob")  # queued: each says whether a worker listens on its queue
    store.record_heartbeat("host:2:gpu:0", "gpu", "host", 2, "cuda:0", None, models=["m"])
    assert store.claim_job(running, WORKER)
    pages = [Page(ANN, running, opened(store, dataset)), Page(ANN, running, opened(store, dataset)),
             Page(BOB, None, opened(store, dataset)), Page(ADMIN, running, opened(store, dataset))]
    shared_per_tick = []
    for tick in range(8):
        clock.now += 1.0
        if tick % 2 == 0:  # the job moves on between ticks: notifications and committed batches
            commit_frames(store, dataset, running, range(5 * tick, 5 * tick + 5))
            store.update_job(running, notification=JobNotification(frame_idx=5 * tick + 6, frames_done=5 * tick + 7,
                                                                   percent=50.0, preview_jpeg=preview_jpeg()))
        for page in pages:
            _update, calls = page.tick(page_store, shared)
            assert len(calls) <= 1, (tick, page.caller, calls)
        shared_per_tick.append(Counter(shared_store.take()))
    for counts in shared_per_tick:
        # Once per interval for the whole process (the two toggles are two settings), whatever the pages number.
        assert set(counts) <= {"get_setting", "list_models", "list_workers", "list_datasets", "list_jobs"}
        assert counts["get_setting"] == 2 and all(n == 1 for name, n in counts.items() if name != "get_setting")
    assert sum(c["list_workers"] for c in shared_per_tick) == len(shared_per_tick)  # not once per queued job
    assert any(p.viewer.poll for p in pages if p.job_id == running)


def test_the_admin_refresh_reads_once_per_interval_whatever_the_workers_and_pages(app):
    from ui.admin import WORKER_COLUMNS, refresh_admin_tables

    settings, store, dataset, _page_store, shared_store, shared, clock = app
    for job_state in (JobState.QUEUED, JobState.RUNNING):
        job_id = new_job(store, dataset, "ann")
        if job_state == JobState.RUNNING:
            assert store.claim_job(job_id, WORKER)
    reads = {}
    for workers in (1, 6):
        for i in range(workers):
            store.record_heartbeat(f"host:{i}:{settings.queue_names[i % 2]}:0", settings.queue_names[i % 2], "host",
                                   i, "cpu", None, models=["m"] if i % 3 else None)
        clock.now += 2.0
        tables = [refresh_admin_tables(settings, shared, ADMIN) for _page in range(3)]
        reads[workers] = Counter(shared_store.take())
        assert len(tables[0].workers) == workers and tables[0] == tables[2]
    assert reads[1] == reads[6] == Counter(list_workers=1, list_models=1, list_jobs=1, list_datasets=1)
    models_cell = WORKER_COLUMNS.index("models")
    assert {row[models_cell] for row in tables[0].workers} == {"m ✓", "not reported"}
    assert [row[4] for row in tables[0].jobs] == ["running", "queued"]
    assert tables[0].model_names == [m.name for m in store.list_models()]
