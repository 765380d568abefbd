"""Model configs: parse, resolve and refuse anything that could run code outside the sam2 package.

Split from models.py (catalogue, download, loading); models re-exports ModelError and validate_config.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class ModelError(ValueError):
    """A model cannot be downloaded or loaded; the message says what was wrong."""


def validate_config(cfg_text_or_path: str | os.PathLike) -> Any:
    """Parse and resolve a model config (YAML text or a file path) and refuse unsafe or unusable content.

    Returns the resolved OmegaConf DictConfig. Every `_target_` must name a class or function defined in the sam2
    package (checked by resolving it, so `sam2.some_module.os.system` is refused too)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    source = cfg_text_or_path
    try:
        if isinstance(source, os.PathLike) or (
            isinstance(source, str) and "\n" not in source and source.endswith((".yaml", ".yml"))
        ):
            text = Path(source).read_text()
        else:
            text = str(source)
        cfg = OmegaConf.create(text)
        # Resolve first: interpolations such as ${oc.create:...} could otherwise build a _target_ the check misses.
        OmegaConf.resolve(cfg)
    except OSError as exc:
        raise ModelError(f"cannot read model config {source}: {exc}") from exc
    except (OmegaConfBaseException, ValueError, TypeError) as exc:
        raise ModelError(f"model config is not valid YAML/OmegaConf: {exc}") from exc
    except Exception as exc:  # yaml.YAMLError and friends
        raise ModelError(f"model config cannot be parsed: {exc}") from exc
    if not OmegaConf.is_dict(cfg) or "model" not in cfg or not OmegaConf.is_dict(cfg.model):
        raise ModelError("model config has no `model:` section; give a full SAM2 model config")
    for key_path, target in _iter_targets(OmegaConf.to_container(cfg), ""):
        _check_target(key_path, target)
    if "_target_" not in cfg.model:
        raise ModelError("model config's `model:` section has no _target_")
    return cfg


def _iter_targets(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            key_path = f"{path}.{key}" if path else str(key)
            if key == "_target_":
                yield key_path, value
            else:
                yield from _iter_targets(value, key_path)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _iter_targets(value, f"{path}[{i}]")


def _check_target(key_path: str, target: Any) -> None:
    refusal = f"refusing model config: {key_path} = {target!r}"
    if not isinstance(target, str) or not target.startswith("sam2."):
        raise ModelError(f"{refusal}: only classes from the sam2 package may be instantiated")
    parts = target.split(".")
    if not all(p.isidentifier() and not p.startswith("_") for p in parts):
        raise ModelError(f"{refusal}: not a plain dotted name")
    # Walk it as hydra would, and insist every step stays inside sam2: hydra resolves attributes of modules, so
    # "sam2.build_sam.os.system" would otherwise reach os.system.
    obj: Any = None
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        rest = parts[i:]
        break
    else:
        raise ModelError(f"{refusal}: no such module")
    for part in rest:
        obj = getattr(obj, part, None)
        if obj is None:
            raise ModelError(f"{refusal}: {part!r} does not exist")
        if isinstance(obj, type(importlib)):
            where = f"module {obj.__name__}"
            module = obj.__name__
        else:
            module = getattr(obj, "__module__", None)
            where = f"{module}.{getattr(obj, '__qualname__', part)}"
        if not (isinstance(module, str) and (module == "sam2" or module.startswith("sam2."))):
            raise ModelError(f"{refusal}: it reaches {where}, outside sam2")
    if not callable(obj) or isinstance(obj, type(importlib)):
        raise ModelError(f"{refusal}: not a class or function")


def builtin_config_text(config_name: str) -> str:
    """The resolved text of a config shipped in the sam2 package."""
    import sam2  # noqa: F401  (registers the package's config search path with hydra)
    from hydra import compose
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    try:
        cfg = compose(config_name=config_name)
    except (HydraException, ValueError) as exc:
        raise ModelError(f"{config_name!r} is not a config shipped with sam2 ({exc})") from exc
    OmegaConf.resolve(cfg)
    return f"# {config_name} from the sam2 package\n" + OmegaConf.to_yaml(cfg)
