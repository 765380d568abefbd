"""A consumer's own model folder: a consumer killed mid-download, the per-job fetch from the catalogue's URLs
(checked against its size and SHA-256, cancellable, replacing a copy that differs), and the workers' models cell."""

from __future__ import annotations

import shutil

import pytest

from sam2_tracking.models import catalogue as models
from sam2_tracking.models.catalogue import (
    download_model,
    load_predictor,
    model_status,
)
from tests.test_models_download import served_entry, sha256_of


@pytest.mark.slow
def test_consumer_killed_mid_download_then_restarted_shows_not_downloading(file_server, test_model_dir, tmp_path):
    from queues.dispatch import enqueue_model_download
    from sam2_tracking.testing.queue_harness import QueueHarness
    from sam2_tracking.testing.wait import wait_for

    for name in ("config.yaml", "checkpoint.pt"):
        shutil.copy(test_model_dir / name, file_server.root / name)
    harness = QueueHarness(tmp_path, tmp_path / "models", queues=("cpu",))
    try:
        store = harness.store
        download_model(served_entry(file_server), harness.settings.model_dir)  # the working model
        store.upsert_model("test_model", file_server.url + "/config.yaml", file_server.url + "/checkpoint.pt",
                           is_default=False, status="ready")
        file_server.stall_responses("/checkpoint.pt", 3_000_000)
        enqueue_model_download(harness.settings, store, "test_model", "cpu", force=True)
        consumer = harness.start_consumer("cpu")
        part = models.partial_checkpoint(harness.settings.model_dir, "test_model")
        wait_for(lambda: part.exists() and part.stat().st_size >= 1 << 20, 60, "the re-download to stall")
        harness.kill(consumer)
        assert store.get_model("test_model").status == "updating"  # the version on disk still serves
        harness.start_consumer("cpu")
        record = store.get_model("test_model")  # reset before the consumer's first heartbeat
        assert record.status == "ready" and "download again" in record.error, record
        # The working version stayed in place: the test model's very file, and it loads.
        assert sha256_of(harness.settings.model_dir / "test_model" / "checkpoint.pt") == sha256_of(
            test_model_dir / "checkpoint.pt")
        assert load_predictor(harness.settings.model_dir / "test_model", "cpu").image_size == 256
    finally:
        harness.close()
        from queues.config import forget_instances

        forget_instances()


@pytest.mark.slow
def test_consumer_with_an_empty_model_folder_fetches_the_model_for_its_job(model_server, test_model_dir, tmp_path):
    """A consumer on "another machine" (its own empty model folder) fetches a ready model from the catalogue's URLs
    when a job needs it, reports it with its heartbeat, and fails a job whose file fails the catalogue's checksum
    with a readable message, keeping nothing of that file."""
    from queues.dispatch import enqueue_tracking_job
    from sam2_tracking.testing.queue_harness import QueueHarness
    from sam2_tracking.testing.wait import wait_for
    from sam2_tracking.types import JobSpec
    from ui.views import worker_models_cell

    checkpoint = test_model_dir / "checkpoint.pt"
    size, digest = checkpoint.stat().st_size, sha256_of(checkpoint)
    harness = QueueHarness(tmp_path, tmp_path / "consumer-models", queues=("cpu",))
    try:
        store = harness.store
        for name, sha in (("testmodel", digest), ("testmodel_corrupt", "0" * 64)):
            store.upsert_model(name, model_server.url + "/config.yaml", model_server.url + "/checkpoint.pt",
                               is_default=False, status="ready", size=size, sha256=sha)
        dataset, tracks = harness.add_sample()
        harness.start_consumer("cpu")
        assert store.list_workers()[0].models == ()

        def run(model_name: str):
            spec = JobSpec(dataset_id=dataset.dataset_id, track_ids=(tracks[0],), start_frame_idx=0,
                           model_name=model_name, queue="cpu", num_frames=4, batch_size=10, notify_percent=50)
            job_id = enqueue_tracking_job(harness.settings, store, spec).job_id
            return wait_for(lambda: (job := store.get_job(job_id)).finished and job, 180,
                            f"job {job_id} to finish ({harness.logs()})", 0.2)

        corrupt = run("testmodel_corrupt")
        assert corrupt.status == "failed"
        assert corrupt.error.startswith("could not fetch model 'testmodel_corrupt' onto this consumer")
        # The catalogue's digest against the file's, and what it means (the model's name alone says "corrupt").
        assert f"SHA-256 is {digest}, expected {'0' * 64}; the file is corrupt or was replaced" in corrupt.error
        model_dir = harness.settings.model_dir
        assert model_status(model_dir, "testmodel_corrupt") is None
        left = [p for p in model_dir.rglob("*") if "testmodel_corrupt" in str(p.relative_to(model_dir))]
        assert [p.relative_to(model_dir).as_posix() for p in left] == [".sam2t/locks/testmodel_corrupt.lock"]

        done = run("testmodel")
        assert done.status == "done", done.error
        assert done.error is None and done.frames_done == 4  # the "fetching model" note is gone once it runs
        assert done.resumed_count == 0  # claimed for the fetch, then by the runner: one start, not a resume
        assert model_status(model_dir, "testmodel")["sha256"] == digest
        assert [f.frame_idx for f in store.get_features(tracks[0])] == [0, 1, 2, 3]
        assert "fetching it from" in harness.logs()
        worker = wait_for(lambda: (w := store.list_workers()[0]).models == ("testmodel",) and w, 30,
                          "the heartbeat to report the fetched model")
        assert worker_models_cell(worker.models, ["testmodel", "testmodel_corrupt"]) == (
            "testmodel ✓, testmodel_corrupt –")
    finally:
        harness.close()
        from queues.config import forget_instances

        forget_instances()


