"""The catalogue side of models: download status in the store and the admin's cancel, failed downloads,
uploaded models, and the admin check of the upload and cancel handlers on every call."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from sam2_tracking.models import catalogue as models
from sam2_tracking.models.catalogue import (
    ModelError,
    load_predictor,
    model_status,
)
from tests.test_models_download import SECRET, sha256_of


@pytest.fixture()
def catalogue_env(tmp_path: Path):
    from queues.config import get_store
    from sam2_tracking.settings import Settings

    settings = Settings(data_dir=tmp_path / "data", model_dir=tmp_path / "models")
    return settings, get_store(settings)


def test_admin_cancel_stops_a_redownload_and_the_model_stays_ready(catalogue_env, file_server, test_model_dir) -> None:
    import threading

    from queues.catalogue import request_download_cancel, run_model_download
    from queues.dispatch import JobSpecError, enqueue_model_download, validate_job_spec
    from queues.jobs_api import Caller, list_downloads
    from sam2_tracking.library import add_video_if_missing
    from sam2_tracking.testing.queue_harness import ASSETS
    from sam2_tracking.types import JobSpec

    settings, store = catalogue_env
    for name in ("config.yaml", "checkpoint.pt"):
        shutil.copy(test_model_dir / name, file_server.root / name)
    store.upsert_model("test_model", file_server.url + "/config.yaml", file_server.url + "/checkpoint.pt",
                       is_default=False, status="queued")
    request_download_cancel(store, "test_model")  # while queued: the worker skips it
    assert run_model_download(settings, store, "test_model") == "cancelled"
    assert store.get_model("test_model").status == "absent" and file_server.requests_seen == []
    store.update_model("test_model", status="queued", error=None)  # queued again, as the Admin tab does
    assert run_model_download(settings, store, "test_model") == "ready"  # the earlier request does not stop it
    ready = store.get_model("test_model")
    assert ready.status == "ready" and ready.size == (test_model_dir / "checkpoint.pt").stat().st_size

    file_server.stall_responses("/checkpoint.pt", 3_000_000)
    outcome: list[str] = []
    thread = threading.Thread(target=lambda: outcome.append(run_model_download(settings, store, "test_model", True)))
    thread.start()
    from sam2_tracking.testing.wait import wait_for

    part = models.partial_checkpoint(settings.model_dir, "test_model")
    wait_for(lambda: part.exists() and part.stat().st_size >= 1 << 20, 30, "the re-download to stall")
    # While it runs, the version on disk keeps serving: the model is "updating", and jobs on it are accepted.
    assert store.get_model("test_model").status == "updating"
    dataset = add_video_if_missing(store, ASSETS / "sample_shapes.mp4", seed_file=ASSETS / "sample_shapes.json")
    spec = JobSpec(dataset_id=dataset.dataset_id, track_ids=(store.list_tracks(dataset.dataset_id)[0].track_id,),
                   start_frame_idx=0, model_name="test_model", queue="cpu", num_frames=4)
    validate_job_spec(settings, store, spec)
    assert [d.status for d in list_downloads(store, Caller("admin", True))] == ["updating"]
    request_download_cancel(store, "test_model")
    file_server.handler_class.stall_after_bytes.clear()  # new bytes flow: the next chunk sees the flag
    file_server.handler_class.closing.set()
    thread.join(60)
    assert outcome == ["cancelled"]
    record = store.get_model("test_model")
    assert record.status == "ready" and "cancelled by an admin" in record.error and record.sha256 == ready.sha256
    # The verified version on disk is untouched and still loads.
    assert sha256_of(settings.model_dir / "test_model" / "checkpoint.pt") == ready.sha256
    assert load_predictor(settings.model_dir / "test_model", "cpu").image_size == 256

    # A forced re-download still waiting in the queue is "updating" too, and a cancel makes the worker skip it.
    enqueue_model_download(settings, store, "test_model", "cpu", force=True)
    assert store.get_model("test_model").status == "updating"
    validate_job_spec(settings, store, spec)
    request_download_cancel(store, "test_model")
    seen = len(file_server.requests_seen)
    assert run_model_download(settings, store, "test_model", True) == "cancelled"
    record = store.get_model("test_model")
    assert record.status == "ready" and record.sha256 == ready.sha256 and len(file_server.requests_seen) == seen
    # Not forced, or not usable yet: "queued", and jobs wait for it.
    enqueue_model_download(settings, store, "test_model", "cpu")
    assert store.get_model("test_model").status == "queued"
    with pytest.raises(JobSpecError, match="not downloaded"):
        validate_job_spec(settings, store, spec)


def test_failed_download_is_recorded_and_uploaded_models_cannot_be_downloaded(catalogue_env) -> None:
    from queues.catalogue import run_model_download
    from sam2_tracking.states import SourceKind

    settings, store = catalogue_env
    store.upsert_model("gone", "configs/sam2.1/sam2.1_hiera_t.yaml", "http://127.0.0.1:9/x.pt", is_default=False,
                       status="queued")
    with pytest.raises(ModelError, match="127.0.0.1:9"):
        run_model_download(settings, store, "gone")
    assert store.get_model("gone").status == "failed" and "127.0.0.1:9" in store.get_model("gone").error
    store.upsert_model("up", "", "", is_default=False, status="ready", source=SourceKind.UPLOAD)
    with pytest.raises(ModelError, match="upload them again"):
        run_model_download(settings, store, "up", True)


def test_install_uploaded_model(catalogue_env, test_model_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """Offline servers: a config + checkpoint upload goes through the same checks as a download."""
    from queues.catalogue import install_uploaded_model
    from sam2_tracking.testing.db_snapshot import snapshot as db_snapshot

    settings, store = catalogue_env
    monkeypatch.setenv("SAM2T_TEST_SECRET", SECRET)
    message = install_uploaded_model(settings, store, "offline", test_model_dir / "checkpoint.pt",
                                     test_model_dir / "config.yaml")
    assert message.startswith("offline installed")
    record = store.get_model("offline")
    assert record.status == "ready" and record.sha256 == sha256_of(test_model_dir / "checkpoint.pt")
    assert load_predictor(settings.model_dir / "offline", "cpu").image_size == 256
    assert model_status(settings.model_dir, "offline")["sources"] == {"config": "upload", "checkpoint": "upload"}

    bad_config = tmp_path / "bad.yaml"
    bad_config.write_text("model:\n  _target_: sam2.modeling.sam2_base.SAM2Base\n  x: ${oc.env:SAM2T_TEST_SECRET}\n")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(os.urandom(100_000))
    before = db_snapshot(settings.store_path)
    cases = [
        (dict(checkpoint_file=test_model_dir / "checkpoint.pt", config_file=bad_config), "interpolation"),
        (dict(checkpoint_file=garbage, config_file=test_model_dir / "config.yaml"), "not a readable PyTorch file"),
        (dict(checkpoint_file=test_model_dir / "checkpoint.pt"), "upload its config"),
        # A default model's name: its built-in config is used, and the file must be that model's.
        (dict(checkpoint_file=test_model_dir / "checkpoint.pt", name="sam2.1_hiera_tiny"), "but sam2.1_hiera_tiny is"),
        (dict(checkpoint_file=test_model_dir / "checkpoint.pt", config_file=test_model_dir / "config.yaml",
              name="../etc"), "may only use"),
    ]
    for kwargs, expected in cases:
        name = kwargs.pop("name", "offline")
        with pytest.raises(ModelError, match=expected) as caught:
            install_uploaded_model(settings, store, name, **kwargs)
        assert SECRET not in str(caught.value)
    assert db_snapshot(settings.store_path) == before
    # The installed model is untouched and still works.
    assert model_status(settings.model_dir, "offline")["sha256"] == record.sha256
    assert load_predictor(settings.model_dir / "offline", "cpu").image_size == 256
    small = models.DownloadLimits(max_checkpoint_bytes=1000)
    with pytest.raises(ModelError, match="over the 1000-byte cap"):
        models.install_model_files(settings.model_dir, "offline", (test_model_dir / "config.yaml").read_text(),
                                   test_model_dir / "checkpoint.pt", sources={}, limits=small)


def test_admin_upload_and_cancel_handlers_check_the_admin_on_every_call(tmp_path: Path, test_model_dir: Path) -> None:
    import gradio as gr

    from queues.config import get_store
    from sam2_tracking.settings import Settings
    from ui.admin import SAM2_ENABLED, cancel_model_download, upload_model

    settings = Settings(data_dir=tmp_path / "data", model_dir=tmp_path / "models", admin_password="pw",
                        annotators=(("ann", "ann-pw"),))
    store = get_store(settings)
    store.set_setting(SAM2_ENABLED, True)
    files = (str(test_model_dir / "config.yaml"), str(test_model_dir / "checkpoint.pt"))
    annotator, admin = gr.Request(username="ann"), gr.Request(username="admin")
    with pytest.raises(gr.Error, match="Only the admin"):
        upload_model(settings, store, "offline", *files, annotator)
    with pytest.raises(gr.Error, match="Only the admin"):
        cancel_model_download(settings, store, "offline", None)
    assert model_status(settings.model_dir, "offline") is None and "offline" not in [m.name for m in store.list_models()]
    with pytest.raises(gr.Error, match="upload its config"):
        upload_model(settings, store, "offline", None, files[1], admin)
    assert upload_model(settings, store, "offline", *files, admin).startswith("offline installed")
    assert store.get_model("offline").status == "ready"
    with pytest.raises(gr.Error, match="no download to cancel"):
        cancel_model_download(settings, store, "offline", admin)
