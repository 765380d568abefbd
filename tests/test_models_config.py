"""The model catalogue's entries and the config allow-list: the default models, custom entries, and
configs refused (with messages that leak no secret) or accepted."""

from __future__ import annotations

from pathlib import Path

import pytest

from sam2_tracking.models import catalogue as models
from sam2_tracking.models.catalogue import (
    DEFAULT_MODELS,
    ModelEntry,
    ModelError,
    custom_model_entry,
    load_config_file,
    validate_config,
)
from tests.test_models_download import SECRET, _no_secret


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