def test_worker_models_cell() -> None:
    from ui.views import worker_models_cell

    assert worker_models_cell(None, ["sam2.1_hiera_tiny"]) == "not reported"
    assert worker_models_cell((), []) == "none"
    assert worker_models_cell(("sam2.1_hiera_tiny",), ["sam2.1_hiera_large", "sam2.1_hiera_tiny"]) == (
        "large –, tiny ✓")


def test_catalogue_rows_are_checked_before_a_consumer_fetches(tmp_path) -> None:
    """The shared database is input to a consumer: a row with a local file as its config or an uploaded model gives
    the job a message, never a fetch."""
    from queues.config import get_store
    from queues.identity import WorkerIdentity
    from queues.job_model import fetch_model_for_job
    from sam2_tracking.settings import Settings
    from sam2_tracking.types import JobSpec

    settings = Settings(data_dir=tmp_path / "data", model_dir=tmp_path / "models", queue_names=("cpu",),
                        embedded_consumers=())
    store = get_store(settings)
    dataset = store.add_dataset("clip", "/v/clip.mp4", "video", 10, 25.0, 64, 48)
    track_id = store.create_track(dataset.dataset_id).track_id
    store.upsert_model("uploaded", "", "", is_default=False, status="ready", source="upload")
    store.upsert_model("local_config", "/etc/passwd", "http://127.0.0.1:9/c.pt", is_default=False, status="ready")
    for name, message in (("uploaded", "installed from uploaded files"), ("local_config", "built-in sam2 config")):
        spec = JobSpec(dataset_id=dataset.dataset_id, track_ids=(track_id,), start_frame_idx=0,
                       model_name=name, queue="cpu", num_frames=4, batch_size=10, notify_percent=50)
        job = store.create_job(spec, frames_total=4)
        assert fetch_model_for_job(settings, store, job.job_id, WorkerIdentity("w1", "cpu", "h", 1, "cpu")) is False
        failed = store.get_job(job.job_id)
        assert failed.status == "failed" and message in failed.error, failed.error
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_a_cancel_stops_a_consumers_model_fetch_for_its_job(file_server, test_model_dir, tmp_path) -> None:
    """The person cancels while the consumer fetches the model for the job: the job shows running with a "fetching
    model" message, the fetch stops at its next chunk, the job ends cancelled (not failed), no model is installed,
    and the partial file stays for the next job to resume."""
    import threading

    from queues.config import get_store
    from queues.identity import WorkerIdentity
    from queues.job_model import FETCHING_NOTE, fetch_model_for_job
    from sam2_tracking.settings import Settings
    from sam2_tracking.store import CreateTrack, UpsertKeyframe
    from sam2_tracking.testing.wait import wait_for
    from sam2_tracking.types import Box, JobSpec

    for name in ("config.yaml", "checkpoint.pt"):
        shutil.copy(test_model_dir / name, file_server.root / name)
    file_server.stall_responses("/checkpoint.pt", 2_000_000)  # every request stops after 2 MB: the fetch is slow
    settings = Settings(data_dir=tmp_path / "data", model_dir=tmp_path / "models", queue_names=("cpu",),
                        embedded_consumers=(), download_read_timeout_seconds=1)
    store = get_store(settings)
    checkpoint = test_model_dir / "checkpoint.pt"
    store.upsert_model("testmodel", file_server.url + "/config.yaml", file_server.url + "/checkpoint.pt",
                       is_default=False, status="ready", size=checkpoint.stat().st_size, sha256=sha256_of(checkpoint))
    dataset = store.add_dataset("clip", "/v/clip.mp4", "video", 10, 25.0, 64, 48)
    store.save_edits(dataset.dataset_id, 0, [CreateTrack(label="x", placeholder_id=-1),
                                              UpsertKeyframe(track_id=-1, frame_idx=0, box=Box(1, 1, 9, 9))])
    track_id = store.list_tracks(dataset.dataset_id)[0].track_id
    job = store.create_job(JobSpec(dataset_id=dataset.dataset_id, track_ids=(track_id,), start_frame_idx=0,
                                   model_name="testmodel", queue="cpu", num_frames=4, batch_size=10,
                                   notify_percent=50), frames_total=4)
    worker = WorkerIdentity("w1", "cpu", "h", 1, "cpu")
    result = []
    fetching = threading.Thread(target=lambda: result.append(fetch_model_for_job(settings, store, job.job_id, worker)))
    fetching.start()
    seen = wait_for(lambda: (j := store.get_job(job.job_id)).status == "running" and (j.message or "").startswith(
        FETCHING_NOTE) and j, 30, "the job to show that its model is being fetched")
    assert seen.worker == "w1" and seen.message.startswith(f"{FETCHING_NOTE} testmodel onto "), seen.message
    store.request_cancel(job.job_id)  # what cancel_job does to a running job
    fetching.join(timeout=60)
    assert result == [False]
    ended = store.get_job(job.job_id)
    assert ended.status == "cancelled" and ended.error is None and ended.message is None  # the fetching note is gone
    assert model_status(settings.model_dir, "testmodel") is None
    assert models.partial_checkpoint(settings.model_dir, "testmodel").is_file()


