"""Data routes for the browser frame viewer (web/static/viewer/), mounted on Gradio's own FastAPI app.

The viewer draws everything itself; the server only hands out data:
  GET /viewer/frame/{dataset_id}/{frame_idx}.jpg        one frame as JPEG (cached, encoded once)
  GET /viewer/masks/{dataset_id}?start=&stop=            every track's features on frames [start, stop) (COCO RLE)
  GET /viewer/timeline/{dataset_id}                      per track: keyframes, tracked frames, absent frames

Every route runs Gradio's own login check (the same session cookie the page uses): a page that may not load the
app may not read its frames either. Every logged-in account may open every video (there are no per-video rights
yet); an unknown video or frame is a 404, not an error page. Ids arrive as text and are parsed by web.ids: one that
no row can hold ("abc", -1, 2^63) is a 404 too, before the store is asked.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

# At module level: FastAPI reads the handlers' annotations (strings here) from this module's globals.
from fastapi import HTTPException, Request, Response
from fastapi.responses import JSONResponse

from web.ids import query_index, route_id

MAX_MASK_RANGE = 500  # frames per /masks request: a bounded response whatever the client asks for


class JpegCache:
    """Encoded frames, most recent last. Encoding a 1080p frame costs ~20 ms; the viewer asks for neighbours often."""

    def __init__(self, max_items: int = 256) -> None:
        self.max_items = max_items
        self._items: OrderedDict[tuple, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: tuple, data: bytes) -> None:
        with self._lock:
            self._items[key] = data
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)


def current_user(app, request) -> str | None:
    """The logged-in user of a request, read the way Gradio's own /login_check reads it; None if not logged in."""
    cookie_id = getattr(app, "cookie_id", None)
    if cookie_id is None:
        return None
    token = request.cookies.get(f"access-token-{cookie_id}") or request.cookies.get(
        f"access-token-unsecure-{cookie_id}")
    return app.tokens.get(token) if token else None


def require_login(request: Request) -> None:
    """401 unless the request carries the login of the page (Gradio's session cookie). The app is read from the
    request, not captured: the routes are declared before launch() builds Gradio's app, so that they answer from
    the server's first request on."""
    app = request.app
    if getattr(app, "auth", None) is None and getattr(app, "auth_dependency", None) is None:
        return  # the app runs without logins (local trial)
    if current_user(app, request) is None:
        raise HTTPException(status_code=401, detail="Log in first.")


def features_payload(store, dataset, start: int, stop: int) -> dict:
    """{frame_idx: [feature, ...]} for every track of the dataset on frames [start, stop), as plain JSON."""
    frames: dict[int, list] = {}
    for track in store.list_tracks(dataset.dataset_id):
        for feature in store.get_features(track.track_id, start, stop):
            box = feature.box
            frames.setdefault(feature.frame_idx, []).append({
                "track_id": track.track_id,
                "present": feature.present,
                "keyframe": feature.keyframe,
                "job_id": feature.job_id,
                "score": feature.score,
                "counts": feature.rle["counts"] if feature.rle else None,
                "box": [box.x1, box.y1, box.x2, box.y2] if box is not None else None,
                "clicks": [[c.x, c.y, bool(c.positive)] for c in feature.clicks],
            })
    return {"dataset_id": dataset.dataset_id, "revision": dataset.revision, "start": start, "stop": stop,
            "size": [dataset.height, dataset.width], "frames": frames}


def timeline_payload(store, dataset) -> dict:
    """Per track, the frames a timeline marks. Frame lists, not ranges: a track has at most frame_count entries."""
    tracks = []
    for track in store.list_tracks(dataset.dataset_id):
        keyframes, tracked, absent = [], [], []
        for feature in store.get_features(track.track_id):
            if not feature.present:
                absent.append(feature.frame_idx)
            elif feature.keyframe:
                keyframes.append(feature.frame_idx)
            else:
                tracked.append(feature.frame_idx)
        tracks.append({"track_id": track.track_id, "label": track.label, "begin": track.begin, "end": track.end,
                       "keyframes": keyframes, "tracked": tracked, "absent": absent})
    return {"dataset_id": dataset.dataset_id, "frame_count": dataset.frame_count, "revision": dataset.revision,
            "tracks": tracks}


def mount_viewer_routes(router, store, frames, packs=None) -> None:
    """Add the viewer's routes to a FastAPI router whose routes go into Gradio's app when it is built (ui.app_ui).
    packs (web.frame_pack.FramePacks) answers from frames encoded ahead of time; None decodes every frame on demand."""
    from starlette.concurrency import run_in_threadpool

    from sam2_tracking.store import NotFound

    jpegs = JpegCache()

    def dataset_or_404(text: str):
        dataset_id = route_id(text, "video")
        try:
            return store.get_dataset(dataset_id)
        except NotFound:
            raise HTTPException(status_code=404, detail=f"No video {dataset_id}.") from None

    def decoded_jpeg(dataset, frame_idx: int) -> bytes:
        from web.frame_pack import encode_jpeg

        key = (dataset.dataset_id, dataset.path, frame_idx)
        data = jpegs.get(key)
        if data is None:
            data = encode_jpeg(frames.read(dataset.path, frame_idx))
            jpegs.put(key, data)
        return data

    async def frame_jpeg(dataset_id: str, frame_idx: str, request: Request) -> Response:
        # Async so that a request the browser has given up on (a prefetch overtaken by a jump elsewhere) is dropped
        # before it decodes: the decoder of a video serves one request at a time.
        require_login(request)
        index = route_id(frame_idx, "frame")
        dataset = await run_in_threadpool(dataset_or_404, dataset_id)
        if not 0 <= index < dataset.frame_count:
            raise HTTPException(status_code=404, detail=f"Frame {index} is outside the video.")
        data = await run_in_threadpool(packs.get, dataset.dataset_id, dataset.path, index) if packs else None
        if data is None:
            if await request.is_disconnected():
                return Response(status_code=499)  # nginx's "client closed request": nobody reads this answer
            data = await run_in_threadpool(decoded_jpeg, dataset, index)
        # Frames never change for a given dataset id, so the browser may keep them for the session.
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    def masks(dataset_id: str, request: Request, start: str | None = None, stop: str | None = None) -> JSONResponse:
        require_login(request)
        dataset = dataset_or_404(dataset_id)
        start = max(0, min(query_index(start, "start", 0), dataset.frame_count))
        stop = max(start, min(query_index(stop, "stop", 1), dataset.frame_count, start + MAX_MASK_RANGE))
        return JSONResponse(features_payload(store, dataset, start, stop), headers={"Cache-Control": "no-store"})

    def timeline(dataset_id: str, request: Request) -> JSONResponse:
        require_login(request)
        return JSONResponse(timeline_payload(store, dataset_or_404(dataset_id)), headers={"Cache-Control": "no-store"})

    router.add_api_route("/viewer/frame/{dataset_id}/{frame_idx}.jpg", frame_jpeg, methods=["GET"])
    router.add_api_route("/viewer/masks/{dataset_id}", masks, methods=["GET"])
    router.add_api_route("/viewer/timeline/{dataset_id}", timeline, methods=["GET"])
