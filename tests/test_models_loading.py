"""Loading a model folder: checkpoints are refused unless they are plain tensors that fit the architecture, and
archives that declare more than the checkpoint cap before a tensor is allocated; the predictor equals the stock
builder's and is cached per process; the device it runs on."""

from __future__ import annotations

import os
import shutil
import zipfile
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


# ------------------------------------------------------------------------------------------ checkpoint archives

GIB = 1024**3


def write_checkpoint_bomb(path: Path, declared_bytes: int) -> None:
    """A torch.save archive whose storage entry holds `declared_bytes` of zeros, deflated (about 1,000 to 1): the
    size torch.load would allocate and inflate into. The archive is written by hand (declared_bytes < 4 GiB, so no
    zip64 record is needed) from one deflated block of 16 MiB of zeros: after a full flush deflate starts afresh, so
    the same block repeated is a valid stream of all the zeros, written in a second instead of deflating 3 GB."""
    import io
    import struct
    import zlib

    import torch

    chunk = 16 * 1024**2
    assert declared_bytes % chunk == 0 and declared_bytes < 2**32
    packer = zlib.compressobj(6, zlib.DEFLATED, -15)  # raw deflate, as zip entries hold it
    block = packer.compress(bytes(chunk)) + packer.flush(zlib.Z_FULL_FLUSH)
    tail = packer.flush(zlib.Z_FINISH)
    crc = 0
    for _ in range(declared_bytes // chunk):
        crc = zlib.crc32(bytes(chunk), crc)
    buffer = io.BytesIO()
    torch.save({"model": {"w": torch.zeros(4)}}, buffer)
    directory = b""
    with zipfile.ZipFile(buffer) as small, open(path, "wb") as out:
        for info in small.infolist():
            name = info.filename.encode()
            if info.filename.endswith("/data/0"):  # the one storage: data.pkl and the small records stay as saved
                method, size, parts = zipfile.ZIP_DEFLATED, declared_bytes, [block] * (declared_bytes // chunk)
                parts.append(tail)
                entry_crc = crc
            else:
                data = small.read(info)
                method, size, parts, entry_crc = zipfile.ZIP_STORED, len(data), [data], zlib.crc32(data)
            packed = sum(len(part) for part in parts)
            offset = out.tell()
            # version 20, no flags, 1980-01-01 00:00; then CRC, compressed and uncompressed sizes, name length
            fields = (20, 0, method, 0, 0x21, entry_crc, packed, size, len(name))
            out.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", *fields, 0) + name)
            for part in parts:
                out.write(part)
            directory += struct.pack("<4sH5H3L5H2L", b"PK\x01\x02", 20, *fields, 0, 0, 0, 0, 0, offset) + name
        start = out.tell()
        count = len(small.infolist())
        out.write(directory + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, len(directory), start, 0))


# Runs in its own process: the upload path an admin's checkpoint takes (install_model_files -> build_model ->
# read_checkpoint), measured as the peak RSS over the RSS once torch, sam2 and hydra are imported (as they are in a
# running app or consumer). The peak is VmHWM (this process's own memory), not getrusage's ru_maxrss, which Linux carries over from the forking parent.
_INSTALL_AND_MEASURE = """
import json, re, sys
from pathlib import Path
import psutil
import hydra.utils, sam2.sam2_video_predictor, torch  # about 500 MB of libraries, loaded before any checkpoint
from sam2_tracking.models.catalogue import ModelError, install_model_files
from sam2_tracking.models.config import load_config_file

models, config, checkpoint = sys.argv[1:4]
config_text = Path(config).read_text()
load_config_file(Path(config))
before = psutil.Process().memory_info().rss
try:
    install_model_files(models, "bomb", config_text, checkpoint, {"checkpoint": "upload"})
    message = None
except ModelError as exc:
    message = str(exc)
peak = int(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1)) * 1024
print(json.dumps({"message": message, "growth": peak - before}))
"""


def test_checkpoint_declaring_3_gb_is_refused_before_any_tensor(test_model_dir: Path, tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    from sam2_tracking.models.fetch import DEFAULT_MAX_CHECKPOINT_BYTES
    from sam2_tracking.models.loading import read_checkpoint

    bomb = tmp_path / "checkpoint.pt"
    write_checkpoint_bomb(bomb, 3 * GIB)
    assert bomb.stat().st_size < 10 * 1024**2 and 3 * GIB > DEFAULT_MAX_CHECKPOINT_BYTES
    with zipfile.ZipFile(bomb) as archive:  # what torch.load would allocate for it: the declared size
        declared = sum(i.file_size for i in archive.infolist())
    assert declared > 3 * GIB
    with pytest.raises(ModelError, match=rf"refusing checkpoint checkpoint.pt: its entries declare {declared:,} "
                                         r"bytes, over the 2,000,000,000-byte cap \(SAM2T_MAX_CHECKPOINT_BYTES\)"):
        read_checkpoint(bomb)
    run = subprocess.run([sys.executable, "-c", _INSTALL_AND_MEASURE, str(tmp_path / "models"),
                          str(test_model_dir / "config.yaml"), str(bomb)],
                         capture_output=True, text=True, timeout=300, cwd=Path(__file__).parent.parent)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["message"] is not None and "over the 2,000,000,000-byte cap" in result["message"]
    assert result["growth"] < 300 * 1024**2, result
    assert models.model_status(tmp_path / "models", "bomb") is None


def test_checkpoint_archive_limits(test_model_dir: Path, tmp_path: Path) -> None:
    import torch

    from sam2_tracking.models.archive import MAX_CHECKPOINT_ENTRIES, check_checkpoint_archive
    from sam2_tracking.models.loading import read_checkpoint

    real = test_model_dir / "checkpoint.pt"
    # A checkpoint torch.save wrote declares (about) its size on disk, and loads under a cap of that size.
    declared = check_checkpoint_archive(real, real.stat().st_size)
    assert 0.99 * real.stat().st_size < declared <= real.stat().st_size
    assert read_checkpoint(real, declared)["model"]
    with pytest.raises(ModelError, match=f"declare {declared:,} bytes, over the {declared - 1:,}-byte cap"):
        read_checkpoint(real, declared - 1)
    # Under the cap, but an entry that inflates 1,000 to 1 is no checkpoint.
    bomb = tmp_path / "ratio.pt"
    write_checkpoint_bomb(bomb, 64 * 1024**2)
    with pytest.raises(ModelError, match=r"entry '.*data/0' expands [\d,]+ bytes to 67,108,864, over 100 times"):
        read_checkpoint(bomb)
    # Too many entries: refused from the directory's fixed headers, before zipfile builds one object each.
    many = tmp_path / "many.pt"
    with zipfile.ZipFile(many, "w") as archive:
        for number in range(MAX_CHECKPOINT_ENTRIES + 1):
            archive.writestr(f"archive/data/{number}", b"")
    with pytest.raises(ModelError, match="holds more than 20,000 entries"):
        read_checkpoint(many)
    # The format before PyTorch 1.6 has no directory to check: refused, with the way out.
    legacy = tmp_path / "legacy.pt"
    torch.save({"model": {"w": torch.zeros(2)}}, legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(ModelError, match="legacy.pt is not a readable PyTorch file .not the zip archive"):
        read_checkpoint(legacy)
