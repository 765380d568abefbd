"""Shared fixtures: the test model (real SAM2.1 Tiny architecture, random weights) and a loopback HTTP server; the
`gpu` marker's skip, and the guard that fails the session on any other skip.

The test model is built once and cached in .cache/ (about 160 MB, built in a few seconds), keyed by image size and seed.
Helpers shared with the benchmarks live in sam2_tracking/testing/.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sam2_tracking.testing.loopback_server import LoopbackServer

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
def shared_model_dir(tmp_path_factory, model_server) -> Path:
    """The test model downloaded through the real download path (HTTP, verification, safe load) once per session,
    as the queue harness's TEST_MODEL_NAME: the model folder consumers started by QueueHarness use."""
    from sam2_tracking.testing.queue_harness import install_test_model

    return install_test_model(model_server.url, tmp_path_factory.mktemp("models"))


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
    from sam2_tracking.testing import MissingToolError
    from sam2_tracking.testing.postgres_server import PostgresServer, find_pg_bin

    pg_bin = find_pg_bin()
    if pg_bin is None:
        raise MissingToolError("PostgreSQL is not installed: bash tests/run_all.sh installs it (Debian package "
                               "postgresql); or deselect its tests with -m 'not postgres'")
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
    """Debian's Chromium (Playwright), one per test module; sam2_tracking/testing/browser.py."""
    from sam2_tracking.testing.browser import chromium_browser

    with chromium_browser() as browser:
        yield browser


# ------------------------------------------------------------------ the gpu marker, and no other skip passes silently

_CUDA: list[bool] = []  # asked once, on the first gpu test (torch is imported only when one runs)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test marked `gpu` runs wherever CUDA is visible and is skipped elsewhere: the only skip the guard allows."""
    if item.get_closest_marker("gpu") is None:
        return
    if not _CUDA:
        import torch

        _CUDA.append(torch.cuda.is_available())
    if not _CUDA[0]:
        pytest.skip("needs a CUDA GPU (marker gpu): torch sees none here")


def _xfail_is_strict(item: pytest.Item) -> bool:
    """Whether the item's xfail marker is strict (an unexpected pass fails), as pytest decides it."""
    for mark in item.iter_markers(name="xfail"):
        strict = mark.kwargs.get("strict")
        if strict is None:
            strict = item.config.getini("strict_xfail")
        if strict is None:
            strict = item.config.getini("strict")
        return bool(strict)
    return False


class SkipGuard:
    """Records every skip (and every non-strict xfail, which passes whatever the code does) of a test not marked
    `gpu`, and fails the session naming each with its reason. A test that cannot run here must fail, not vanish from
    the count: a missing outside program or side environment is installed by tests/run_all.sh. Tests deselected with
    -m or -k never run, so they are not skips."""

    def __init__(self) -> None:
        self.allowed: dict[str, bool] = {}  # nodeid -> marked gpu: may skip
        self.strict_xfail: dict[str, bool] = {}  # nodeid -> its xfail marker is strict
        self.skipped: dict[str, str] = {}  # nodeid -> reason

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            self.allowed[item.nodeid] = item.get_closest_marker("gpu") is not None
            self.strict_xfail[item.nodeid] = _xfail_is_strict(item)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.skipped:  # a whole module skipped at import: nothing in it is marked gpu yet
            self.skipped[report.nodeid] = _skip_reason(report)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.allowed.get(report.nodeid):
            return
        xfail = getattr(report, "wasxfail", None)
        if xfail is not None:
            if not self.strict_xfail.get(report.nodeid):
                self.skipped.setdefault(report.nodeid, f"xfail (not strict): {xfail}")
        elif report.skipped:
            self.skipped.setdefault(report.nodeid, _skip_reason(report))

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.skipped and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.skipped:
            return
        terminalreporter.section("skipped tests fail the run (only tests marked gpu may skip)", sep="=", red=True)
        for nodeid, reason in self.skipped.items():
            terminalreporter.line(f"SKIPPED NOT ALLOWED {nodeid}: {reason}", red=True)
        terminalreporter.line("Install what is missing with bash tests/run_all.sh, or deselect with -m/-k.")


def _skip_reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (path, line, "Skipped: reason")
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(SkipGuard(), "sam2t-skip-guard")
