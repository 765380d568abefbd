"""Build a SAM2 video predictor from a model folder (config.yaml + checkpoint.pt), safely, with a per-process cache.

Loading refuses what could run code or exhaust memory: configs that fail model_config.validate_config, checkpoint
archives whose zip directory declares more than the checkpoint cap (models/archive.py, checked before torch.load),
checkpoints that need more than `torch.load(weights_only=True)`, and state dicts that do not fit the architecture.
torch, hydra and sam2 are imported inside the functions that need them, never at import time.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Any

from sam2_tracking.models.archive import check_checkpoint_archive
from sam2_tracking.models.config import ModelError, load_config_file
from sam2_tracking.models.fetch import DEFAULT_MAX_CHECKPOINT_BYTES

CONFIG_NAME = "config.yaml"
CHECKPOINT_NAME = "checkpoint.pt"

# Overrides that sam2.build_sam.build_sam2_video_predictor applies (apply_postprocessing=True); the stock predictor
# we must match bit for bit is built with them.
VIDEO_PREDICTOR_TARGET = "sam2.sam2_video_predictor.SAM2VideoPredictor"
VIDEO_POSTPROCESSING = {
    "sam_mask_decoder_extra_args": {
        "dynamic_multimask_via_stability": True,
        "dynamic_multimask_stability_delta": 0.05,
        "dynamic_multimask_stability_thresh": 0.98,
    },
    "binarize_mask_from_pts_for_mem_enc": True,
    "fill_hole_area": 8,
}


def choose_device() -> str:
    """"cuda" if a CUDA GPU is usable, else "mps" (Apple) if available, else "cpu"."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def inference_context(device: Any) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (as Meta's demo runs SAM2), nothing elsewhere. Enter it around each model step."""
    import torch

    if torch.device(device).type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


_cache_lock = threading.Lock()
# (folder as given, folder resolved, config mtime, checkpoint mtime, device) -> predictor
_predictors: dict[tuple[str, str, float, float, str], Any] = {}
MAX_CACHED_MODELS = 2


def load_predictor(model_path: str | os.PathLike, device: str | None = None,
                   max_checkpoint_bytes: int = DEFAULT_MAX_CHECKPOINT_BYTES) -> Any:
    """A SAM2VideoPredictor from a folder with config.yaml and checkpoint.pt, cached per process.

    A downloaded model's folder is a link to its current version (model_files), so the cache key holds the resolved
    folder and the files' modification times: a re-downloaded model is loaded afresh and the old one dropped (also
    in processes other than the one that downloaded it); at most MAX_CACHED_MODELS stay in memory."""
    given = Path(model_path).absolute()
    folder = given.resolve()
    config_path, checkpoint_path = folder / CONFIG_NAME, folder / CHECKPOINT_NAME
    device = device or choose_device()
    try:
        key = (str(given), str(folder), config_path.stat().st_mtime, checkpoint_path.stat().st_mtime, device)
    except OSError:
        raise ModelError(f"{given} has no {CONFIG_NAME} and {CHECKPOINT_NAME}: download the model first") from None
    with _cache_lock:
        predictor = _predictors.get(key)
        if predictor is not None:
            return predictor
        for old in [k for k in _predictors if k[0] == key[0] or k[1] == key[1] or len(_predictors) >= MAX_CACHED_MODELS]:
            del _predictors[old]
        predictor = build_model(config_path, checkpoint_path, device, max_checkpoint_bytes)
        _predictors[key] = predictor
        return predictor


def forget_cached(*folders: str | os.PathLike) -> None:
    """Drop cached predictors loaded from these folders (as given or resolved): their files changed or went."""
    names = {str(Path(f).absolute()) for f in folders}
    with _cache_lock:
        for key in [k for k in _predictors if k[0] in names or k[1] in names]:
            del _predictors[key]


def read_checkpoint(checkpoint_path: Path, max_bytes: int = DEFAULT_MAX_CHECKPOINT_BYTES) -> Any:
    """torch.load with the weights-only unpickler, every failure a ModelError that says what is wrong.

    The file is untrusted (an upload, a URL): weights_only refuses Python objects other than tensors, and on bytes
    that are not a checkpoint its unpickler fails with whatever a stray opcode triggers (IndexError on an empty
    stack, KeyError, TypeError, struct.error, ... seen on random bytes), so every exception means "not readable".
    torch.load allocates every storage at the size the archive declares for it, so the archive's directory is
    checked first (check_checkpoint_archive: at most max_bytes declared in all, no bomb-like entry): loading then
    needs at most max_bytes plus the unpickler's bookkeeping."""
    import pickle

    import torch

    check_checkpoint_archive(checkpoint_path, max_bytes)
    try:
        return torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch words this "Unsupported global: ..." or "unsupported GLOBAL ... is blocked" depending on the object.
        globals_found = [ln.strip() for ln in str(exc).splitlines() if "unsupported global" in ln.lower()]
        if globals_found:
            raise ModelError(
                f"refusing checkpoint {checkpoint_path.name}: it holds Python objects other than tensors, which "
                f"could run code when loaded ({globals_found[0][:300]})"
            ) from exc
        raise ModelError(f"checkpoint {checkpoint_path.name} is not a readable PyTorch file") from exc
    except Exception as exc:
        detail = f"{type(exc).__name__}: {exc}"[:300]
        raise ModelError(f"checkpoint {checkpoint_path.name} is not a readable PyTorch file ({detail})") from exc


def build_model(config_path: Path, checkpoint_path: Path, device: str,
                max_checkpoint_bytes: int = DEFAULT_MAX_CHECKPOINT_BYTES) -> Any:
    """Instantiate SAM2VideoPredictor from a validated config and load a weights-only checkpoint into it (refused
    unless its archive declares at most max_checkpoint_bytes, SAM2T_MAX_CHECKPOINT_BYTES)."""
    import torch
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = load_config_file(config_path)
    # Before the model is built (its own weights cost memory too); read_checkpoint checks again right before loading.
    check_checkpoint_archive(checkpoint_path, max_checkpoint_bytes)
    cfg.model._target_ = VIDEO_PREDICTOR_TARGET
    cfg.model = OmegaConf.merge(cfg.model, VIDEO_POSTPROCESSING)
    try:
        model = instantiate(cfg.model, _recursive_=True)
    except Exception as exc:  # hydra wraps constructor errors in its own types
        raise ModelError(f"model config {config_path.name} does not build a SAM2 model: {exc}") from exc
    checkpoint = read_checkpoint(checkpoint_path, max_checkpoint_bytes)
    state_dict = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ModelError(
            f"checkpoint {checkpoint_path.name} is not a SAM2 checkpoint: expected {{'model': state_dict}}"
        )
    try:
        missing, unexpected = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as exc:  # shape mismatches
        first = "; ".join(str(exc).splitlines()[1:4]).strip()
        raise ModelError(f"checkpoint does not fit the config's architecture: {first}") from exc
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(str(k)[:100] for k in unexpected[:3])})")
        raise ModelError(
            f"checkpoint does not fit the config's architecture: {'; '.join(parts)}. "
            "Check that the config matches the checkpoint (Tiny, Small, Base+ or Large)"
        )
    del checkpoint, state_dict
    model = model.to(device)
    model.eval()
    return model
