"""The browser frame viewer as a gr.HTML component, and the value it shares with Python.

The drawing, keyboard and mouse handling live in web/static/viewer/ (main.js's header documents the value and the event
interface other code can hook into). Python only builds the value: which video, which tracks, and commands
(`seek`, `reset_pending`); the viewer writes back the frame, the active and selected tracks, and the unsaved seeds.
That value is a ViewerValue (ui/viewer_value.py): read_value() checks what the page sent, handlers answer to_json().
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import gradio as gr

from sam2_tracking.engine.masks import track_colour
from sam2_tracking.store import UpsertKeyframe
from sam2_tracking.types import Box, Click
from ui.auth import user_error
from ui.viewer_value import DatasetInfo, TrackInfo, ViewerValue, ViewerValueError, fit_text
from web.js_modules import on_load_script

VIEWER_JS = Path(__file__).resolve().parents[1] / "web" / "static" / "viewer" / "main.js"  # entry ES module

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
    """The value of a page with no video open, in the page's JSON shape."""
    return ViewerValue().to_json()


def build_viewer(elem_id: str = "frame-viewer") -> gr.HTML:
    return gr.HTML(value=empty_value(), html_template=TEMPLATE, css_template=CSS, js_on_load=on_load_script(VIEWER_JS),
                   elem_id=elem_id, container=False, apply_default_css=False)


def read_value(raw: object) -> ViewerValue:
    """The viewer's value as the page sent it, checked; a bad one is refused with a message (never a server error)."""
    try:
        return ViewerValue.from_json(raw)
    except ViewerValueError as exc:
        raise user_error(f"The page sent a viewer state the server cannot use: {exc}. Reload the page if this "
                         "persists.") from None


def dataset_value(store, dataset_id: int, previous: ViewerValue | None = None, seek: int | None = None,
                  keep_pending: bool = False) -> ViewerValue:
    """A fresh value for a dataset: its tracks, and a new data version so the viewer reloads masks and timeline."""
    return value_for(store.get_dataset(dataset_id), store.list_tracks(dataset_id), previous, seek, keep_pending)


def value_for(dataset, tracks, previous: ViewerValue | None = None, seek: int | None = None,
              keep_pending: bool = False) -> ViewerValue:
    """dataset_value from records already read (a Dataset and its Tracks): the person's frame, tracks and, with
    keep_pending, unsaved seeds stay when `previous` shows the same dataset."""
    previous = previous or ViewerValue()
    same = previous.dataset_id == dataset.dataset_id
    value = ViewerValue(
        dataset=DatasetInfo(dataset.dataset_id, fit_text(dataset.name), dataset.frame_count, dataset.width,
                            dataset.height, dataset.fps),
        revision=f"{dataset.revision}-{time.time():.6f}",  # an opaque data version: any change reloads the viewer
        base_revision=dataset.revision,
        tracks=tuple(TrackInfo(t.track_id, fit_text(t.label), colour_hex(t.track_id), t.begin, t.end)
                     for t in tracks),
        job=previous.job if same else None,
    )
    if same:
        value = dataclasses.replace(value, active=previous.active, selected=previous.selected,
                                    hidden=previous.hidden, frame_idx=previous.frame_idx)
    if keep_pending and same:
        value = dataclasses.replace(value, pending=previous.pending)
    else:
        value = dataclasses.replace(value, reset_pending=True)
    if value.active is None and tracks:
        value = dataclasses.replace(value, active=tracks[0].track_id)
    frame_idx = value.frame_idx if seek is None else int(seek)
    return dataclasses.replace(value, seek=frame_idx, frame_idx=frame_idx)


def _clamp(value: float, limit: float) -> float:
    return min(max(value, 0.0), limit)


def pending_edits(value: ViewerValue, width: int, height: int, frame_count: int) -> list[UpsertKeyframe]:
    """The viewer's unsaved seeds as store edits, checked against the video: frames in it, coordinates clamped to
    the frame (from_json checked their types and sizes)."""
    edits = []
    for seed in value.pending:
        if not seed.frame_idx < frame_count:
            raise ValueError(f"unsaved edit on frame {str(seed.frame_idx)!r}: not a frame of this video")
        box = None
        if seed.box is not None:
            x1, y1, x2, y2 = (_clamp(v, lim) for v, lim in zip(seed.box, (width, height, width, height),
                                                                 strict=True))
            if x2 - x1 < 2 or y2 - y1 < 2:
                raise ValueError(f"frame {seed.frame_idx}, track {seed.track_id}: the box is empty; drag over the "
                                 "object")
            box = Box(x1, y1, x2, y2)
        clicks = tuple(Click(_clamp(x, width - 1), _clamp(y, height - 1), positive) for x, y, positive in seed.clicks)
        if box is None and not clicks:
            continue
        edits.append(UpsertKeyframe(track_id=seed.track_id, frame_idx=seed.frame_idx, box=box, clicks=clicks))
    return sorted(edits, key=lambda e: (e.frame_idx, e.track_id))
