"""The CLI runs the one job run: interrupted (Ctrl-C, or killed), then run again with the same --store, it continues
the job and every mask equals an uninterrupted run's, bit for bit."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from sam2_tracking.states import JobState
from sam2_tracking.store import open_store
from sam2_tracking.testing.wait import wait_for
from tests.conftest import REPO_ROOT
from tests.test_cli import track_args

pytestmark = pytest.mark.slow

FRAMES = 40


def _masks(store_path) -> dict[int, tuple]:
    store = open_store(store_path)
    try:
        [job] = [j for j in store.list_jobs() if j.status == JobState.DONE]
        assert store.job_frames_written(job.job_id) == set(range(FRAMES))
        [track_id] = job.spec.track_ids
        return {f.frame_idx: (f.present, f.rle, f.score) for f in store.get_features(track_id, 0, FRAMES)}
    finally:
        store.close()


def _start(args, log):
    return subprocess.Popen([sys.executable, "-m", "sam2_tracking", *args], cwd=REPO_ROOT, stdout=log,
                            stderr=subprocess.STDOUT, text=True)


def _tracked(store_path) -> int:
    """Frames the running CLI has tracked, as its job row shows (its writer updates it every half second)."""
    if not store_path.exists():
        return 0
    store = open_store(store_path)
    try:
        jobs = store.list_jobs()
        return (jobs[0].current_frame_idx or 0) + 1 if jobs and jobs[0].current_frame_idx is not None else 0
    finally:
        store.close()


@pytest.fixture(scope="module")
def expected(sample_video, sample_video_meta, test_model_dir, tmp_path_factory) -> dict[int, tuple]:
    """The masks of an uninterrupted run of the same command."""
    assert sample_video_meta["seeds"][0]["frame"] == 0
    folder = tmp_path_factory.mktemp("reference")
    args = track_args(sample_video, sample_video_meta, test_model_dir, folder / "ref.json", "dive",
                      "--store", str(folder / "reference.db"), frames=FRAMES)
    assert subprocess.run([sys.executable, "-m", "sam2_tracking", *args], cwd=REPO_ROOT, capture_output=True,
                          timeout=600).returncode == 0
    masks = _masks(folder / "reference.db")
    assert sorted(masks) == list(range(FRAMES))
    return masks


@pytest.mark.parametrize("interrupt", ["ctrl-c", "kill"])
def test_an_interrupted_cli_run_resumes_exactly(sample_video, sample_video_meta, test_model_dir, tmp_path, interrupt,
                                                expected):

    kept = tmp_path / "kept.db"
    out = tmp_path / "out.json"
    args = track_args(sample_video, sample_video_meta, test_model_dir, out, "dive", "--store", str(kept),
                      frames=FRAMES)
    with open(tmp_path / "first.log", "w+") as log:
        process = _start(args, log)
        wait_for(lambda: _tracked(kept) >= 15 or process.poll() is not None, 300, "15 tracked frames")
        assert process.poll() is None, "the run ended before it could be interrupted"
        process.send_signal(signal.SIGINT if interrupt == "ctrl-c" else signal.SIGKILL)
        code = process.wait(timeout=120)
        log.seek(0)
        first_output = log.read()
    store = open_store(kept)
    [job] = store.list_jobs()
    committed = store.job_frames_written(job.job_id)
    store.close()
    if interrupt == "ctrl-c":
        # A stop keeps every frame tracked, and says how to continue.
        assert code == 130, first_output
        assert job.status == JobState.CANCELLED and len(committed) >= 15, (job.status, len(committed))
        assert "run the same command again to continue" in first_output
    else:
        assert code == -signal.SIGKILL and job.status == JobState.RUNNING
    assert len(committed) < FRAMES and not out.exists()

    again = subprocess.run([sys.executable, "-m", "sam2_tracking", *args], cwd=REPO_ROOT, capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert f"continuing job {job.job_id}" in again.stderr
    store = open_store(kept)
    try:
        [resumed] = store.list_jobs()  # the same job, not a second one
        assert resumed.job_id == job.job_id and resumed.status == JobState.DONE
        assert resumed.resumed_count >= 1
    finally:
        store.close()
    assert _masks(kept) == expected  # bit-identical to the uninterrupted run
    assert out.exists()
