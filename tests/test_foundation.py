"""Foundation checks: the test model served over HTTP runs in the real SAM2VideoPredictor; light imports stay light."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO_ROOT


def _download(url: str, dest: Path) -> Path:
    import httpx

    with httpx.stream("GET", url, timeout=30) as response:
        response.raise_for_status()
        with open(dest, "wb") as handle:
            for chunk in response.iter_bytes():
                handle.write(chunk)
    return dest


def _run_stock_predictor(model_dir: Path, video: Path, frame_count: int, box: list[int], tmp: Path) -> list[np.ndarray]:
    """Run the stock SAM2VideoPredictor on the first frame_count frames of video, seeded with box on frame 0."""
    import av
    import torch
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    frames_dir = tmp / "frames"
    frames_dir.mkdir(exist_ok=True)
    with av.open(str(video)) as container:
        for idx, frame in enumerate(container.decode(video=0)):
            if idx >= frame_count:
                break
            frame.to_image().save(frames_dir / f"{idx:05d}.jpg", quality=95)
    cfg = OmegaConf.load(model_dir / "config.yaml")
    cfg.model._target_ = "sam2.sam2_video_predictor.SAM2VideoPredictor"
    predictor = instantiate(cfg.model, _recursive_=True)
    state_dict = torch.load(model_dir / "checkpoint.pt", map_location="cpu", weights_only=True)["model"]
    predictor.load_state_dict(state_dict)
    predictor.eval()
    with torch.inference_mode():
        state = predictor.init_state(str(frames_dir))
        predictor.add_new_points_or_box(state, frame_idx=0, obj_id=1, box=np.array(box, dtype=np.float32))
        return [(logits[0, 0] > 0).numpy() for _idx, _ids, logits in predictor.propagate_in_video(state)]


@pytest.mark.slow
def test_test_model_over_http_runs_real_predictor(model_server, sample_video, sample_video_meta, tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    _download(model_server.url + "/config.yaml", model_dir / "config.yaml")
    _download(model_server.url + "/checkpoint.pt", model_dir / "checkpoint.pt")
    box = sample_video_meta["seeds"][0]["box"]

    first = _run_stock_predictor(model_dir, sample_video, 4, box, tmp_path)
    second = _run_stock_predictor(model_dir, sample_video, 4, box, tmp_path)

    assert len(first) == 4
    for mask in first:
        assert mask.shape == (sample_video_meta["height"], sample_video_meta["width"])
        assert mask.dtype == np.bool_
    assert any(mask.any() for mask in first), "the test model should give some non-empty masks"
    for a, b in zip(first, second, strict=True):
        assert np.array_equal(a, b), "same model and input must give the same masks"


def test_test_model_is_deterministic(tmp_path):
    from sam2_tracking.models.testmodel import build_test_model

    _config_a, checkpoint_a = build_test_model(tmp_path / "a", image_size=64, seed=3)
    _config_b, checkpoint_b = build_test_model(tmp_path / "b", image_size=64, seed=3)
    assert checkpoint_a.read_bytes() == checkpoint_b.read_bytes()


def test_light_imports_do_not_load_torch_or_sam2():
    code = (
        "import json, sys\n"
        "import app, ui, queues, sam2_tracking.settings, sam2_tracking.types\n"
        "for name in ('ui.admin', 'ui.annotate', 'queues.tasks', 'queues.consumer'):\n"
        "    __import__(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'sam2', 'hydra'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_sample_assets_are_ready_to_use(sample_video_meta):
    assert (REPO_ROOT / "assets" / sample_video_meta["video"]).is_file()
    for seed in sample_video_meta["seeds"]:
        x1, y1, x2, y2 = seed["box"]
        assert 0 <= x1 < x2 <= sample_video_meta["width"]
        assert 0 <= y1 < y2 <= sample_video_meta["height"]
    seq_meta = json.loads((REPO_ROOT / "assets" / "sample_sequence.json").read_text())
    assert (REPO_ROOT / "assets" / seq_meta["video"]).is_file()
