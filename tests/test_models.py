"""Model catalogue, downloads over real HTTP (loopback, with Range), and loading that refuses unsafe content."""

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
from sam2_tracking.models import loading as model_loading
from sam2_tracking.models.catalogue import (
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
        ("mine", "configs/../../../../etc/x.yaml", "https://x/y.pt", "built-in sam2 config"),
        ("mine", "configs/sam2.1/none.yaml", "https://x/y.pt", "built-in sam2 config"),
        (".hidden", "configs/sam2.1/sam2.1_hiera_t.yaml", "https://x/y.pt", "may only use"),
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


def test_any_bytes_that_are_not_a_checkpoint_are_refused_with_a_model_error(tmp_path: Path) -> None:
    """Random bytes drive torch's weights-only unpickler into IndexError, KeyError, struct.error...: each must come
    out as the one ModelError (a CI run once drew bytes that raised IndexError and failed an upload test)."""
    import random

    import torch

    from sam2_tracking.models.loading import read_checkpoint

    path = tmp_path / "checkpoint.pt"
    rng = random.Random(20261126)
    blobs = [rng.randbytes(rng.randrange(1, 4000)) for _ in range(300)]
    # Pickle-protocol headers followed by noise reach deeper into the unpickler than plain noise does.
    blobs += [b"\x80" + bytes([rng.randrange(2, 6)]) + rng.randbytes(rng.randrange(1, 400)) for _ in range(300)]
    blobs += [b"", b"PK\x03\x04" + rng.randbytes(200), b"\x80\x02}q\x00."]
    for blob in blobs:
        path.write_bytes(blob)
        with pytest.raises(ModelError, match="checkpoint.pt is not a readable PyTorch file"):
            read_checkpoint(path)
    torch.save({"model": {"w": torch.zeros(2)}}, path)
    assert torch.equal(read_checkpoint(path)["model"]["w"], torch.zeros(2))


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


# ------------------------------------------------------------------ hostile configs, capped and cancellable downloads

SECRET = "s3cr3t-admin-password-value"


def _no_secret(message: str) -> str:
    assert SECRET not in message
    return message


REFUSED_CONFIGS = [
    # function targets and anything outside the allow-list of SAM2 model classes
    ("model:\n  _target_: builtins.eval\n", "only SAM2 model classes"),
    ("model:\n  _target_: sam2.modeling.sam2_base.SAM2Base\n  memory_encoder:\n    _target_: os.getenv\n    key: X\n",
     r"model.memory_encoder._target_ = 'os.getenv'"),
    ("model:\n  _target_: sam2.build_sam.build_sam2\n  config_file: x.yaml\n", "sam2.build_sam.build_sam2"),
    ("model:\n  _target_: sam2.modeling.sam2_base.SAM2Base\n  x:\n    _target_: sam2.build_sam.build_sam2_video_predictor"
     "\n    hydra_overrides_extra: ['++a=1']\n", "build_sam2_video_predictor"),
    ("model:\n  _target_: sam2.modeling.sam2_base.SAM2Base\n  config_file: other.yaml\n", "re-enters Hydra"),
    ("model:\n  _target_: sam2.modeling.sam2_base.SAM2Base\n  hydra_overrides_extra: ['++x=1']\n", "re-enters Hydra"),
    ("defaults:\n  - other\nmodel:\n  _target_: sam2.modeling.sam2_base.SAM2Base\n", "re-enters Hydra"),
    ("model:\n  _target_: sam2.modeling.sam2_base.SAM2Base\n  _partial_: true\n", "Hydra directives"),
    ("model:\n  _target_: sam2.modeling.backbones.hieradet.Hiera\n", "must be one of"),
    ("model:\n  _target_: [os.system]\n", "only SAM2 model classes"),
    # interpolations, whatever the spelling, never resolved
    ("model:\n  _target_: sam2.modeling.sam2_base.SAM2Base\n  image_size: ${oc.env:SAM2T_TEST_SECRET}\n",
     "line 3 holds an interpolation"),
    ('model:\n  _target_: sam2.modeling.sam2_base.SAM2Base\n  name: "\\x24{oc.env:SAM2T_TEST_SECRET}"\n',
     "model.name holds an interpolation"),
    ("model:\n  _target_: ${oc.decode:'os.system'}\n", "interpolation"),
    ("model:\n  _target_: sam2.modeling.sam2_base.SAM2Base\n  a: 1\n  b: ${model.a}\n", "interpolation"),
    # text that looks like a path is text, never a file to read
    ("configs/sam2.1/sam2.1_hiera_t.yaml", "single line of text"),
    ("/etc/passwd.yaml", "single line of text"),
    # not YAML, or not a mapping, or YAML that builds objects
    ("model: [unclosed\n", "not valid YAML at line"),
    (b"\xff\xfe\x00model", "not UTF-8"),
    ("- a\n- b\n", "YAML list"),
    ("", "empty"),
    ("model: !!python/object/apply:os.system ['true']\n", "not valid YAML"),
    ("model:\n  _target_: sam2.modeling.sam2_base.SAM2Base\n  when: 2024-01-01\n", "is a date"),
    ("a: &a [" + ", ".join(["*a"] * 3) + "]\nmodel: {}\n", "nested over|entries"),
    ("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 7)) + "model: {}\n", "entries"),
    ("model:\n  _target_: sam2.modeling.sam2_base.SAM2Base\n  pad: '" + "x" * 1_000_001 + "'\n", "over 1 MB"),
]


@pytest.mark.parametrize("text,message", REFUSED_CONFIGS, ids=range(len(REFUSED_CONFIGS)))
def test_refused_configs_give_a_message_without_secrets(text, message, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SAM2T_TEST_SECRET", SECRET)
    monkeypatch.chdir(tmp_path)  # a path-like text must not be read even where it would resolve
    (tmp_path / "configs" / "sam2.1").mkdir(parents=True)
    (tmp_path / "configs" / "sam2.1" / "sam2.1_hiera_t.yaml").write_text("model:\n  _target_: os.system\n")
    with pytest.raises(ModelError, match=message) as caught:
        validate_config(text)
    _no_secret(str(caught.value))
    assert len(str(caught.value)) < 600


def test_an_existing_config_path_is_not_read(test_model_dir: Path) -> None:
    with pytest.raises(ModelError, match="single line of text"):
        validate_config(str(test_model_dir / "config.yaml"))
    assert load_config_file(test_model_dir / "config.yaml").model.image_size == 256


@pytest.mark.parametrize("builtin", ["sam2.1/sam2.1_hiera_t", "sam2.1/sam2.1_hiera_l", "sam2/sam2_hiera_b+"])
def test_builtin_configs_pass(builtin: str) -> None:
    cfg = validate_config(models.builtin_config_text(f"configs/{builtin}.yaml"))
    assert cfg.model._target_ == "sam2.modeling.sam2_base.SAM2Base"


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
    assert file_server.url + "/config.yaml" in _no_secret(str(caught.value)) or "config" in str(caught.value)
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


# ---------------------------------------------------------------------- the catalogue side: store status, cancel, upload


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
    assert load_predictor(settings.model_dir / "test_model", "cpu") is not None

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
    from queues.catalogue import UPLOADED, run_model_download

    settings, store = catalogue_env
    store.upsert_model("gone", "configs/sam2.1/sam2.1_hiera_t.yaml", "http://127.0.0.1:9/x.pt", is_default=False,
                       status="queued")
    with pytest.raises(ModelError, match="127.0.0.1:9"):
        run_model_download(settings, store, "gone")
    assert store.get_model("gone").status == "failed" and "127.0.0.1:9" in store.get_model("gone").error
    store.upsert_model("up", UPLOADED, UPLOADED, is_default=False, status="ready")
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
    assert load_predictor(settings.model_dir / "offline", "cpu") is not None  # the installed model still works
    small = models.DownloadLimits(max_checkpoint_bytes=1000)
    with pytest.raises(ModelError, match="over the 1000-byte cap"):
        models.install_model_files(settings.model_dir, "offline", (test_model_dir / "config.yaml").read_text(),
                                   test_model_dir / "checkpoint.pt", sources={}, limits=small)


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
        assert load_predictor(harness.settings.model_dir / "test_model", "cpu") is not None
    finally:
        harness.close()
        from queues.config import forget_instances

        forget_instances()


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
        assert "SHA-256" in corrupt.error and "corrupt" in corrupt.error
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
    from queues.job_model import fetch_model_for_job
    from queues.worker import WorkerIdentity
    from sam2_tracking.settings import Settings
    from sam2_tracking.types import JobSpec

    settings = Settings(data_dir=tmp_path / "data", model_dir=tmp_path / "models", queue_names=("cpu",),
                        embedded_consumers=())
    store = get_store(settings)
    dataset = store.add_dataset("clip", "/v/clip.mp4", "video", 10, 25.0, 64, 48)
    track_id = store.create_track(dataset.dataset_id).track_id
    store.upsert_model("uploaded", "upload", "upload", is_default=False, status="ready")
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
    from queues.job_model import FETCHING_NOTE, fetch_model_for_job
    from queues.worker import WorkerIdentity
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
    seen = wait_for(lambda: (j := store.get_job(job.job_id)).status == "running" and (j.error or "").startswith(
        FETCHING_NOTE) and j, 30, "the job to show that its model is being fetched")
    assert seen.worker == "w1" and "testmodel" in seen.error
    store.request_cancel(job.job_id)  # what cancel_job does to a running job
    fetching.join(timeout=60)
    assert result == [False]
    ended = store.get_job(job.job_id)
    assert ended.status == "cancelled" and ended.error is None
    assert model_status(settings.model_dir, "testmodel") is None
    assert models.partial_checkpoint(settings.model_dir, "testmodel").is_file()


def test_a_copy_that_differs_from_the_catalogue_is_replaced_before_the_job(model_server, test_model_dir, tmp_path):
    """An admin re-downloaded a model (new hash in the catalogue): a consumer holding the old version fetches the
    catalogue's before tracking; when the URL serves something else, the job fails saying so and the old version
    stays installed."""
    from queues.config import get_store
    from queues.job_model import fetch_model_for_job
    from queues.worker import WorkerIdentity
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
