"""Hugging Face Space: README front matter that the Hub reads, and the settings a Space gets (persistent /data, public
address, a required admin password, no GPU consumer on ZeroGPU)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

from sam2_tracking import settings as settings_module
from sam2_tracking.settings import ENV_PREFIX, load_settings

REPO = Path(__file__).resolve().parent.parent


def _front_matter() -> dict:
    text = (REPO / "README.md").read_text()
    match = re.match(r"---\n(.*?)\n---\n", text, re.S)
    assert match, "README.md must start with the Space's YAML front matter between --- lines"
    return yaml.safe_load(match.group(1))


def _pin(name: str) -> str:
    for line in (REPO / "requirements.txt").read_text().splitlines():
        if line.lower().startswith(name + "=="):
            return line.split("==", 1)[1].strip()
    raise AssertionError(f"{name} is not pinned in requirements.txt")


def test_readme_front_matter_runs_app_py_on_the_pinned_gradio_and_python():
    meta = _front_matter()
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py" and (REPO / meta["app_file"]).is_file()
    # The Space installs Gradio itself from sdk_version: it must be the version the app is tested with.
    assert meta["sdk_version"] == _pin("gradio")
    # A string, so YAML cannot turn 3.10 into 3.1; torch 2.14.1 and the tests run on 3.11 (DESIGN.md section 3).
    assert meta["python_version"] == "3.11"


@pytest.fixture()
def space_env(monkeypatch, tmp_path):
    """The environment of a Space: SPACE_ID set, no SAM2T_* but the admin password secret."""
    for key in [k for k in list(os.environ) if k.startswith(ENV_PREFIX) or k.startswith("SPACES_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("SPACE_ID", "lab/sam2-tracking")
    monkeypatch.setenv("SAM2T_ADMIN_PASSWORD", "space-secret")
    persistent = tmp_path / "persistent"
    monkeypatch.setattr(settings_module, "SPACE_PERSISTENT_DIR", persistent)
    monkeypatch.chdir(tmp_path)
    return persistent


def test_space_with_persistent_storage_keeps_data_there(space_env):
    space_env.mkdir()
    settings = load_settings()
    assert settings.data_dir == space_env and settings.store_path.parent == space_env
    assert settings.model_dir == space_env / "models"
    assert settings.host == "0.0.0.0" and settings.port == 7860
    assert settings.embedded_consumers == ("cpu",), "a Space serves jobs from its own process"


def test_space_without_persistent_storage_uses_its_own_folder(space_env, tmp_path):
    settings = load_settings()  # /data does not exist: the app's folder (lost on restart, as README says)
    assert settings.data_dir == tmp_path / "data"
    space_env.write_text("")  # something that is not a folder there
    assert load_settings().data_dir == tmp_path / "data"


def test_space_data_dir_setting_wins(space_env, monkeypatch, tmp_path):
    space_env.mkdir()
    monkeypatch.setenv("SAM2T_DATA_DIR", str(tmp_path / "elsewhere"))
    assert load_settings().data_dir == tmp_path / "elsewhere"


def test_space_refuses_to_start_without_an_admin_password(space_env, monkeypatch):
    monkeypatch.delenv("SAM2T_ADMIN_PASSWORD")
    with pytest.raises(ValueError, match="SAM2T_ADMIN_PASSWORD as a Space secret"):
        load_settings()


def test_zero_gpu_space_refuses_an_embedded_gpu_consumer(space_env, monkeypatch):
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert load_settings().embedded_consumers == ("cpu",)
    monkeypatch.setenv("SAM2T_EMBED_CONSUMERS", "cpu,gpu")
    with pytest.raises(ValueError, match="ZeroGPU Space cannot run a GPU consumer"):
        load_settings()


def test_a_laptop_is_unchanged(monkeypatch, tmp_path):
    for key in [k for k in list(os.environ) if k.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(key)
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "persistent").mkdir()
    monkeypatch.setattr(settings_module, "SPACE_PERSISTENT_DIR", tmp_path / "persistent")
    settings = load_settings()
    assert settings.data_dir == tmp_path / "data" and settings.host == "127.0.0.1"
    assert not settings.admin_auth_enabled
