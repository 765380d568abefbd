"""The one route a consumer on another machine needs from the app: a dataset's video file, for the worker token.

    GET|HEAD /worker/video/{dataset_id}     Authorization: Bearer $SAM2T_WORKER_TOKEN

It serves only the file a dataset row points at (never a path from the request), with Range support (Starlette's
FileResponse) so a cut download resumes, and the file's SHA-256 in `X-Content-SHA256` so consumers cache it by
content and notice a changed file. Without SAM2T_WORKER_TOKEN the route does not exist (404): a laptop or a lab server
whose consumers share the disk never exposes it. People's logins do not open it and the token opens nothing else.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from pathlib import Path

# At module level: FastAPI reads the handler's annotations (strings here) from this module's globals.
from fastapi import HTTPException, Request
from fastapi.responses import FileResponse

from sam2_tracking.engine.remote_video import HASH_HEADER, ROUTE
from web.ids import route_id


class _HashCache:
    """SHA-256 per (path, size, mtime): hashing a 4 GB video takes seconds, and every consumer asks for it."""

    def __init__(self) -> None:
        self._known: dict[tuple, str] = {}
        self._lock = threading.Lock()

    def sha256(self, path: Path) -> str:
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            if key in self._known:
                return self._known[key]
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        with self._lock:
            self._known[key] = digest.hexdigest()
        return self._known[key]


def token_matches(expected: str, authorization: str | None) -> bool:
    """Constant-time check of an `Authorization: Bearer ...` header against the configured token."""
    if not expected or not authorization:
        return False
    scheme, _, given = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected.encode())


def mount_worker_video_route(router, settings, store) -> None:
    """Add the route to a FastAPI router (ui.app_ui puts its routes into Gradio's app); nothing at all when no worker
    token is configured."""
    if not settings.worker_token:
        return
    hashes = _HashCache()

    @router.api_route(ROUTE, methods=["GET", "HEAD"], include_in_schema=False)
    def worker_video(dataset_id: str, request: Request):
        if not token_matches(settings.worker_token, request.headers.get("authorization")):
            raise HTTPException(status_code=401, detail="a worker token is required",
                                headers={"WWW-Authenticate": "Bearer"})
        from sam2_tracking.store import NotFound

        dataset_id = route_id(dataset_id, "dataset")  # 404 for an id no row can hold, before the store sees it
        try:
            dataset = store.get_dataset(dataset_id)
        except NotFound as exc:
            raise HTTPException(status_code=404, detail=f"no dataset {dataset_id}") from exc
        path = Path(dataset.path)
        if not path.is_file():
            # An image sequence added as a folder has no single file to send; only shared disks serve those.
            raise HTTPException(status_code=404, detail=f"dataset {dataset_id} is not a single file on the app's disk")
        sha = hashes.sha256(path)
        return FileResponse(path, media_type="application/octet-stream", filename=f"{sha}{path.suffix}",
                            headers={HASH_HEADER: sha, "ETag": f'"{sha}"', "Cache-Control": "no-store"})