def test_a_copy_that_differs_from_the_catalogue_is_replaced_before_the_job(model_server, test_model_dir, tmp_path):
    """An admin re-downloaded a model (new hash in the catalogue): a consumer holding the old version fetches the
    catalogue's before tracking; when the URL serves something else, the job fails saying so and the old version
    stays installed."""
    from queues.config import get_store
    from queues.identity import WorkerIdentity
    from queues.job_model import fetch_model_for_job
    from sam2_tracking.settings import Settings
    from sam2_tracking.store import CreateTrack, UpsertKeyframe
    from sam2_tracking.types import Box, JobSpec

    settings = Settings(data_dir=tmp_path / "data", model_dir=tmp_path / "models", queue_names=("cpu",),
                        embedded_consumers=())
    store = get_store(settings)
    download_model(served_entry(model_server, name="testmodel"), settings.model_dir)
    old = model_status(settings.model_dir, "testmodel")
    store.upsert_model("testmodel", model_server.url + "/config.yaml", model_server.url + "/checkpoint.pt",
                       is_default=False, status="ready", size=old["size"], sha256="f" * 64)
    dataset = store.add_dataset("clip", "/v/clip.mp4", "video", 10, 25.0, 64, 48)
    store.save_edits(dataset.dataset_id, 0, [CreateTrack(label="x", placeholder_id=-1),
                                              UpsertKeyframe(track_id=-1, frame_idx=0, box=Box(1, 1, 9, 9))])
    spec = JobSpec(dataset_id=dataset.dataset_id, track_ids=(store.list_tracks(dataset.dataset_id)[0].track_id,),
                   start_frame_idx=0, model_name="testmodel", queue="cpu", num_frames=4, batch_size=10,
                   notify_percent=50)
    job = store.create_job(spec, frames_total=4)
    assert fetch_model_for_job(settings, store, job.job_id, WorkerIdentity("w1", "cpu", "h", 1, "cpu")) is False
    failed = store.get_job(job.job_id)
    assert failed.status == "failed" and "SHA-256" in failed.error and "f" * 64 in failed.error
    assert model_status(settings.model_dir, "testmodel") == old  # the verified old version stays in place

    store.update_model("testmodel", sha256=old["sha256"])  # the catalogue lists what is here: nothing to fetch
    again = store.create_job(spec, frames_total=4)
    seen = len(model_server.requests_seen)
    assert fetch_model_for_job(settings, store, again.job_id, WorkerIdentity("w1", "cpu", "h", 1, "cpu")) is True
    assert len(model_server.requests_seen) == seen and store.get_job(again.job_id).status == "queued"
