"""Exact resume: what the tracker saves after each batch so that a job killed at any point continues bit-identically.

SAM2 computes a frame from the frame itself and the outputs it still reads: the conditioning (seeded) frames'
outputs, the last memory frames and object pointers in processing order (the tracker prunes everything else). A
ResumePoint holds exactly those, per object, plus where the run stood (engine/sam2_state.py captures and restores it). Restored into a freshly seeded state, the
next propagate_in_video computes what the uninterrupted run computed.

Files are written with torch.save and read with torch.load(weights_only=True): tensors, numbers, strings, lists
and dicts only, so reading one never runs code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESUME_FORMAT_VERSION = 1


@dataclass
class ResumePoint:
    """Where a run stood after the last frame of a batch: enough to continue it exactly in a new process.

    pass_idx: 0 for the first propagation pass, 1 for the reverse pass of a `both` job. frame_idx: the last frame
    the pass processed. frames_done: frames reported so far. outputs/tracked: per object position, SAM2's
    conditioning and (pruned) non-conditioning outputs and its frames_tracked entries, tensors on the model's device.
    plan: the job's frame ranges, so a point is never applied to another job shape.
    """

    pass_idx: int
    frame_idx: int
    frames_done: int
    track_ids: list[int]
    plan: list[list[int]]
    outputs: dict
    tracked: dict


def save_resume_point(point: ResumePoint, path: str | Path) -> None:
    """Write a ResumePoint with torch.save (tensors, numbers, strings, lists and dicts only), atomically: a reader
    sees the previous file or the new one, never half of one."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "version": RESUME_FORMAT_VERSION, "pass_idx": point.pass_idx, "frame_idx": point.frame_idx,
        "frames_done": point.frames_done, "track_ids": list(point.track_ids), "plan": point.plan,
        "outputs": point.outputs, "tracked": point.tracked,
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_resume_point(path: str | Path, device: Any) -> ResumePoint:
    """Read a file written by save_resume_point, with weights_only=True (no pickled objects are ever run), onto
    `device`. ValueError when it is not a resume point of this format."""
    import pickle

    import torch

    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise ValueError(f"{Path(path).name} is not a readable tracking state ({exc})") from exc
    try:
        if payload["version"] != RESUME_FORMAT_VERSION:
            raise ValueError(f"tracking state format {payload['version']!r}, expected {RESUME_FORMAT_VERSION}")
        return ResumePoint(int(payload["pass_idx"]), int(payload["frame_idx"]), int(payload["frames_done"]),
                           [int(t) for t in payload["track_ids"]], payload["plan"], dict(payload["outputs"]),
                           dict(payload["tracked"]))
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{Path(path).name} is not a tracking state of this version ({exc})") from exc


