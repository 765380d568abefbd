"""Loading a model folder: checkpoints are refused unless they are plain tensors that fit the architecture;
the predictor equals the stock builder's and is cached per process; the device it runs on."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from sam2_tracking.models import catalogue as models
from sam2_tracking.models import loading as model_loading
from sam2_tracking.models.catalogue import (
    ModelError,
    choose_device,
    download_model,
    load_predictor,
)
from tests.test_models_download import served_entry


class Exploit:
    """Unpickling this runs code: torch.load(weights_only=True) must refuse it."""

    marker = ""

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


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


def test_choose_device_here_is_cpu() -> None:
    """On these machines (no GPU, no Apple silicon) the device is the CPU; elsewhere the best one torch sees."""
    import torch

    if torch.cuda.is_available():
        expected = "cuda"
    elif torch.backends.mps.is_available():
        expected = "mps"
    else:
        expected = "cpu"
    assert choose_device() == expected
