"""Real consumer processes for queue tests and benchmarks: a data folder, settings, `python -m queues.consumer`
subprocesses, and the test model installed through the real download path.

The one place under sam2_tracking that touches queues/: it drives that layer from outside, as a deployment does, and
imports it inside QueueHarness only (the same per-process store object the queue code in a test's process uses)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from sam2_tracking.settings import Settings
from sam2_tracking.testing.wait import wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
ASSETS = REPO_ROOT / "assets"
TEST_MODEL_NAME = "testmodel"


def install_test_model(model_server_url: str, model_dir: Path) -> Path:
    """The test model downloaded from model_server_url through the real download path (HTTP, verification, safe
    load) into model_dir, as TEST_MODEL_NAME; returns model_dir."""
    from sam2_tracking.models.catalogue import custom_model_entry, download_model

    entry = custom_model_entry(TEST_MODEL_NAME, model_server_url + "/config.yaml", model_server_url + "/checkpoint.pt")
    download_model(entry, model_dir)
    return model_dir


class QueueHarness:
    """A data folder with its store, and the consumer subprocesses a test starts on it (close() stops them)."""

    def __init__(self, tmp_path: Path, model_dir: Path, queue_url: str = "",
                 queues: tuple[str, ...] = ("cpu", "gpu")) -> None:
        from queues.config import get_store

        self.tmp_path = tmp_path
        self.settings = Settings(data_dir=tmp_path / "data", model_dir=model_dir,
                                 queue_url=queue_url, queue_names=queues, embedded_consumers=())
        self.store = get_store(self.settings)
        self.processes: list[subprocess.Popen] = []

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SAM2T_")}
        env.update(
            SAM2T_DATA_DIR=str(self.settings.data_dir),
            SAM2T_MODEL_DIR=str(self.settings.model_dir),
            SAM2T_QUEUE_URL=self.settings.queue_url,
            SAM2T_QUEUES=",".join(self.settings.queue_names),
            SAM2T_EMBED_CONSUMERS="none",
            PYTHONPATH=str(REPO_ROOT),
            # Two consumers share two cores in these tests; one torch thread each keeps them from thrashing.
            OMP_NUM_THREADS="1",
        )
        return env

    def start_consumer(self, queue: str, *args: str, wait: bool = True) -> subprocess.Popen:
        log = open(self.tmp_path / f"consumer-{queue}-{len(self.processes)}.log", "w")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-m", "queues.consumer", queue, "--device", "cpu", *args],
            cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        if wait:
            wait_for(lambda: any(w.pid == process.pid for w in self.store.list_workers(queue=queue)), 90,
                     f"the {queue} consumer's first heartbeat ({self.logs()})", 0.2)
        return process

    def kill(self, process: subprocess.Popen) -> None:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def logs(self) -> str:
        return "\n".join(p.read_text()[-3000:] for p in sorted(self.tmp_path.glob("consumer-*.log")))

    def register_model(self, name: str = TEST_MODEL_NAME) -> str:
        """List the model downloaded into the shared model store as ready, as a finished download task does."""
        from sam2_tracking.models.catalogue import model_status

        manifest = model_status(self.settings.model_dir, name)
        assert manifest is not None, f"{name} is not in {self.settings.model_dir}"
        self.store.upsert_model(name, manifest["sources"]["config"], manifest["sources"]["checkpoint"],
                                is_default=False, status="ready", size=manifest["size"], sha256=manifest["sha256"])
        return name

    def add_sample(self, name: str = "sample_shapes.mp4"):
        """The sample clip as a dataset with its ready-made tracks; returns (dataset, [track ids])."""
        from sam2_tracking.library import add_video_if_missing

        dataset = add_video_if_missing(self.store, ASSETS / name, seed_file=ASSETS / (Path(name).stem + ".json"))
        return dataset, [t.track_id for t in self.store.list_tracks(dataset.dataset_id)]

    def close(self) -> None:
        stop_processes(self.processes)


def stop_processes(processes: list[subprocess.Popen], timeout: float = 15) -> None:
    """SIGTERM every process still running, then wait for each; one that outlasts the timeout is killed."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
