"""Model catalogue, downloads over real HTTP (loopback, with Range), and loading that refuses unsafe content."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from sam2_tracking import model_loading, models
from sam2_tracking.models import (
    DEFAULT_MODELS,
    ModelEntry,
    ModelError,
    choose_device,
    custom_model_entry,
    download_model,
    load_config_file,
    load_predictor,
    model_status,
    remove_model,
    validate_config,
)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def served_entry(server, name: str = "test_model", **kw) -> ModelEntry:
    return ModelEntry(name=name, config=server.url + "/config.yaml", checkpoint_url=server.url + "/checkpoint.pt", **kw)


class Exploit:
    """Unpickling this runs code: torch.load(weights_only=True) must refuse it."""

    marker = ""

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_default_catalogue() -> None:
    assert set(DEFAULT_MODELS) == {
        "sam2.1_hiera_tiny", "sam2.1_hiera_small", "sam2.1_hiera_base_plus", "sam2.1_hiera_large",
    }
    assert [e.name for e in DEFAULT_MODELS.values() if e.is_default] == ["sam2.1_hiera_tiny"]
    for suffix, entry in zip(("tiny", "small", "base_plus", "large"), DEFAULT_MODELS.values(), strict=True):
        assert entry.checkpoint_url == f"https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_{suffix}.pt"
        assert entry.config.startswith("configs/sam2.1/sam2.1_hiera_") and entry.label
        assert entry.expected_size and entry.expected_size > 100_000_000


@pytest.mark.parametrize(
    "name,config,url,message",
    [
        ("bad name", "configs/sam2.1/sam2.1_hiera_t.yaml", "https://x/y.pt", "may only use"),
        ("../up", "configs/sam2.1/sam2.1_hiera_t.yaml", "https://x/y.pt", "may only use"),
        ("sam2.1_hiera_tiny", "configs/sam2.1/sam2.1_hiera_t.yaml", "https://x/y.pt", "default model"),
        ("mine", "configs/sam2.1/sam2.1_hiera_t.yaml", "ftp://x/y.pt", "http"),
        ("mine", "configs/sam2.1/sam2.1_hiera_t.yaml", "file:///etc/passwd", "http"),
        ("mine", "/etc/passwd", "https://x/y.pt", "built-in sam2 config"),
    ],
)
def test_custom_entry_validation(name: str, config: str, url: str, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        custom_model_entry(name, config, url)


def test_custom_entry_accepts_urls_and_builtin_configs() -> None:
    entry = custom_model_entry("my-model_v1.2", "https://example.org/cfg.yaml", "http://example.org/w.pt")
    assert entry == ModelEntry("my-model_v1.2", "https://example.org/cfg.yaml", "http://example.org/w.pt", label="my-model_v1.2")
    assert custom_model_entry("m", "configs/sam2.1/sam2.1_hiera_s.yaml", "https://e/w.pt").config.endswith("_s.yaml")


@pytest.mark.parametrize(
    "text,message",
    [
        ("model:\n  _target_: os.system\n", r"model._target_ = 'os.system'"),
        ("model:\n  _target_: sam2.modeling.sam2_base.SAM2Base\n  x:\n    _target_: builtins.eval\n", r"model.x._target_"),
        ("model:\n  _target_: sam2.build_sam.os.system\n", "outside sam2"),
        ("model:\n  _target_: sam2.modeling.sam2_base.SAM2Base\n  l:\n    - _target_: subprocess.run\n", r"model.l\[0\]._target_"),
        ("model:\n  _target_: ${oc.decode:'os.system'}\n", "interpolation"),
        ("model:\n  _target_: sam2.no_such_module.Thing\n", "only SAM2 model classes"),
        ("scratch: 1\n", "no `model:` section"),
        ("model: [unclosed\n", "not valid YAML"),
    ],
)
def test_validate_config_refuses(text: str, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        validate_config(text)


def test_validate_config_accepts_test_model(test_model_dir: Path) -> None:
    cfg = load_config_file(test_model_dir / "config.yaml")
    assert cfg.model._target_ == "sam2.modeling.sam2_base.SAM2Base" and cfg.model.image_size == 256


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


def test_pickled_object_in_checkpoint_is_refused(file_server, test_model_dir: Path, tmp_path: Path) -> None:
    import torch

    marker = tmp_path / "pwned"
    Exploit.marker = str(marker)
    state = torch.load(test_model_dir / "checkpoint.pt", weights_only=True)
    state["extra"] = Exploit()
    torch.save(state, file_server.root / "checkpoint.pt")
    shutil.copy(test_model_dir / "config.yaml", file_server.root / "config.yaml")
    with pytest.raises(ModelError, match="Python objects other than tensors"):
        download_model(served_entry(file_server), tmp_path / "models")
    assert not marker.exists()
    assert not models.partial_checkpoint(tmp_path / "models", "test_model").exists()


def _model_folder(tmp_path: Path, test_model_dir: Path, state_dict) -> Path:
    import torch

    folder = tmp_path / "m"
    folder.mkdir(exist_ok=True)
    shutil.copy(test_model_dir / "config.yaml", folder / "config.yaml")
    torch.save({"model": state_dict}, folder / "checkpoint.pt")
    return folder


def test_mismatched_state_dicts_are_refused(test_model_dir: Path, tmp_path: Path) -> None:
    import torch

    original = torch.load(test_model_dir / "checkpoint.pt", weights_only=True)["model"]
    sd = dict(original)
    removed = sorted(sd)[0]
    del sd[removed]
    sd["extra.weight"] = torch.zeros(1)
    with pytest.raises(ModelError, match=rf"1 missing keys \(e.g. {removed}\); 1 unexpected keys \(e.g. extra.weight\)"):
        load_predictor(_model_folder(tmp_path, test_model_dir, sd), "cpu")
    sd = dict(original)
    sd["no_mem_embed"] = torch.zeros(1, 1, 3)
    with pytest.raises(ModelError, match="size mismatch for no_mem_embed"):
        load_predictor(_model_folder(tmp_path, test_model_dir, sd), "cpu")
    folder = tmp_path / "m"
    (folder / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="not a readable PyTorch file"):
        load_predictor(folder, "cpu")
    with pytest.raises(ModelError, match="download the model first"):
        load_predictor(tmp_path / "absent", "cpu")


def test_load_predictor_matches_stock_builder_and_is_cached(test_model_dir: Path, tmp_path: Path) -> None:
    import torch
    from sam2.build_sam import build_sam2_video_predictor

    folder = tmp_path / "copy"
    shutil.copytree(test_model_dir, folder)
    ours = load_predictor(folder, "cpu")
    stock = build_sam2_video_predictor(
        "configs/sam2.1/sam2.1_hiera_t.yaml", str(folder / "checkpoint.pt"), device="cpu",
        hydra_overrides_extra=["++model.image_size=256"],
    )
    assert type(ours) is type(stock) and not ours.training
    for attr in ("fill_hole_area", "binarize_mask_from_pts_for_mem_enc", "non_overlap_masks", "image_size",
                 "clear_non_cond_mem_around_input", "num_maskmem", "max_obj_ptrs_in_encoder"):
        assert getattr(ours, attr) == getattr(stock, attr), attr
    assert ours.sam_mask_decoder.dynamic_multimask_via_stability == stock.sam_mask_decoder.dynamic_multimask_via_stability
    stock_sd = stock.state_dict()
    assert all(torch.equal(v, stock_sd[k]) for k, v in ours.state_dict().items())
    assert load_predictor(folder, "cpu") is ours
    os.utime(folder / "checkpoint.pt", ns=(1, 1))  # a re-downloaded file: load it again
    again = load_predictor(folder, "cpu")
    assert again is not ours and load_predictor(folder, "cpu") is again
    assert len(model_loading._predictors) <= models.MAX_CACHED_MODELS


def test_builtin_config_download(model_server, tmp_path: Path) -> None:
    """A built-in config name is written out in full; the Tiny test checkpoint fits the stock Tiny architecture."""
    entry = ModelEntry("tiny_builtin", "configs/sam2.1/sam2.1_hiera_t.yaml", model_server.url + "/checkpoint.pt")
    folder = download_model(entry, tmp_path)
    cfg = load_config_file(folder / "config.yaml")
    assert cfg.model.image_size == 1024 and cfg.model._target_ == "sam2.modeling.sam2_base.SAM2Base"
    with pytest.raises(ModelError, match="not a config shipped with sam2"):
        download_model(ModelEntry("nope", "configs/sam2.1/none.yaml", model_server.url + "/checkpoint.pt"), tmp_path)


def test_choose_device_here_is_cpu() -> None:
    assert choose_device() in ("cpu", "cuda", "mps")
    import torch

    if not torch.cuda.is_available():
        assert choose_device() in ("cpu", "mps")
