"""The browser frame viewer as a gr.HTML component, and the value it shares with Python.

The drawing, keyboard and mouse handling live in web/static/viewer.js (its header documents the value and the event
interface other code can hook into). Python only builds the value: which video, which tracks, and commands
(`seek`, `reset_pending`); the viewer writes back the frame, the active and selected tracks, and the unsaved seeds.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import gradio as gr

from sam2_tracking.engine.masks import track_colour
from sam2_tracking.store import UpsertKeyframe
from sam2_tracking.types import Box, Click

VIEWER_JS = Path(__file__).resolve().parents[1] / "web" / "static" / "viewer.js"
MAX_CLICKS_PER_SEED = 64

TEMPLATE = """
<div class="sv-root" tabindex="0">
  <div class="sv-stage"><canvas class="sv-frame" width="16" height="9"></canvas></div>
  <div class="sv-bar">
    <button type="button" class="sv-back10" title="Back 10 frames (shift+left)">-10</button>
    <button type="button" class="sv-prev" title="Previous frame (left)">&lsaquo;</button>
    <button type="button" class="sv-play" title="Play / pause (space)">play/pause</button>
    <button type="button" class="sv-next" title="Next frame (right)">&rsaquo;</button>
    <button type="button" class="sv-fwd10" title="Forward 10 frames (shift+right)">+10</button>
    <span class="sv-info"></span>
  </div>
  <canvas class="sv-timeline" height="20"></canvas>
  <div class="sv-absent"></div>
  <div class="sv-help">Drag: box (the selected track's box, saved or not: drag a corner to resize, inside to
    move). Click: + point, shift-click: - point. Left/right: frame (shift: 10).
    Space: play. S: save. T: track. N: next track.</div>
  <div class="sv-tracks"></div>
