"""No admin password means no login at all: app.py serves that only where nobody else can reach it (a loopback
address), unless SAM2T_OPEN=1 says it is on purpose. Checked in-process for each kind of address, and against
`python app.py` itself."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sam2_tracking.settings import Settings, is_loopback_host, require_logins_when_reachable
from sam2_tracking.testing.app_server import free_port
from sam2_tracking.testing.queue_harness import REPO_ROOT

REFUSAL = "refusing to start"


def _settings(tmp_path, **kw) -> Settings:
    return Settings(data_dir=tmp_path, model_dir=tmp_path / "models", **kw)


def test_loopback_addresses_are_told_apart_from_reachable_ones():
    assert all(is_loopback_host(h) for h in ("127.0.0.1", "127.0.1.1", "::1", "[::1]", "localhost", "LOCALHOST"))
    assert not any(is_loopback_host(h) for h in ("0.0.0.0", "::", "[::]", "192.168.1.20", "10.0.0.5", "lab-server"))


def test_without_a_password_only_loopback_serves_unless_open_is_set(tmp_path):
    for host in ("127.0.0.1", "::1", "localhost"):
        require_logins_when_reachable(_settings(tmp_path, host=host))  # the laptop trial
    for host in ("0.0.0.0", "::", "192.168.1.20", "lab-server"):
        with pytest.raises(ValueError, match=REFUSAL) as refused:
            require_logins_when_reachable(_settings(tmp_path, host=host))
        # The message names both ways out.
        assert "SAM2T_ADMIN_PASSWORD" in str(refused.value) and "SAM2T_OPEN=1" in str(refused.value)
        require_logins_when_reachable(_settings(tmp_path, host=host, open_access=True))
        require_logins_when_reachable(_settings(tmp_path, host=host, admin_password="secret"))
    # Loopback behind a listed reverse proxy is reachable through it.
    with pytest.raises(ValueError, match="SAM2T_TRUSTED_PROXIES"):
        require_logins_when_reachable(_settings(tmp_path, trusted_proxies=("127.0.0.1",)))
    # "No logins on purpose" and a password contradict each other.
    with pytest.raises(ValueError, match="SAM2T_OPEN=1 means no logins"):
        _settings(tmp_path, open_access=True, admin_password="secret")


def _app_env(tmp_path, **env: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SAM2T_") and k != "SPACE_ID"}
    base.update(SAM2T_DATA_DIR=str(tmp_path / "data"), SAM2T_MODEL_DIR=str(tmp_path / "models"),
                SAM2T_PORT=str(free_port()), SAM2T_EMBED_CONSUMERS="none", SAM2T_SAMPLE_VIDEO="false",
                PYTHONPATH=str(REPO_ROOT), **env)
    return base


def test_app_py_refuses_a_non_loopback_bind_without_a_password(tmp_path):
    done = subprocess.run([sys.executable, str(REPO_ROOT / "app.py")], cwd=REPO_ROOT, capture_output=True, text=True,
                          env=_app_env(tmp_path, SAM2T_HOST="0.0.0.0"), timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert REFUSAL in output and "SAM2T_ADMIN_PASSWORD" in output and "SAM2T_OPEN=1" in output, output
    assert "Traceback" not in output
    assert not (tmp_path / "data").exists(), "nothing is opened or written before the refusal"


@pytest.mark.slow
def test_app_py_serves_a_non_loopback_bind_without_logins_when_open_is_set(tmp_path):
    import httpx

    from sam2_tracking.testing.app_server import AppServer

    server = AppServer(tmp_path / "data", tmp_path / "models", SAM2T_HOST="0.0.0.0", SAM2T_OPEN="1",
                       SAM2T_EMBED_CONSUMERS="none", SAM2T_SAMPLE_VIDEO="false")
    try:
        # Listening on every address (AppServer reached it through 127.0.0.1), and no login asked for.
        assert httpx.get(server.url + "gradio_api/login_check", timeout=30).status_code == 200
        assert server.process.poll() is None
    finally:
        server.stop()
