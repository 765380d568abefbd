"""Shared fixtures: the test model (real SAM2.1 Tiny architecture, random weights) and a loopback HTTP server.

The test model is built once and cached in .cache/ (about 160 MB, built in a few seconds), keyed by image size and seed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.loopback_server import LoopbackServer

REPO_ROOT = Path(__file__).resolve().parent.parent
ASSETS = REPO_ROOT / "assets"
CACHE_DIR = Path(os.environ.get("SAM2T_TEST_CACHE", REPO_ROOT / ".cache"))


def cached_test_model(image_size: int = 256, seed: int = 0) -> Path:
    """Folder holding config.yaml and checkpoint.pt of the test model, building it on first use."""
    from sam2_tracking.testmodel import CHECKPOINT_NAME, CONFIG_NAME, build_test_model

    out = CACHE_DIR / f"testmodel-{image_size}-seed{seed}"
    if not ((out / CONFIG_NAME).is_file() and (out / CHECKPOINT_NAME).is_file()):
        build_test_model(out, image_size=image_size, seed=seed)
    return out


@pytest.fixture(scope="session")
def test_model_dir() -> Path:
    return cached_test_model()


@pytest.fixture(scope="session")
def model_server(test_model_dir: Path):
    """The test model served over real HTTP: {url}/config.yaml and {url}/checkpoint.pt."""
    server = LoopbackServer(test_model_dir)
    yield server
    server.close()


@pytest.fixture()
def file_server(tmp_path: Path):
    """A loopback HTTP server over a fresh folder (tmp_path/served) that a test fills itself."""
    root = tmp_path / "served"
    root.mkdir()
    server = LoopbackServer(root)
    server.root = root
    yield server
    server.close()


@pytest.fixture(scope="session")
def sample_video() -> Path:
    return ASSETS / "sample_shapes.mp4"


@pytest.fixture(scope="session")
def sample_video_meta() -> dict:
    return json.loads((ASSETS / "sample_shapes.json").read_text())


@pytest.fixture(scope="session")
def sample_sequence() -> Path:
    return ASSETS / "sample_sequence.zip"


@pytest.fixture()
def store(tmp_path: Path):
    """A fresh store in a real SQLite file."""
    from sam2_tracking.store import open_store

    s = open_store(tmp_path / "store.db")
    yield s
    s.close()
