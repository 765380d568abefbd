"""The skip guard of tests/conftest.py, run for real: pytest in a subprocess on a scratch folder whose conftest is ours.

Every skip (and non-strict xfail) of a test not marked gpu fails the session, naming the test and its reason; a gpu
test may skip; tests deselected with -m are not skips.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

CASES = '''
import pytest


def test_runs():
    assert 1 + 1 == 2


@pytest.mark.gpu
def test_on_a_gpu():
    assert 2 * 2 == 4  # passes where CUDA is visible, skipped elsewhere: allowed either way


@pytest.mark.slow
def test_skips():
    pytest.skip("redis-server is not installed")


@pytest.mark.slow
@pytest.mark.xfail(reason="known wrong", strict=False)
def test_loose_xfail():
    assert False


@pytest.mark.xfail(reason="known wrong", strict=True)
def test_strict_xfail():
    assert False
'''


def run_pytest(folder: Path, *args: str) -> subprocess.CompletedProcess:
    (folder / "conftest.py").write_text("from tests.conftest import *  # noqa: F403 (the hooks under test)\n")
    (folder / "test_cases.py").write_text(CASES)
    (folder / "pytest.ini").write_text("[pytest]\naddopts = --strict-markers -p no:cacheprovider\nmarkers =\n"
                                       "    gpu: cuda\n    slow: slow\n")
    return subprocess.run([sys.executable, "-m", "pytest", "-q", str(folder), *args], cwd=folder,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True,
                          text=True, timeout=300)


def test_a_skip_or_loose_xfail_fails_the_session_and_says_which(tmp_path: Path) -> None:
    result = run_pytest(tmp_path)
    out = result.stdout
    assert result.returncode == 1, out
    assert "SKIPPED NOT ALLOWED test_cases.py::test_skips: redis-server is not installed" in out
    assert "SKIPPED NOT ALLOWED test_cases.py::test_loose_xfail: xfail (not strict): known wrong" in out
    assert "test_on_a_gpu" not in out.split("only tests marked gpu may skip")[1]
    assert "test_strict_xfail" not in out.split("only tests marked gpu may skip")[1]
    # No test failed: the skips alone make the exit status 1.
    assert re.fullmatch(r"=* ?1 passed, 2 skipped, 2 xfailed in .*", out.splitlines()[-1]), out.splitlines()[-1]


def test_deselected_tests_are_not_skips(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, "-m", "not slow")
    assert result.returncode == 0, result.stdout
    assert "2 deselected" in result.stdout.splitlines()[-1]
    assert "SKIPPED NOT ALLOWED" not in result.stdout
