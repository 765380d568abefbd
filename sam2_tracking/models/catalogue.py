"""SAM2 model catalogue: the default SAM2.1 models and custom entries; the one import for everything about models.

The work lives in smaller modules re-exported here: models.config (config validation), models.fetch (the config and
the checkpoint over HTTP, through sam2_tracking.download), models.files (verified downloads and uploads swapped in
atomically, status, removal) and models.loading (safe loading, per-process cache).
torch, hydra and sam2 are imported inside the functions that need them, never at import time.
"""

from __future__ import annotations

import re

from sam2_tracking.models.config import (
    MAX_CONFIG_BYTES,
    ModelError,
    builtin_config_text,
    load_config_file,
    validate_config,
)
from sam2_tracking.models.fetch import DownloadCancelled, DownloadLimits, ModelEntry
from sam2_tracking.models.files import (
    check_name,
    clear_interrupted,
    download_in_progress,
    download_model,
    install_model_files,
    interrupted_download,
    model_status,
    partial_checkpoint,
    remove_model,
)
from sam2_tracking.models.loading import (
    CHECKPOINT_NAME,
    CONFIG_NAME,
    MAX_CACHED_MODELS,
    choose_device,
    inference_context,
    load_predictor,
)

__all__ = [
    "CHECKPOINT_NAME", "CONFIG_NAME", "MAX_CONFIG_BYTES", "DEFAULT_MODELS",
    "MAX_CACHED_MODELS", "DownloadCancelled", "DownloadLimits", "ModelEntry", "ModelError", "builtin_config_text",
    "check_name", "choose_device", "clear_interrupted", "custom_model_entry", "download_in_progress",
    "download_model", "inference_context", "install_model_files", "interrupted_download", "load_config_file",
    "load_predictor", "model_status", "partial_checkpoint", "remove_model", "validate_config",
]

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


_BUILTIN_CONFIG = re.compile(r"^configs/[A-Za-z0-9_.+/-]{1,200}\.ya?ml$")


def _is_builtin_config(config: str) -> bool:
    """Whether the installed sam2 package ships this config (found without importing sam2)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("sam2")
    roots = list(spec.submodule_search_locations or []) if spec else []
    return any((Path(root) / config).is_file() for root in roots)


def _check_url(url: str, what: str) -> str:
    if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+", url):
        raise ModelError(f"{what} must be an http:// or https:// URL, got {url!r}")
    return url


def custom_model_entry(name: str, config: str, checkpoint_url: str) -> ModelEntry:
    """A user-defined model: config is a built-in config name (e.g. configs/sam2.1/sam2.1_hiera_t.yaml) or a URL."""
    check_name(name)
    if name in DEFAULT_MODELS:
        raise ModelError(f"{name!r} is the name of a default model; choose another name for a custom model")
    _check_url(checkpoint_url, "checkpoint URL")
    if not isinstance(config, str):
        raise ModelError("config must be a built-in sam2 config name or an http(s) URL")
    if config.startswith(("http://", "https://")):
        _check_url(config, "config URL")
    elif not (_BUILTIN_CONFIG.match(config) and ".." not in config.split("/") and _is_builtin_config(config)):
        raise ModelError(
            f"config {config[:200]!r} must be a built-in sam2 config such as configs/sam2.1/sam2.1_hiera_t.yaml, "
            "or an http(s) URL to a YAML file"
        )
    return ModelEntry(name=name, config=config, checkpoint_url=checkpoint_url, label=name)
