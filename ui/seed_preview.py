"""The instant SAM2 preview on the seed frame: a small panel under the frame viewer and its data route.

web/static/preview/ listens to the viewer's "pending" events (box drags, +/- clicks), posts the active track's
unsaved box and clicks on the current frame to POST /viewer/preview/{dataset_id}, and draws the answer as the
viewer's pending mask. The route hands the request to queues.seed_preview (a consumer of the chosen queue computes it
with the same SAM2 calls a job's seed goes through) and answers with the mask as COCO RLE counts, or a message.
"Accept" saves the seed like any edit (its box and clicks become the keyframe); "Clear" drops it. Nothing is saved
by a preview.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

# At module level: FastAPI reads the handler's annotations (strings here) from this module's globals.
from fastapi import Body, Request
from fastapi.responses import JSONResponse

from web.js_modules import on_load_script

PREVIEW_JS = Path(__file__).resolve().parents[1] / "web" / "static" / "preview" / "main.js"  # entry ES module

TEMPLATE = """
<div class="pv-root">
  <label class="pv-toggle"><input type="checkbox" class="pv-on" checked> Live SAM2 preview</label>
  <button type="button" class="pv-accept" title="Save this seed as the keyframe (A)">Accept (A)</button>
  <button type="button" class="pv-clear" title="Drop this seed and its preview (C)">Clear (C)</button>
  <span class="pv-status"></span>
</div>
"""

CSS = """
.pv-root { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; font-size: 13px; }
.pv-root button { padding: 2px 10px; border: 1px solid #888; border-radius: 4px; background: transparent;
  color: inherit; cursor: pointer; }
.pv-status { font-family: monospace; white-space: normal; overflow-wrap: anywhere; }
.pv-status.pv-error { color: #e53935; }
"""


def build_preview_panel(elem_id: str = "seed-preview") -> gr.HTML:
    return gr.HTML(value={}, html_template=TEMPLATE, css_template=CSS, js_on_load=on_load_script(PREVIEW_JS),
                   elem_id=elem_id, container=False, apply_default_css=False)


def mount_preview_route(router, settings, store) -> None:
    """Add POST /viewer/preview/{dataset_id} to the router of the viewer's routes (web.routes).

    Body: {"frame_idx": int, "track_id": int | null, "box": [x1, y1, x2, y2] | null, "clicks": [[x, y, positive]],
    "model": str, "queue": str}. Answer: {"present", "score", "counts" (COCO RLE at video size, or null), "box",
    "encoded", "compute_ms", "wait_ms"}; a request that cannot be served gets 400 {"error": message}, a URL id no row
    can hold 404 {"detail": message} (web.ids).
    """
    from queues.seed_preview import PreviewError, request_preview
    from ui.admin import tracking_on
    from web.ids import route_id
    from web.routes import require_login

    def preview(dataset_id: str, request: Request, payload: dict = Body(...)) -> JSONResponse:  # noqa: B008
        require_login(request)
        dataset_id = route_id(dataset_id, "video")  # 404 for an id no row can hold (web.ids)
        if not tracking_on(store):
            return _refused("SAM2 is turned off: an admin turns on SAM2 and mask tracking in the Admin tab.")
        if not isinstance(payload, dict):
            return _refused("not a preview request")
        model = payload.get("model") or _first_ready_model(store) or ""  # "": request_preview says what to do
        queue = payload.get("queue") or settings.queue_names[0]
        if not isinstance(model, str) or not isinstance(queue, str):
            return _refused("choose a model and a queue first")
        box, clicks = _as_saved(store, dataset_id, payload.get("track_id"), payload.get("frame_idx"),
                                payload.get("box"), payload.get("clicks") or [])
        try:
            answer = request_preview(settings, store, queue, model, dataset_id, payload.get("frame_idx"), box=box,
                                     clicks=clicks, track_id=payload.get("track_id"))
        except PreviewError as exc:
            return _refused(str(exc))
        counts = answer.rle["counts"] if answer.rle is not None else None
        return JSONResponse({
            "dataset_id": answer.dataset_id, "frame_idx": answer.frame_idx, "present": answer.present,
            "score": answer.score, "counts": counts, "box": answer.box, "encoded": answer.encoded,
            "compute_ms": round(answer.compute_ms, 1), "wait_ms": round(answer.wait_ms, 1),
        }, headers={"Cache-Control": "no-store"})

    router.add_api_route("/viewer/preview/{dataset_id}", preview, methods=["POST"])


def _as_saved(store, dataset_id: int, track_id, frame_idx, box, clicks):
    """The prompts the keyframe will hold once saved, so the preview is of what the job gets: Save adds clicks
    without a new box to the frame's saved keyframe (its box and earlier clicks stay; ui.annotate's
    _merge_with_saved), while a new box replaces it. Values are checked by request_preview afterwards."""
    from sam2_tracking.store import NotFound

    ids = (dataset_id, track_id, frame_idx)
    if box is not None or not all(isinstance(v, int) and 0 <= v < 2**62 for v in ids):
        return box, clicks  # request_preview refuses what is not a valid id with a message
    try:
        if store.get_track(track_id).dataset_id != dataset_id:
            return box, clicks
    except NotFound:
        return box, clicks
    saved = store.get_features(track_id, frame_idx, frame_idx + 1)
    if not saved or not saved[0].keyframe or saved[0].frame_idx != frame_idx:
        return box, clicks
    old = saved[0]
    old_box = old.box.as_list() if old.box is not None else None
    return old_box, [[c.x, c.y, c.positive] for c in old.clicks] + list(clicks)


def _refused(message: str) -> JSONResponse:
    return JSONResponse({"error": message[:1].upper() + message[1:]}, status_code=400,
                        headers={"Cache-Control": "no-store"})


def _first_ready_model(store) -> str | None:
    ready = [m.name for m in store.list_models() if m.usable]
    return ready[0] if ready else None
