"""SAM2 model catalogue, verified downloads and safe loading.

A downloaded model is a folder `<model_dir>/<name>/` holding config.yaml (a full model config), checkpoint.pt
({"model": state_dict}) and manifest.json (written last: a folder without it is not a finished download).

Loading refuses what could run code: configs whose `_target_` entries point outside the `sam2` package, checkpoints
that need more than `torch.load(weights_only=True)`, and state dicts that do not fit the architecture.
torch, hydra and sam2 are imported inside the functions that need them, never at import time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .model_config import ModelError, builtin_config_text, validate_config

CONFIG_NAME = "config.yaml"
CHECKPOINT_NAME = "checkpoint.pt"
MANIFEST_NAME = "manifest.json"
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_CHUNK = 1 << 20
_RETRIES = 3  # automatic resumes after a dropped connection within one download_model call

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


class DownloadCancelled(ModelError):  # noqa: N818 - reads like TrackingCancelled
    """should_cancel() asked download_model to stop; the partial file is kept for a later resume."""


@dataclass(frozen=True)
class ModelEntry:
    """A downloadable model. config: a built-in sam2 config name (configs/sam2.1/...) or an http(s) URL to YAML."""

    name: str
    config: str
    checkpoint_url: str
    expected_size: int | None = None
    sha256: str | None = None
    is_default: bool = False
    label: str = ""


_BASE_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824"
# Sizes (and the Tiny hash) as reported identically by several independent projects that downloaded these files;
# Meta publishes neither. The other hashes are recorded at download time.
DEFAULT_MODELS: dict[str, ModelEntry] = {
    entry.name: entry
    for entry in (
        ModelEntry(
            "sam2.1_hiera_tiny", "configs/sam2.1/sam2.1_hiera_t.yaml", f"{_BASE_URL}/sam2.1_hiera_tiny.pt",
            expected_size=156008466,
            sha256="7402e0d864fa82708a20fbd15bc84245c2f26dff0eb43a4b5b93452deb34be69",
            is_default=True, label="SAM2.1 Tiny (39M parameters, fastest)",
        ),
        ModelEntry(
            "sam2.1_hiera_small", "configs/sam2.1/sam2.1_hiera_s.yaml", f"{_BASE_URL}/sam2.1_hiera_small.pt",
            expected_size=184416285, label="SAM2.1 Small (46M parameters)",
        ),
        ModelEntry(
            "sam2.1_hiera_base_plus", "configs/sam2.1/sam2.1_hiera_b+.yaml", f"{_BASE_URL}/sam2.1_hiera_base_plus.pt",
            expected_size=323606802, label="SAM2.1 Base+ (81M parameters)",
        ),
        ModelEntry(
            "sam2.1_hiera_large", "configs/sam2.1/sam2.1_hiera_l.yaml", f"{_BASE_URL}/sam2.1_hiera_large.pt",
            expected_size=898083611, label="SAM2.1 Large (224M parameters, most accurate, slowest)",
        ),
    )
}


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or name in (".", ".."):
        raise ModelError(f"model name {name!r} may only use letters, digits, '_', '.' and '-' (1 to 100 characters)")
    return name


def _check_url(url: str, what: str) -> str:
    if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+", url):
        raise ModelError(f"{what} must be an http:// or https:// URL, got {url!r}")
    return url


def custom_model_entry(name: str, config: str, checkpoint_url: str) -> ModelEntry:
    """A user-defined model: config is a built-in config name (e.g. configs/sam2.1/sam2.1_hiera_t.yaml) or a URL."""
    _check_name(name)
    if name in DEFAULT_MODELS:
        raise ModelError(f"{name!r} is the name of a default model; choose another name for a custom model")
    _check_url(checkpoint_url, "checkpoint URL")
    if config.startswith(("http://", "https://")):
        _check_url(config, "config URL")
    elif not (config.startswith("configs/") and config.endswith((".yaml", ".yml"))):
        raise ModelError(
            f"config {config!r} must be a built-in sam2 config such as configs/sam2.1/sam2.1_hiera_t.yaml, "
            "or an http(s) URL to a YAML file"
        )
    return ModelEntry(name=name, config=config, checkpoint_url=checkpoint_url, label=name)


# -------------------------------------------------------------------------------------------------------- download


def model_status(model_dir: str | os.PathLike, name: str) -> dict | None:
    """The manifest of a finished download of `name`, or None if it is not (fully) downloaded."""
    folder = Path(model_dir) / _check_name(name)
    manifest = folder / MANIFEST_NAME
    if not (manifest.is_file() and (folder / CHECKPOINT_NAME).is_file() and (folder / CONFIG_NAME).is_file()):
        return None
    try:
        return json.loads(manifest.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def remove_model(model_dir: str | os.PathLike, name: str) -> None:
    """Delete a downloaded model (and any partial download). Removing a model that is not there is not an error."""
    folder = Path(model_dir) / _check_name(name)
    if folder.exists():
        shutil.rmtree(folder)
    _forget_cached(folder)


def download_model(
    entry: ModelEntry,
    model_dir: str | os.PathLike,
    force: bool = False,
    on_progress: Callable[[int, int | None], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> Path:
    """Download entry's config and checkpoint into model_dir/<name>/, verify and validate them, return the folder.

    A partial checkpoint (<name>/checkpoint.pt.part) is resumed with an HTTP Range request, also after a dropped
    connection in this call. on_progress(bytes_done, bytes_total_or_None) follows the checkpoint download.
    force=True deletes what is there and downloads again. Raises ModelError (DownloadCancelled on cancel)."""
    import httpx

    _check_name(entry.name)
    folder = Path(model_dir) / entry.name
    folder.mkdir(parents=True, exist_ok=True)
    with _folder_lock(folder):
        if force:
            for child in folder.iterdir():
                if child.name != ".lock":
                    child.unlink() if child.is_file() else shutil.rmtree(child)
            _forget_cached(folder)
        elif model_status(model_dir, entry.name) is not None:
            return folder
        (folder / MANIFEST_NAME).unlink(missing_ok=True)
        with httpx.Client(follow_redirects=True, timeout=httpx.Timeout(30.0, read=120.0)) as client:
            if entry.config.startswith(("http://", "https://")):
                config_text = _fetch_text(client, entry.config)
            else:
                config_text = builtin_config_text(entry.config)
            validate_config(config_text)
            part = folder / (CHECKPOINT_NAME + ".part")
            size, digest = _fetch_checkpoint(client, entry, part, on_progress, should_cancel)
        tmp_config = folder / (CONFIG_NAME + ".tmp")
        tmp_config.write_text(config_text)
        try:
            # Build the model and load the weights once, so a download is only "done" if it will load.
            _build_model(tmp_config, part, device="cpu")
        except ModelError:
            part.unlink(missing_ok=True)  # do not resume from a file we refused
            tmp_config.unlink(missing_ok=True)
            raise
        os.replace(tmp_config, folder / CONFIG_NAME)
        os.replace(part, folder / CHECKPOINT_NAME)
        manifest = {
            "name": entry.name,
            "label": entry.label,
            "sources": {"config": entry.config, "checkpoint": entry.checkpoint_url},
            "size": size,
            "sha256": digest,
            "downloaded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        tmp_manifest = folder / (MANIFEST_NAME + ".tmp")
        tmp_manifest.write_text(json.dumps(manifest, indent=2))
        os.replace(tmp_manifest, folder / MANIFEST_NAME)
        _forget_cached(folder)
    return folder


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """Serialise downloads of one model across processes (two admins pressing the button at once)."""
    import fcntl

    with open(folder / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _fetch_text(client: Any, url: str) -> str:
    import httpx

    try:
        response = client.get(url)
    except httpx.HTTPError as exc:
        raise ModelError(f"could not download {url}: {exc or type(exc).__name__}") from exc
    if response.status_code != 200:
        raise ModelError(f"{url} answered HTTP {response.status_code} {response.reason_phrase}")
    if len(response.content) > 1_000_000:
        raise ModelError(f"{url} is over 1 MB: that is not a model config")
    return response.text


def _fetch_checkpoint(
    client: Any,
    entry: ModelEntry,
    part: Path,
    on_progress: Callable[[int, int | None], None] | None,
    should_cancel: Callable[[], bool] | None,
) -> tuple[int, str]:
    """Download (or resume) the checkpoint into `part`; return (size, sha256) after checking what is known."""
    import httpx

    url = entry.checkpoint_url
    total: int | None = entry.expected_size
    last_error: Exception | None = None
    for _attempt in range(_RETRIES + 1):
        have = part.stat().st_size if part.exists() else 0
        if total is not None and have == total:
            break
        if total is not None and have > total:
            part.unlink()
            have = 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            with client.stream("GET", url, headers=headers) as response:
                if response.status_code == 416 and have:
                    part.unlink()  # our partial file does not fit this server's file: start over
                    continue
                if response.status_code not in (200, 206):
                    raise ModelError(f"{url} answered HTTP {response.status_code} {response.reason_phrase}")
                if response.status_code == 200:
                    have = 0  # the server ignored the Range header: it sends the whole file
                    length = response.headers.get("Content-Length")
                    server_total = int(length) if length and length.isdigit() else None
                else:
                    match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
                    if not match or int(match.group(1)) != have:
                        part.unlink(missing_ok=True)
                        raise ModelError(f"{url} answered a resume request with an unexpected range; try again")
                    server_total = int(match.group(2)) if match.group(2) != "*" else None
                if server_total is not None:
                    if entry.expected_size is not None and server_total != entry.expected_size:
                        raise ModelError(
                            f"{url} is {server_total} bytes, expected {entry.expected_size}: wrong file or URL"
                        )
                    total = server_total
                with open(part, "ab" if have else "wb") as out:
                    done = have
                    if on_progress:
                        on_progress(done, total)
                    for chunk in response.iter_bytes(_CHUNK):
                        if should_cancel and should_cancel():
                            raise DownloadCancelled(f"download of {entry.name} cancelled; it resumes next time")
                        out.write(chunk)
                        done += len(chunk)
                        if on_progress:
                            on_progress(done, total)
            if total is None or part.stat().st_size >= total:
                break
            last_error = ModelError(f"{url} closed the connection early")
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ReadTimeout, httpx.WriteError) as exc:
            last_error = exc  # a dropped connection: resume from what we have
        except httpx.HTTPError as exc:
            raise ModelError(f"could not download {url}: {exc or type(exc).__name__}") from exc
    else:
        raise ModelError(f"download of {url} kept failing after {_RETRIES} resumes: {last_error}")
    size = part.stat().st_size
    if total is not None and size != total:
        part.unlink()
        raise ModelError(f"{url}: got {size} bytes, expected {total}; the download was deleted, try again")
    digest = _sha256(part)
    if entry.sha256 and digest != entry.sha256.lower():
        part.unlink()
        raise ModelError(f"{url}: SHA-256 is {digest}, expected {entry.sha256}; the file is corrupt or was replaced")
    return size, digest


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------------------- loading


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
_predictors: dict[tuple[str, float, float, str], Any] = {}
MAX_CACHED_MODELS = 2


def load_predictor(model_path: str | os.PathLike, device: str | None = None) -> Any:
    """A SAM2VideoPredictor from a folder with config.yaml and checkpoint.pt, cached per process.

    The cache key includes the files' modification times, so a re-downloaded model is loaded afresh (and the old
    one dropped); at most MAX_CACHED_MODELS stay in memory."""
    folder = Path(model_path).resolve()
    config_path, checkpoint_path = folder / CONFIG_NAME, folder / CHECKPOINT_NAME
    for path in (config_path, checkpoint_path):
        if not path.is_file():
            raise ModelError(f"{folder} has no {path.name}: download the model first")
    device = device or choose_device()
    key = (str(folder), config_path.stat().st_mtime, checkpoint_path.stat().st_mtime, device)
    with _cache_lock:
        predictor = _predictors.get(key)
        if predictor is not None:
            return predictor
        for old in [k for k in _predictors if k[0] == key[0] or len(_predictors) >= MAX_CACHED_MODELS]:
            del _predictors[old]
        predictor = _build_model(config_path, checkpoint_path, device)
        _predictors[key] = predictor
        return predictor


def _forget_cached(folder: Path) -> None:
    resolved = str(folder.resolve())
    with _cache_lock:
        for key in [k for k in _predictors if k[0] == resolved]:
            del _predictors[key]


def _build_model(config_path: Path, checkpoint_path: Path, device: str) -> Any:
    """Instantiate SAM2VideoPredictor from a validated config and load a weights-only checkpoint into it."""
    import pickle

    import torch
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = validate_config(config_path.read_text())
    cfg.model._target_ = VIDEO_PREDICTOR_TARGET
    cfg.model = OmegaConf.merge(cfg.model, VIDEO_POSTPROCESSING)
    try:
        model = instantiate(cfg.model, _recursive_=True)
    except Exception as exc:  # hydra wraps constructor errors in its own types
        raise ModelError(f"model config {config_path.name} does not build a SAM2 model: {exc}") from exc
    try:
        checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch words this "Unsupported global: ..." or "unsupported GLOBAL ... is blocked" depending on the object.
        globals_found = [ln.strip() for ln in str(exc).splitlines() if "unsupported global" in ln.lower()]
        if globals_found:
            raise ModelError(
                f"refusing checkpoint {checkpoint_path.name}: it holds Python objects other than tensors, which "
                f"could run code when loaded ({globals_found[0]})"
            ) from exc
        raise ModelError(f"checkpoint {checkpoint_path.name} is not a readable PyTorch file") from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise ModelError(f"checkpoint {checkpoint_path.name} is not a readable PyTorch file: {exc}") from exc
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
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
        raise ModelError(
            f"checkpoint does not fit the config's architecture: {'; '.join(parts)}. "
            "Check that the config matches the checkpoint (Tiny, Small, Base+ or Large)"
        )
    del checkpoint, state_dict
    model = model.to(device)
    model.eval()
    return model