</div>
"""

CSS = """
.sv-root { display: flex; flex-direction: column; gap: 6px; outline: none; }
.sv-stage { background: #111; line-height: 0; }
.sv-frame { width: 100%; height: auto; cursor: crosshair; user-select: none; }
.sv-bar { display: flex; gap: 6px; align-items: center; flex-wrap: wrap; }
.sv-bar button, .sv-eye, .sv-jump { padding: 2px 8px; border: 1px solid #888; border-radius: 4px;
  background: transparent; color: inherit; cursor: pointer; }
.sv-info { margin-left: 8px; font-family: monospace; }
.sv-timeline { width: 100%; cursor: pointer; }
.sv-help { font-size: 12px; opacity: 0.75; }
.sv-absent { font-size: 12px; color: #e53935; }
.sv-track { display: flex; gap: 8px; align-items: center; padding: 2px 4px; cursor: pointer; border-radius: 4px; }
.sv-track.sv-active { outline: 2px solid #4a90e2; }
.sv-swatch { width: 14px; height: 14px; border-radius: 3px; display: inline-block; }
.sv-name { flex: 1; }
"""


def colour_hex(track_id: int) -> str:
    r, g, b = track_colour(track_id)
    return f"#{r:02x}{g:02x}{b:02x}"


def empty_value() -> dict:
    return {"dataset": None, "revision": 0, "base_revision": 0, "tracks": [], "active": None, "selected": [],
            "hidden": [], "frame_idx": 0, "pending": {}, "seek": None, "reset_pending": False, "job": None,
            "poll": False}


def build_viewer(elem_id: str = "frame-viewer") -> gr.HTML:
    return gr.HTML(value=empty_value(), html_template=TEMPLATE, css_template=CSS, js_on_load=VIEWER_JS.read_text(),
                   elem_id=elem_id, container=False, apply_default_css=False)


def dataset_value(store, dataset_id: int, previous: dict | None = None, seek: int | None = None,
                  keep_pending: bool = False) -> dict:
    """A fresh value for a dataset: its tracks, and a new data version so the viewer reloads masks and timeline."""
    previous = normalise(previous)
    dataset = store.get_dataset(dataset_id)
    tracks = store.list_tracks(dataset_id)
    same = previous["dataset"] is not None and previous["dataset"]["id"] == dataset_id
    value = empty_value()
    value.update(
        dataset={"id": dataset.dataset_id, "name": dataset.name, "frame_count": dataset.frame_count,
                 "width": dataset.width, "height": dataset.height, "fps": dataset.fps},
        revision=f"{dataset.revision}-{time.time():.6f}",  # an opaque data version: any change reloads the viewer
        base_revision=dataset.revision,
        tracks=[{"id": t.track_id, "label": t.label, "colour": colour_hex(t.track_id), "begin": t.begin,
                 "end": t.end} for t in tracks],
        job=previous["job"] if same else None,
    )
    if same:
        value.update(active=previous["active"], selected=previous["selected"], hidden=previous["hidden"],
                     frame_idx=previous["frame_idx"])
    if keep_pending and same:
        value["pending"] = previous["pending"]
    else:
        value["reset_pending"] = True
    if value["active"] is None and tracks:
        value["active"] = tracks[0].track_id
    value["seek"] = value["frame_idx"] if seek is None else int(seek)
    value["frame_idx"] = value["seek"]
    return value


def normalise(value) -> dict:
    """The viewer's value as sent by the browser, with every field present and of the right type (it is untrusted)."""
    base = empty_value()
    if not isinstance(value, dict):
        return base
    base.update({k: value[k] for k in base if k in value})
    if not isinstance(base["dataset"], dict) or not isinstance(base["dataset"].get("id"), int):
        base["dataset"] = None
    for key in ("active", "frame_idx"):
        base[key] = _int_or_none(base[key])
    base["frame_idx"] = base["frame_idx"] or 0
    base["selected"] = [i for i in map(_int_or_none, base["selected"] or []) if i is not None]
    base["hidden"] = [i for i in map(_int_or_none, base["hidden"] or []) if i is not None]
    base["base_revision"] = _int_or_none(base["base_revision"]) or 0
    if not isinstance(base["pending"], dict):
        base["pending"] = {}
    return base


def _int_or_none(value) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _number(value, limit: float, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{where}: not a number")
    return min(max(float(value), 0.0), limit)


def pending_edits(value: dict, width: int, height: int, frame_count: int) -> list[UpsertKeyframe]:
    """The viewer's unsaved seeds as store edits, checked: frames in the video, coordinates clamped to the frame."""
    edits = []
    for frame_key, tracks in value["pending"].items():
        frame_idx = _int_or_none(frame_key)
        if frame_idx is None or not 0 <= frame_idx < frame_count or not isinstance(tracks, dict):
            raise ValueError(f"unsaved edit on frame {frame_key!r}: not a frame of this video")
        for track_key, seed in tracks.items():
            track_id = _int_or_none(track_key)
            if track_id is None or not isinstance(seed, dict):
                raise ValueError(f"unsaved edit for track {track_key!r}: not a track id")
            box = None
            if seed.get("box") is not None:
                raw = seed["box"]
                if not isinstance(raw, list) or len(raw) != 4:
                    raise ValueError(f"frame {frame_idx}, track {track_id}: a box has four numbers")
                x1, y1, x2, y2 = (_number(v, lim, "box") for v, lim in zip(raw, (width, height, width, height),
                                                                             strict=True))
                if x2 - x1 < 2 or y2 - y1 < 2:
                    raise ValueError(f"frame {frame_idx}, track {track_id}: the box is empty; drag over the object")
                box = Box(x1, y1, x2, y2)
            raw_clicks = seed.get("clicks") or []
            if not isinstance(raw_clicks, list) or len(raw_clicks) > MAX_CLICKS_PER_SEED:
                raise ValueError(f"frame {frame_idx}, track {track_id}: at most {MAX_CLICKS_PER_SEED} clicks")
            clicks = []
            for click in raw_clicks:
                if not isinstance(click, list) or len(click) != 3:
                    raise ValueError(f"frame {frame_idx}, track {track_id}: a click is [x, y, positive]")
                clicks.append(Click(_number(click[0], width - 1, "click"), _number(click[1], height - 1, "click"),
                                    bool(click[2])))
            if box is None and not clicks:
                continue
            edits.append(UpsertKeyframe(track_id=track_id, frame_idx=frame_idx, box=box, clicks=tuple(clicks)))
    return sorted(edits, key=lambda e: (e.frame_idx, e.track_id))


def has_unsaved(value: dict) -> bool:
    return any(isinstance(tracks, dict) and any(tracks.values()) for tracks in normalise(value)["pending"].values())
