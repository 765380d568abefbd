"""The one resumable HTTP download: model checkpoints (sam2_tracking.models.fetch) and the videos a consumer on another
machine fetches from the app (sam2_tracking.engine.remote_video) both come through here.

A download goes into a `.part` file that survives a dropped connection, a stall, a cancel or a killed process: the next
request asks for the rest with a Range header, and a server that ignores it sends the whole file again. A size cap is
checked on the length the server declares and again on the bytes that actually arrive. The file is hashed once it is
complete and checked against what the caller knows (size, SHA-256). Errors are DownloadError with a message that names
the URL; the callers re-raise them as their own errors (ModelError, VideoFetchError), adding what only they know.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHUNK_BYTES = 1 << 20
RESUMES = 3  # automatic resumes after a dropped connection or a stall within one download


class DownloadError(RuntimeError):
    """The download failed; the message says why and names the URL."""


class DownloadCancelled(DownloadError):  # noqa: N818 - reads like TrackingCancelled
    """should_cancel() asked the download to stop; the partial file is kept for a later resume."""


class ChecksumMismatch(DownloadError):  # noqa: N818 - names what happened, like DownloadCancelled
    """The whole file's SHA-256 is not the one expected; the file was deleted, so the next try starts clean."""


class HTTPStatusError(DownloadError):
    """The server answered something other than 200/206 (status: its code), e.g. 401 or 404."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    """Caps of one download. cap_setting names the setting behind max_bytes in the messages."""

    max_bytes: int
    cap_setting: str
    connect_timeout_s: float = 15.0
    read_timeout_s: float = 60.0  # the longest wait for the next bytes, not for the whole file

    def timeout(self) -> Any:
        import httpx

        return httpx.Timeout(self.read_timeout_s, connect=self.connect_timeout_s)


def timeout_message(url: str, exc: Exception, limits: Limits) -> str:
    """What a timeout means, with the setting that sets it."""
    import httpx

    if isinstance(exc, httpx.ConnectTimeout):
        return (f"could not connect to {url} within {limits.connect_timeout_s:g} s "
                "(SAM2T_DOWNLOAD_CONNECT_TIMEOUT_SECONDS): check the address and the server's network")
    return (f"{url} sent nothing for {limits.read_timeout_s:g} s (SAM2T_DOWNLOAD_READ_TIMEOUT_SECONDS); "
            "the server or the network stalled: try again later")


def download_resumable(
    client: Any,
    url: str,
    part: Path,
    limits: Limits,
    *,
    headers: dict[str, str] | None = None,
    expected_size: int | None = None,
    expected_sha256: str | None = None,
    on_progress: Callable[[int, int | None], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> tuple[int, str]:
    """Download (or resume) `url` into `part` with the httpx `client`; return (size, sha256) of the whole file.

    expected_size / expected_sha256: what the file must be (a mismatch deletes it, so it is never resumed from);
    on_progress(bytes_done, bytes_total_or_None) follows the bytes on disk; should_cancel() is asked before every
    chunk (raises DownloadCancelled, keeping the partial file)."""
    import httpx

    cap = limits.max_bytes
    total = expected_size
    last_error: Exception | None = None
    for _attempt in range(RESUMES + 1):
        have = part.stat().st_size if part.exists() else 0
        if total is not None and have == total:
            break
        if (total is not None and have > total) or have > cap:
            part.unlink()
            have = 0
        request_headers = {**(headers or {}), **({"Range": f"bytes={have}-"} if have else {})}
        try:
            with client.stream("GET", url, headers=request_headers) as response:
                if response.status_code == 416 and have:
                    part.unlink()  # our partial file does not fit this server's file: start over
                    continue
                if response.status_code not in (200, 206):
                    raise HTTPStatusError(f"{url} answered HTTP {response.status_code} {response.reason_phrase}",
                                          response.status_code)
                server_total = _declared_total(response, url, part, have)
                if response.status_code == 200:
                    have = 0  # the server ignored the Range header: it sends the whole file
                if server_total is not None:
                    if expected_size is not None and server_total != expected_size:
                        raise DownloadError(f"{url} is {server_total} bytes, expected {expected_size}: wrong file "
                                            "or URL")
                    if server_total > cap:
                        part.unlink(missing_ok=True)
                        raise DownloadError(f"{url} is {server_total} bytes, over the {cap}-byte cap "
                                            f"({limits.cap_setting}): not the file expected, or raise the cap")
                    total = server_total
                _receive(response, url, part, have, total, limits, on_progress, should_cancel)
            if total is None or part.stat().st_size >= total:
                break
            last_error = DownloadError(f"{url} closed the connection early")
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ReadTimeout, httpx.WriteError) as exc:
            last_error = exc  # a dropped or stalled connection: resume from what we have
        except httpx.TimeoutException as exc:
            raise DownloadError(timeout_message(url, exc, limits)) from exc
        except httpx.HTTPError as exc:
            raise DownloadError(f"could not download {url}: {exc or type(exc).__name__}") from exc
    else:
        if isinstance(last_error, httpx.TimeoutException):
            raise DownloadError(timeout_message(url, last_error, limits) + f" ({RESUMES} resumes tried; the partial "
                                "file is kept)")
        raise DownloadError(f"download of {url} kept failing after {RESUMES} resumes (the partial file is kept): "
                            f"{last_error}")
    size = part.stat().st_size
    if total is not None and size != total:
        part.unlink()
        raise DownloadError(f"{url}: got {size} bytes, expected {total}; the download was deleted, try again")
    digest = sha256_file(part)
    if expected_sha256 and digest != expected_sha256.lower():
        part.unlink()
        raise ChecksumMismatch(f"{url}: SHA-256 is {digest}, expected {expected_sha256}; the file is corrupt or was "
                            "replaced, and the download was deleted")
    return size, digest


def _declared_total(response: Any, url: str, part: Path, have: int) -> int | None:
    """The whole file's size as the answer declares it (Content-Length of a 200, Content-Range of a 206)."""
    if response.status_code == 200:
        length = response.headers.get("Content-Length", "")
        return int(length) if length.isdigit() else None
    match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
    if not match or int(match.group(1)) != have:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{url} answered a resume request with an unexpected range; try again")
    return int(match.group(2)) if match.group(2) != "*" else None


def _receive(response: Any, url: str, part: Path, have: int, total: int | None, limits: Limits,
             on_progress: Callable[[int, int | None], None] | None, should_cancel: Callable[[], bool] | None) -> None:
    """Append the answer's body to `part` (from `have` bytes on), checking the cap on what actually arrives."""
    cap = limits.max_bytes if total is None else min(limits.max_bytes, total)
    with open(part, "ab" if have else "wb") as out:
        done = have
        if on_progress:
            on_progress(done, total)
        for chunk in response.iter_bytes(CHUNK_BYTES):
            if should_cancel and should_cancel():
                raise DownloadCancelled(f"download of {url} cancelled; it resumes next time")
            if done + len(chunk) > cap:
                # No (or a false) length: the cap is checked on what actually arrives.
                out.close()
                part.unlink(missing_ok=True)
                if total is not None and total < limits.max_bytes:
                    raise DownloadError(f"{url} sent more than the {total} bytes it declared; the download was "
                                        "deleted, try again")
                raise DownloadError(f"{url} sent over {cap} bytes, the cap ({limits.cap_setting}): the download "
                                    "was stopped and deleted")
            out.write(chunk)
            done += len(chunk)
            if on_progress:
                on_progress(done, total)


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
