"""Model downloads over real HTTP (loopback, with Range): verification, resume, cancel, size caps, timeouts,
the working version kept while a re-download runs, and a killed download's reset. Helpers for the other
test_models_* files live here too."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sam2_tracking.models import catalogue as models
from sam2_tracking.models.catalogue import (
    ModelEntry,
    ModelError,
    download_model,
    load_config_file,
    load_predictor,
    model_status,
    remove_model,
)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def served_entry(server, name: str = "test_model", **kw) -> ModelEntry:
    return ModelEntry(name=name, config=server.url + "/config.yaml", checkpoint_url=server.url + "/checkpoint.pt", **kw)


SECRET = "s3cr3t-admin-password-value"


def _no_secret(message: str) -> str:
    assert SECRET not in message
    return message


def test_download_verify_status_skip_force_remove(model_server, test_model_dir: Path, tmp_path: Path) -> None:
    progress: list[tuple[int, int | None]] = []
    entry = served_entry(model_server)
    folder = download_model(entry, tmp_path, on_progress=lambda done, total: progress.append((done, total)))
    size = (test_model_dir / "checkpoint.pt").stat().st_size
    assert folder == tmp_path / "test_model"
    assert sorted(p.name for p in folder.iterdir() if p.name != ".lock") == ["checkpoint.pt", "config.yaml", "manifest.json"]
    assert (folder / "checkpoint.pt").read_bytes() == (test_model_dir / "checkpoint.pt").read_bytes()
    manifest = model_status(tmp_path, "test_model")
    assert manifest == json.loads((folder / "manifest.json").read_text())
    assert manifest["size"] == size and manifest["sha256"] == sha256_of(test_model_dir / "checkpoint.pt")
    assert manifest["sources"] == {"config": entry.config, "checkpoint": entry.checkpoint_url}
    assert manifest["name"] == "test_model" and manifest["downloaded_at"]
    assert progress[-1] == (size, size) and all(a[0] <= b[0] for a, b in zip(progress, progress[1:], strict=False))

    seen = len(model_server.requests_seen)
    assert download_model(entry, tmp_path) == folder  # already there: nothing fetched
    assert len(model_server.requests_seen) == seen

    mtime = (folder / "checkpoint.pt").stat().st_mtime_ns
    download_model(entry, tmp_path, force=True)
    assert len(model_server.requests_seen) == seen + 2
    assert (folder / "checkpoint.pt").stat().st_mtime_ns != mtime

    remove_model(tmp_path, "test_model")
    assert model_status(tmp_path, "test_model") is None and not folder.exists()
    remove_model(tmp_path, "test_model")  # removing twice is fine


def test_download_resumes_after_dropped_connection(model_server, test_model_dir: Path, tmp_path: Path) -> None:
    model_server.requests_seen.clear()
    model_server.cut_next_response("/checkpoint.pt", 3_000_000)
    folder = download_model(served_entry(model_server), tmp_path)
    checkpoint_requests = [r for r in model_server.requests_seen if r[0] == "/checkpoint.pt"]
    assert len(checkpoint_requests) == 2
    assert checkpoint_requests[0][1] is None
    resumed_from = int(checkpoint_requests[1][1].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_from <= 3_000_000
    assert sha256_of(folder / "checkpoint.pt") == sha256_of(test_model_dir / "checkpoint.pt")


def test_download_resumes_partial_file_from_earlier_run(model_server, test_model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "test_model"
    data = (test_model_dir / "checkpoint.pt").read_bytes()
    part = models.partial_checkpoint(tmp_path, "test_model")
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:1_000_000])
    (part.parent / "source.json").write_text(json.dumps(
        {"config": model_server.url + "/config.yaml", "checkpoint": model_server.url + "/checkpoint.pt",
         "size": len(data), "sha256": None}))
    model_server.requests_seen.clear()
    download_model(served_entry(model_server, expected_size=len(data)), tmp_path)
    assert ("/checkpoint.pt", "bytes=1000000-") in model_server.requests_seen
    assert (folder / "checkpoint.pt").read_bytes() == data
    assert not part.exists()


def test_download_cancel_keeps_partial_file(model_server, tmp_path: Path) -> None:
    calls = []
    with pytest.raises(models.DownloadCancelled, match="cancelled"):
        download_model(served_entry(model_server), tmp_path, should_cancel=lambda: calls.append(1) or len(calls) > 2)
    assert models.partial_checkpoint(tmp_path, "test_model").stat().st_size > 0
    assert model_status(tmp_path, "test_model") is None


def test_download_errors_name_the_url(model_server, tmp_path: Path) -> None:
    unreachable = ModelEntry("x", model_server.url + "/config.yaml", "http://127.0.0.1:9/checkpoint.pt")
    with pytest.raises(ModelError, match=r"http://127.0.0.1:9/checkpoint.pt"):
        download_model(unreachable, tmp_path)
    missing = ModelEntry("y", model_server.url + "/config.yaml", model_server.url + "/nothing.pt")
    with pytest.raises(ModelError, match=r"nothing.pt answered HTTP 404"):
        download_model(missing, tmp_path)
    with pytest.raises(ModelError, match=r"no_config.yaml answered HTTP 404"):
        download_model(ModelEntry("z", model_server.url + "/no_config.yaml", model_server.url + "/checkpoint.pt"), tmp_path)
    assert model_status(tmp_path, "x") is None and model_status(tmp_path, "y") is None


def test_download_checks_size_and_sha256(model_server, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="expected 123"):
        download_model(served_entry(model_server, expected_size=123), tmp_path)
    with pytest.raises(ModelError, match="SHA-256"):
        download_model(served_entry(model_server, name="other", sha256="0" * 64), tmp_path)
    assert not models.partial_checkpoint(tmp_path, "other").exists()  # a corrupt file is not kept for resuming


def test_download_refuses_unsafe_config(file_server, test_model_dir: Path, tmp_path: Path) -> None:
    shutil.copy(test_model_dir / "checkpoint.pt", file_server.root / "checkpoint.pt")
    text = (test_model_dir / "config.yaml").read_text().replace(
        "_target_: sam2.modeling.position_encoding.PositionEmbeddingSine", "_target_: os.system", 1
    )
    (file_server.root / "config.yaml").write_text(text)
    with pytest.raises(ModelError, match=r"model.image_encoder.neck.position_encoding._target_ = 'os.system'"):
        download_model(served_entry(file_server), tmp_path / "models")
    assert model_status(tmp_path / "models", "test_model") is None


def test_builtin_config_download(model_server, tmp_path: Path) -> None:
    """A built-in config name is written out in full; the Tiny test checkpoint fits the stock Tiny architecture."""
    entry = ModelEntry("tiny_builtin", "configs/sam2.1/sam2.1_hiera_t.yaml", model_server.url + "/checkpoint.pt")
    folder = download_model(entry, tmp_path)
    cfg = load_config_file(folder / "config.yaml")
    assert cfg.model.image_size == 1024 and cfg.model._target_ == "sam2.modeling.sam2_base.SAM2Base"
    with pytest.raises(ModelError, match="not a config shipped with sam2"):
        download_model(ModelEntry("nope", "configs/sam2.1/none.yaml", model_server.url + "/checkpoint.pt"), tmp_path)


@pytest.mark.parametrize(
    "body,no_length,message",
    [
        ("model:\n  _target_: os.system\n", False, "only SAM2 model classes"),
        ("model:\n  _target_: sam2.modeling.sam2_base.SAM2Base\n  x: ${oc.env:SAM2T_TEST_SECRET}\n", False,
         "interpolation"),
        ("{config}", False, "single line of text"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", False, "not UTF-8 text"),
        ("# padding\n" * 150_000, True, "sent over 1 MB"),
        ("# padding\n" * 150_000, False, r"is over 1 MB \(1500000 bytes\)"),
    ],
    ids=["function", "oc.env", "path-like", "binary", "oversize-no-length", "oversize"],
)
def test_download_refuses_config_before_fetching_the_checkpoint(
    body, no_length, message, file_server, test_model_dir: Path, tmp_path: Path, monkeypatch,
) -> None:
    monkeypatch.setenv("SAM2T_TEST_SECRET", SECRET)
    if body == "{config}":
        body = str(test_model_dir / "config.yaml")
    (file_server.root / "config.yaml").write_bytes(body.encode() if isinstance(body, str) else body)
    shutil.copy(test_model_dir / "checkpoint.pt", file_server.root / "checkpoint.pt")
    if no_length:
        file_server.serve_without_length("/config.yaml")
    with pytest.raises(ModelError, match=message) as caught:
        download_model(served_entry(file_server), tmp_path / "models")
    # The message blames the config (by its URL, or as "model config"), never the checkpoint nobody fetched.
    said = _no_secret(str(caught.value))
    assert said.startswith((file_server.url + "/config.yaml ", "refusing model config: ", "model config ")), said
    assert "checkpoint" not in said
    assert [r[0] for r in file_server.requests_seen] == ["/config.yaml"]
    assert model_status(tmp_path / "models", "test_model") is None


def test_checkpoint_over_the_cap_is_stopped(file_server, test_model_dir: Path, tmp_path: Path) -> None:
    shutil.copy(test_model_dir / "config.yaml", file_server.root / "config.yaml")
    (file_server.root / "checkpoint.pt").write_bytes(os.urandom(5_000_000))
    limits = models.DownloadLimits(max_checkpoint_bytes=2_000_000)
    # Announced: refused from the Content-Length, before a byte is written.
    with pytest.raises(ModelError, match=r"is 5000000 bytes, over the 2000000-byte cap \(SAM2T_MAX_CHECKPOINT_BYTES\)"):
        download_model(served_entry(file_server), tmp_path, limits=limits)
    assert not models.partial_checkpoint(tmp_path, "test_model").exists()
    # Not announced: stopped as soon as the bytes that arrived pass the cap, and deleted.
    file_server.serve_without_length("/checkpoint.pt")
    progress: list[int] = []
    with pytest.raises(ModelError, match=r"sent over 2000000 bytes, the cap"):
        download_model(served_entry(file_server), tmp_path, limits=limits,
                       on_progress=lambda done, total: progress.append(done))
    assert max(progress) <= 2_000_000 and not models.partial_checkpoint(tmp_path, "test_model").exists()
    assert model_status(tmp_path, "test_model") is None
    # A default-size model larger than the cap is refused without any request.
    seen = len(file_server.requests_seen)
    with pytest.raises(ModelError, match="over the 2000000-byte cap"):
        download_model(served_entry(file_server, expected_size=3_000_000), tmp_path, limits=limits)
    assert len(file_server.requests_seen) == seen


def test_checkpoint_without_length_within_the_cap_downloads(file_server, test_model_dir: Path, tmp_path: Path) -> None:
    for name in ("config.yaml", "checkpoint.pt"):
        shutil.copy(test_model_dir / name, file_server.root / name)
    file_server.serve_without_length("/checkpoint.pt")
    folder = download_model(served_entry(file_server), tmp_path)
    assert sha256_of(folder / "checkpoint.pt") == sha256_of(test_model_dir / "checkpoint.pt")


def test_stalled_download_times_out_and_keeps_the_partial_file(file_server, test_model_dir: Path, tmp_path: Path) -> None:
    for name in ("config.yaml", "checkpoint.pt"):
        shutil.copy(test_model_dir / name, file_server.root / name)
    file_server.stall_responses("/checkpoint.pt", 1_500_000)
    limits = models.DownloadLimits(read_timeout_s=0.3)
    with pytest.raises(ModelError, match=r"sent nothing for 0.3 s \(SAM2T_DOWNLOAD_READ_TIMEOUT_SECONDS\)"):
        download_model(served_entry(file_server), tmp_path, limits=limits)
    # Each stall was resumed from where it stopped: 1 + 3 resumes, the partial file kept for the next attempt.
    ranges = [r[1] for r in file_server.requests_seen if r[0] == "/checkpoint.pt"]
    assert len(ranges) == 4 and ranges[0] is None and all(r and r.startswith("bytes=") for r in ranges[1:])
    assert models.partial_checkpoint(tmp_path, "test_model").stat().st_size > 1_000_000
    assert model_status(tmp_path, "test_model") is None and not models.download_in_progress(tmp_path, "test_model")


def test_cancelled_or_failed_redownload_keeps_the_working_model(file_server, test_model_dir: Path, tmp_path: Path) -> None:
    for name in ("config.yaml", "checkpoint.pt"):
        shutil.copy(test_model_dir / name, file_server.root / name)
    folder = download_model(served_entry(file_server), tmp_path)
    before = model_status(tmp_path, "test_model")
    predictor = load_predictor(folder, "cpu")
    calls: list[int] = []
    with pytest.raises(models.DownloadCancelled):
        download_model(served_entry(file_server), tmp_path, force=True,
                       should_cancel=lambda: calls.append(1) or len(calls) > 2)
    assert len(calls) == 3  # asked before every chunk: it stopped at the third
    assert model_status(tmp_path, "test_model") == before
    assert load_predictor(folder, "cpu") is predictor
    assert sha256_of(folder / "checkpoint.pt") == before["sha256"]
    # A new file that does not fit the architecture is refused; the old model stays.
    (file_server.root / "checkpoint.pt").write_bytes(b"\x00" * 2_000_000)
    with pytest.raises(ModelError, match="not a readable PyTorch file"):
        download_model(served_entry(file_server), tmp_path, force=True)
    assert model_status(tmp_path, "test_model") == before and load_predictor(folder, "cpu") is predictor
    assert [p.name for p in (tmp_path / ".sam2t" / "versions" / "test_model").iterdir()] == [folder.resolve().name]


def test_plain_model_folder_is_replaced_by_a_verified_version(model_server, test_model_dir: Path, tmp_path: Path) -> None:
    """A folder written by hand (or by an older version of the app) is swapped out like any version."""
    shutil.copytree(test_model_dir, tmp_path / "test_model")
    (tmp_path / "test_model" / "manifest.json").write_text("{}")
    folder = download_model(served_entry(model_server), tmp_path, force=True)
    assert folder.is_symlink() and model_status(tmp_path, "test_model")["size"] > 0
    remove_model(tmp_path, "test_model")
    assert not folder.exists() and not folder.is_symlink()
    assert not (tmp_path / ".sam2t" / "versions" / "test_model").exists()


def _download_in_subprocess(server_url: str, model_dir: Path) -> subprocess.Popen:
    code = ("import sys; from sam2_tracking.models.catalogue import ModelEntry, download_model; "
            "download_model(ModelEntry('test_model', sys.argv[1] + '/config.yaml', sys.argv[1] + '/checkpoint.pt'), "
            "sys.argv[2], force=True)")
    return subprocess.Popen([sys.executable, "-c", code, server_url, str(model_dir)],
                            cwd=Path(__file__).resolve().parent.parent)


def test_killed_download_is_reset_to_what_is_on_disk(file_server, test_model_dir: Path, tmp_path: Path) -> None:
    """A process killed mid-download leaves its owner mark; reset_stale_downloads (run by a starting consumer) then
    sets the status from the disk, and the next download resumes the partial file."""
    from queues.catalogue import reset_stale_downloads
    from sam2_tracking.settings import Settings
    from sam2_tracking.testing.wait import wait_for

    for name in ("config.yaml", "checkpoint.pt"):
        shutil.copy(test_model_dir / name, file_server.root / name)
    file_server.stall_responses("/checkpoint.pt", 2_000_000)
    settings = Settings(data_dir=tmp_path / "data", model_dir=tmp_path / "models")
    from queues.config import get_store

    store = get_store(settings)
    store.upsert_model("test_model", file_server.url + "/config.yaml", file_server.url + "/checkpoint.pt",
                       is_default=False, status="downloading", progress_bytes=2_000_000)
    process = _download_in_subprocess(file_server.url, settings.model_dir)
    part = models.partial_checkpoint(settings.model_dir, "test_model")
    try:
        # 2 MB sent, then nothing: the downloader has written its first whole 1 MB chunk and waits for the rest.
        wait_for(lambda: part.exists() and part.stat().st_size >= 1 << 20, 60, "the download to stall")
        assert models.download_in_progress(settings.model_dir, "test_model")
        assert reset_stale_downloads(settings, store) == []  # alive: left alone
    finally:
        process.kill()
        process.wait(10)
    assert store.get_model("test_model").status == "downloading"
    assert reset_stale_downloads(settings, store) == ["test_model"]
    record = store.get_model("test_model")
    assert record.status == "absent" and "download again" in record.error
    kept = part.stat().st_size
    assert kept >= 1 << 20  # kept for the resume
    file_server.handler_class.stall_after_bytes.clear()
    file_server.requests_seen.clear()
    download_model(served_entry(file_server), settings.model_dir)
    assert ("/checkpoint.pt", f"bytes={kept}-") in file_server.requests_seen
    assert reset_stale_downloads(settings, store) == []  # "absent" is not touched
    # Another machine's download (no trace on this disk) is reset only once it has been quiet for long.
    store.update_model("test_model", status="downloading")
    assert reset_stale_downloads(settings, store) == []
    assert reset_stale_downloads(settings, store, stale_after_s=0) == ["test_model"]
    assert store.get_model("test_model").status == "ready"
