"""Builders the store's test modules share: a small frame size, a disc-shaped mask, a tracker's results for a
range of frames, and a job claimed by worker "w1"."""

from __future__ import annotations

import numpy as np

from sam2_tracking.types import FrameMask, JobSpec

W, H = 64, 48


def disc(cx: int, cy: int, r: int = 6) -> np.ndarray:
    yy, xx = np.mgrid[:H, :W]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def results(track_id: int, frames, present: bool = True, shift: int = 0) -> list[FrameMask]:
    out = []
    for f in frames:
        if present:
            out.append(FrameMask(f, track_id, True, 2.5, disc(10 + f + shift, 20)))
        else:
            out.append(FrameMask(f, track_id, False, -4.0))
    return out


def running_job(store, dataset, track_ids, start: int = 0, frames_total: int = 20):
    job = store.create_job(JobSpec(dataset.dataset_id, tuple(track_ids), start, "tiny", "cpu"), frames_total)
    assert store.claim_job(job.job_id, "w1")
    return job
