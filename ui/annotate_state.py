"""The Annotate tab's per-browser-session state and the pure operations on it (no Gradio, no store writes).

State is a plain dict held in gr.State:
  dataset_id, revision (the dataset revision the edits are based on), frame_idx, track_id (selected),
  tool ("box" | "positive" | "negative"), box_anchor ([x, y] after the first click of a box, else None),
  pending {frame_idx: {track_id: {"box": [x1, y1, x2, y2] | None, "clicks": [[x, y, positive]], "mask": array | None}}},
  job_id (the job this session started last, for progress).
"""

from __future__ import annotations

import numpy as np

from sam2_tracking.store import UpsertKeyframe
from sam2_tracking.types import Box, Click

TOOLS = {"Box (two clicks: corners)": "box", "Positive click": "positive", "Negative click": "negative"}


def new_state() -> dict:
    return {"dataset_id": None, "revision": 0, "frame_idx": 0, "track_id": None, "tool": "box",
            "box_anchor": None, "pending": {}, "job_id": None}


def has_unsaved(state: dict) -> bool:
    return any(state["pending"].values())


def pending_on_frame(state: dict, frame_idx: int) -> dict:
    return state["pending"].get(frame_idx, {})


def _seed_for(state: dict) -> dict:
    frame = state["pending"].setdefault(state["frame_idx"], {})
    return frame.setdefault(state["track_id"], {"box": None, "clicks": [], "mask": None})


def apply_click(state: dict, x: float, y: float, width: int, height: int) -> str:
    """Apply a click on the frame with the current tool; return a hint for the person. Mutates state."""
    if state["track_id"] is None:
        raise ValueError("Select or create a track first.")
    x = min(max(float(x), 0.0), width - 1.0)
    y = min(max(float(y), 0.0), height - 1.0)
    if state["tool"] == "box":
        if state["box_anchor"] is None:
            state["box_anchor"] = [x, y]
            return "First corner set: click the opposite corner."
        (ax, ay), state["box_anchor"] = state["box_anchor"], None
        x1, x2 = sorted((ax, x))
        y1, y2 = sorted((ay, y))
        if x2 - x1 < 2 or y2 - y1 < 2:
            raise ValueError("That box is empty: click two opposite corners of the object.")
        seed = _seed_for(state)
        seed["box"], seed["mask"] = [x1, y1, x2 + 1, y2 + 1], None
        return f"Box set on frame {state['frame_idx']}. Save to keep it."
    seed = _seed_for(state)
    seed["mask"] = None
    seed["clicks"].append([x, y, state["tool"] == "positive"])
    kind = "positive" if state["tool"] == "positive" else "negative"
    return f"{kind.capitalize()} click added on frame {state['frame_idx']}. Save to keep it."


def set_mask(state: dict, mask: np.ndarray) -> str:
    if state["track_id"] is None:
        raise ValueError("Select or create a track first.")
    if mask is None or not mask.any():
        raise ValueError("The painted mask is empty: paint over the object first.")
    seed = _seed_for(state)
    seed.update(box=None, clicks=[], mask=mask.astype(bool))
    return f"Mask set on frame {state['frame_idx']}. Save to keep it."


def clear_frame(state: dict) -> None:
    state["box_anchor"] = None
    frame = state["pending"].get(state["frame_idx"], {})
    frame.pop(state["track_id"], None)


def pending_edits(state: dict) -> list[UpsertKeyframe]:
    """The unsaved seeds as store edits (one keyframe per track and frame)."""
    edits = []
    for frame_idx, tracks in sorted(state["pending"].items()):
        for track_id, seed in sorted(tracks.items()):
            box = Box(*seed["box"]) if seed.get("box") else None
            clicks = tuple(Click(x, y, bool(positive)) for x, y, positive in seed.get("clicks", ()))
            if box is None and seed.get("mask") is None and not clicks:
                continue
            edits.append(UpsertKeyframe(track_id=int(track_id), frame_idx=int(frame_idx), box=box,
                                        mask=seed.get("mask"), clicks=clicks))
    return edits


def mask_from_editor(value, height: int, width: int) -> np.ndarray | None:
    """The painted pixels of a gr.ImageEditor value (any layer, any colour) as a bool (height, width) mask."""
    if not value:
        return None
    layers = value.get("layers") or []
    mask = np.zeros((height, width), dtype=bool)
    for layer in layers:
        array = np.asarray(layer)
        if array.ndim != 3 or array.shape[:2] != (height, width):
            continue
        painted = array[..., 3] > 0 if array.shape[2] == 4 else array.any(axis=2)
        mask |= painted
    return mask
