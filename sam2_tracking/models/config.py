"""Model configs: parse YAML text and refuse anything that could run code or read the environment.

A config is admin-supplied text (fetched from a URL or uploaded) that Hydra later instantiates, so it is treated as
hostile input:
- YAML text only, parsed with yaml.safe_load; a string is never read as a path, even a one-line text ending in
  ".yaml" (a fetched file could otherwise make the worker read any local file).
- No OmegaConf interpolation anywhere (`${...}`, also when spelt with YAML escapes): `${oc.env:...}` would copy the
  worker's environment (the admin password) into error messages annotators can read, and resolvers can build values.
- Every `_target_` must be one of the SAM2 model classes in ALLOWED_TARGETS: no functions, nothing from
  sam2.build_sam (its builders take config_file / hydra_overrides_extra and compose Hydra again, which can
  instantiate anything), and no other Hydra directive (`_partial_`, `_args_`...) nor those builder arguments.
Error messages quote the config's own text at most, never a resolved value.

Split from models.py (catalogue, download, loading); models re-exports ModelError and validate_config.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

MAX_CONFIG_BYTES = 1_000_000  # the largest SAM2.1 config is ~4 kB: anything near 1 MB is not a model config
_MAX_NODES = 100_000  # bounds the walk: YAML aliases can make a small text expand into a huge tree
_MAX_DEPTH = 50

# The classes SAM2 and SAM2.1 configs instantiate (configs/sam2*/sam2*_hiera_{t,s,b+,l}.yaml), and the model classes
# the `model:` node may name. Nothing else is ever instantiated.
MODEL_TARGETS = frozenset({
    "sam2.modeling.sam2_base.SAM2Base",
    "sam2.sam2_video_predictor.SAM2VideoPredictor",
})
ALLOWED_TARGETS = MODEL_TARGETS | frozenset({
    "sam2.modeling.backbones.image_encoder.ImageEncoder",
    "sam2.modeling.backbones.image_encoder.FpnNeck",
    "sam2.modeling.backbones.hieradet.Hiera",
    "sam2.modeling.position_encoding.PositionEmbeddingSine",
    "sam2.modeling.memory_attention.MemoryAttention",
    "sam2.modeling.memory_attention.MemoryAttentionLayer",
    "sam2.modeling.sam.transformer.RoPEAttention",
    "sam2.modeling.memory_encoder.MemoryEncoder",
    "sam2.modeling.memory_encoder.MaskDownSampler",
    "sam2.modeling.memory_encoder.Fuser",
    "sam2.modeling.memory_encoder.CXBlock",
})
# Keys that only mean something to sam2.build_sam's builders (which re-enter Hydra composition) or to Hydra's
# composition itself; a model config never needs them.
_FORBIDDEN_KEYS = frozenset({"config_file", "hydra_overrides_extra", "hydra", "defaults", "ckpt_path"})


class ModelError(ValueError):
    """A model cannot be downloaded or loaded; the message says what was wrong."""


def validate_config(config_text: str) -> Any:
    """Parse a model config given as YAML text and refuse unsafe or unusable content.

    Returns an OmegaConf DictConfig with no interpolations. A str is always YAML text, never a path: read a trusted
    local file with load_config_file(). Raises ModelError with a message that quotes no environment value."""
    if isinstance(config_text, bytes):
        try:
            config_text = config_text.decode("utf-8")
        except UnicodeDecodeError:
            raise ModelError("model config is not UTF-8 text: give a SAM2 model config in YAML") from None
    if not isinstance(config_text, str):
        raise ModelError(
            f"model config must be YAML text, got {type(config_text).__name__}; read a file with load_config_file()"
        )
    if len(config_text.encode("utf-8", "surrogatepass")) > MAX_CONFIG_BYTES:
        raise ModelError(f"model config is over {MAX_CONFIG_BYTES // 1_000_000} MB: that is not a SAM2 model config")
    if "\x00" in config_text:
        raise ModelError("model config contains NUL bytes: it is not YAML text")
    _refuse_interpolation_in_text(config_text)
    data = _parse_yaml(config_text)
    if not isinstance(data, dict):
        what = "a single line of text (it is never read as a file path)" if isinstance(data, str) else (
            f"a YAML {type(data).__name__}" if data is not None else "empty")
        raise ModelError(f"model config is {what}, not a YAML mapping with a `model:` section; give a full SAM2 "
                         "model config such as the ones in sam2/configs/sam2.1/")
    _walk(data)
    model = data.get("model")
    if not isinstance(model, dict):
        raise ModelError("model config has no `model:` section; give a full SAM2 model config")
    if not isinstance(model.get("_target_"), str) or model["_target_"] not in MODEL_TARGETS:
        raise ModelError(
            f"model config's `model._target_` must be one of {', '.join(sorted(MODEL_TARGETS))}"
        )
    from omegaconf import OmegaConf

    return OmegaConf.create(data)


def load_config_file(path: str | os.PathLike) -> Any:
    """validate_config() of a local file's text: for configs the app itself wrote (a model folder's config.yaml)."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ModelError(f"model config {path.name} is over {MAX_CONFIG_BYTES // 1_000_000} MB")
        raw = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read model config {path.name}: {exc.strerror or type(exc).__name__}") from exc
    return validate_config(raw)


def _refuse_interpolation_in_text(text: str) -> None:
    index = text.find("${")
    if index >= 0:
        line = text.count("\n", 0, index) + 1
        raise ModelError(
            f"model config line {line} holds an interpolation (`${{...}}`); configs must spell out every value "
            "(interpolations such as ${oc.env:...} are never resolved)"
        )


def _parse_yaml(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # The mark names line and column only; the problem text is the parser's, about the config's own characters.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid syntax"
        raise ModelError(f"model config is not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise ModelError("model config is nested too deeply to be a SAM2 model config") from None


def _walk(root: Any) -> None:
    """Check every key and value iteratively (no recursion limit to hit), bounded in nodes and depth."""
    stack: list[tuple[Any, str, int]] = [(root, "", 0)]
    seen = 0
    while stack:
        node, path, depth = stack.pop()
        seen += 1
        if seen > _MAX_NODES:
            raise ModelError(f"model config has over {_MAX_NODES} entries (YAML aliases?): not a SAM2 model config")
        if depth > _MAX_DEPTH:
            raise ModelError(f"model config is nested over {_MAX_DEPTH} levels deep at {path}")
        if isinstance(node, dict):
            for key, value in node.items():
                if not isinstance(key, str):
                    raise ModelError(f"model config key {key!r} under {path or 'the top level'} is not a string")
                key_path = f"{path}.{key}" if path else key
                _check_string(key, key_path)
                if key == "_target_":
                    _check_target(key_path, value)
                elif key.startswith("_") and key.endswith("_"):
                    raise ModelError(f"refusing model config: {key_path}: Hydra directives other than _target_ "
                                     "are not allowed")
                elif key in _FORBIDDEN_KEYS:
                    raise ModelError(f"refusing model config: {key_path}: `{key}` re-enters Hydra composition and "
                                     "is not allowed in a model config")
                stack.append((value, key_path, depth + 1))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                stack.append((value, f"{path}[{i}]", depth + 1))
        elif isinstance(node, str):
            _check_string(node, path)
        elif not (node is None or isinstance(node, (bool, int, float))):
            # safe_load can still build dates, sets and bytes: a model config has no use for them.
            raise ModelError(f"model config value at {path} is a {type(node).__name__}; use numbers, strings, "
                             "booleans and lists")


def _check_string(text: str, path: str) -> None:
    # YAML escapes ("\x24{...}") spell an interpolation the raw-text check cannot see.
    if "${" in text:
        raise ModelError(f"model config {path} holds an interpolation (`${{...}}`); configs must spell out every "
                         "value (interpolations such as ${oc.env:...} are never resolved)")


def _check_target(key_path: str, target: Any) -> None:
    if not isinstance(target, str) or target not in ALLOWED_TARGETS:
        shown = repr(target) if isinstance(target, str) and len(target) <= 200 else type(target).__name__
        raise ModelError(
            f"refusing model config: {key_path} = {shown}: only SAM2 model classes may be instantiated "
            f"(e.g. {sorted(MODEL_TARGETS)[0]}); functions, sam2.build_sam and anything outside sam2 are refused"
        )


def builtin_config_text(config_name: str) -> str:
    """The resolved text of a config shipped in the sam2 package (trusted: it comes from the installed package)."""
    import sam2  # noqa: F401  (registers the package's config search path with hydra)
    from hydra import compose
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    if not (isinstance(config_name, str) and config_name.startswith("configs/") and ".." not in config_name
            and config_name.endswith((".yaml", ".yml"))):
        raise ModelError(f"{config_name!r} is not a config shipped with sam2 (configs/sam2.1/sam2.1_hiera_t.yaml...)")
    try:
        cfg = compose(config_name=config_name)
    except (HydraException, ValueError) as exc:
        raise ModelError(f"{config_name!r} is not a config shipped with sam2 ({exc})") from exc
    OmegaConf.resolve(cfg)
    return f"# {config_name} from the sam2 package\n" + OmegaConf.to_yaml(cfg)
