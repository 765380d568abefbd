"""A consumer's local copy of a dataset's video: the path itself when this machine has it, else a verified copy
fetched from the app (`GET {SAM2T_APP_URL}/worker/video/{dataset_id}` with SAM2T_WORKER_TOKEN) and cached by
content hash under `{SAM2T_DATA_DIR}/video-cache/`, so consumers on other machines need no shared disk.

The app sends the file's SHA-256 first (HEAD); a cached copy with that name was verified when it was written, so a
video is fetched once per machine and a changed file (a new hash) is fetched again. The download is the models' one
(sam2_tracking.download): a `.part` file resumed with a Range request after a dropped connection, renamed into place
only when the whole file's hash matches. A lock per hash keeps two consumers on one machine from fetching the same
file twice.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from sam2_tracking.file_lock import file_lock

ROUTE = "/worker/video/{dataset_id}"
HASH_HEADER = "X-Content-SHA256"
CACHE_FOLDER = "video-cache"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,8}")


class VideoFetchError(RuntimeError):
    """The video could not be fetched; the message says what to fix."""


def local_video_path(settings, dataset) -> Path:
    """A path this process can open for `dataset`: its own path if present here, else the fetched, verified copy."""
    path = Path(dataset.path)
    if path.exists():
        return path
    if not (settings.app_url and settings.worker_token):
        raise VideoFetchError(
            f"the video {dataset.path} is not on this machine: set SAM2T_APP_URL and SAM2T_WORKER_TOKEN for this "
            "consumer so it fetches videos from the app, or give it the app's data folder")
    return fetch_video(settings.app_url, settings.worker_token, dataset.dataset_id, settings.data_dir / CACHE_FOLDER,
                       suffix=path.suffix, max_bytes=settings.max_upload_bytes,
                       connect_timeout_s=settings.download_connect_timeout_seconds,
                       read_timeout_s=settings.download_read_timeout_seconds)


def fetch_video(app_url: str, token: str, dataset_id: int, cache_dir: Path, suffix: str = "", max_bytes: int = 0,
                connect_timeout_s: float = 15, read_timeout_s: float = 60) -> Path:
    """The cached copy of dataset `dataset_id`'s file, fetching it first if this machine does not have it yet."""
    import httpx

    from sam2_tracking.download import ChecksumMismatch, DownloadError, HTTPStatusError, Limits, download_resumable

    url = app_url.rstrip("/") + ROUTE.format(dataset_id=int(dataset_id))
    headers = {"Authorization": f"Bearer {token}"}
    suffix = suffix if _SUFFIX.fullmatch(suffix or "") else ""
    timeout = httpx.Timeout(connect=connect_timeout_s, read=read_timeout_s, write=read_timeout_s, pool=connect_timeout_s)
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        try:
            head = client.head(url, headers=headers)
        except httpx.HTTPError as exc:
            raise VideoFetchError(f"could not reach the app at {app_url} (SAM2T_APP_URL): {exc}") from exc
        _check_status(head.status_code, url)
        sha = head.headers.get(HASH_HEADER, "")
        if not _SHA256.fullmatch(sha):
            raise VideoFetchError(f"{url} sent no content hash: is SAM2T_APP_URL the app's address?")
        size = int(head.headers.get("content-length", "-1"))
        if size < 0 or (max_bytes and size > max_bytes):
            raise VideoFetchError(f"{url} declares {size} bytes, over the limit of {max_bytes} "
                                  "(SAM2T_MAX_UPLOAD_BYTES) or unknown")
        cache_dir.mkdir(parents=True, exist_ok=True)
        target = cache_dir / f"{sha}{suffix}"
        limits = Limits(max_bytes or size, "SAM2T_MAX_UPLOAD_BYTES", connect_timeout_s, read_timeout_s)
        with file_lock(cache_dir / f"{sha}.lock"):
            if target.is_file():
                return target
            part = cache_dir / f"{sha}.part"
            try:
                download_resumable(client, url, part, limits, headers=headers, expected_size=size,
                                   expected_sha256=sha)
            except HTTPStatusError as exc:
                _check_status(exc.status, url)
                raise VideoFetchError(str(exc)) from exc
            except ChecksumMismatch as exc:
                raise VideoFetchError(f"the copy of {url} does not match the app's hash (the file changed while it "
                                      "was sent?); the job will fetch it again when it is retried") from exc
            except DownloadError as exc:
                raise VideoFetchError(f"could not fetch the video from the app: {exc}") from exc
            os.replace(part, target)
        return target


def _check_status(status: int, url: str) -> None:
    if status == 401:
        raise VideoFetchError(f"the app refused this consumer's SAM2T_WORKER_TOKEN ({url}): set the app's token")
    if status == 404:
        raise VideoFetchError(f"the app has no video file for {url} (is SAM2T_WORKER_TOKEN set on the app, and is the "
                              "dataset a single file?)")
    if status not in (200, 206):
        raise VideoFetchError(f"{url} answered HTTP {status}")
