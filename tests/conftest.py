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
    from sam2_tracking.models.testmodel import CHECKPOINT_NAME, CONFIG_NAME, build_test_model

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


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL cluster (Debian's `postgresql`), started once per session on a loopback port, removed after."""
    from tests.support.postgres_server import PostgresServer, find_pg_bin

    pg_bin = find_pg_bin()
    if pg_bin is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed; tests/run_all.sh installs the postgresql package")
        pytest.skip("PostgreSQL is not installed (bash tests/run_all.sh installs the postgresql package)")
    server = PostgresServer(pg_bin)
    yield server
    server.stop()


@pytest.fixture()
def postgres_url(postgres_server) -> str:
    """A fresh, empty database on the session's PostgreSQL server, dropped after the test."""
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path: Path):
    """A fresh store on each backend (huey-style: every test taking `store` is the one contract both must keep):
    a real SQLite file, and a fresh database on a real PostgreSQL server (marker `postgres`)."""
    from sam2_tracking.store import open_store

    if request.param == "sqlite":
        location = tmp_path / "store.db"
    else:
        location = request.getfixturevalue("postgres_url")
    s = open_store(location)
    yield s
    s.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_location(request, tmp_path: Path) -> str:
    """Where a fresh store lives on each backend (a SQLite file path or a PostgreSQL URL), for tests that open it
    from several processes or connections."""
    return str(tmp_path / "store.db") if request.param == "sqlite" else request.getfixturevalue("postgres_url")


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium (Playwright), one per test module; tests/support/browser.py."""
    from tests.support.browser import chromium_browser

    with chromium_browser() as browser:
        yield browser
