"""Run the real app (`python app.py`) as a subprocess on a free loopback port, for browser and HTTP API tests and the
browser and load benchmarks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from sam2_tracking.testing.queue_harness import REPO_ROOT, TEST_MODEL_NAME
from sam2_tracking.testing.wait import wait_for


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AppServer:
    def __init__(self, data_dir: Path, model_dir: Path, cwd: Path | None = None, port: int | None = None,
                 **env_overrides: str) -> None:
        """cwd: the app's working folder (default the repository); port: a free one unless given (known before the
        app starts, e.g. for consumers' SAM2T_APP_URL); env_overrides: SAM2T_* and other variables."""
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.data_dir = data_dir
        self.log_path = data_dir.parent / f"app-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SAM2T_")}
        env.update(SAM2T_DATA_DIR=str(data_dir), SAM2T_MODEL_DIR=str(model_dir), SAM2T_PORT=str(self.port),
                   PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1", **env_overrides)
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen([sys.executable, str(REPO_ROOT / "app.py")], cwd=cwd or REPO_ROOT, env=env,
                                        stdout=self._log, stderr=subprocess.STDOUT)
        wait_for(self._answers, 120, f"the app to answer on {self.url} (log: {self.log_path})", 0.3)

    def _answers(self) -> bool:
        import httpx

        if self.process.poll() is not None:
            raise AssertionError(f"the app exited: {self.log_path.read_text()[-3000:]}")
        try:
            return httpx.get(self.url, timeout=2).status_code in (200, 401, 302)
        except httpx.HTTPError:
            return False

    def log(self) -> str:
        return self.log_path.read_text()[-5000:]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self._log.close()


def start_tracking_ready_app(root: Path, model_server) -> tuple[AppServer, object, object]:
    """`python app.py` on a fresh data folder with the test model downloaded and marked ready, SAM2 and mask tracking
    switched on: what the browser tests start from. Returns (server, store, settings); stop the server after."""
    from queues.config import get_store
    from sam2_tracking.models.catalogue import custom_model_entry, download_model
    from sam2_tracking.settings import Settings

    data_dir, model_dir = root / "data", root / "models"
    entry = custom_model_entry(TEST_MODEL_NAME, model_server.url + "/config.yaml", model_server.url + "/checkpoint.pt")
    download_model(entry, model_dir)
    settings = Settings(data_dir=data_dir, model_dir=model_dir)
    store = get_store(settings)
    store.upsert_model(TEST_MODEL_NAME, entry.config, entry.checkpoint_url, is_default=False, status="ready")
    store.set_setting("sam2_enabled", True)
    store.set_setting("tracking_enabled", True)
    return AppServer(data_dir, model_dir), store, settings
