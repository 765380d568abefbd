"""HTTP fetching for model downloads: a config with a 1 MB cap, a checkpoint streamed with a size cap, timeouts,
resume by Range requests and a cancel check before every chunk. model_files decides where the bytes go.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sam2_tracking.models.config import MAX_CONFIG_BYTES, ModelError

_CHUNK = 1 << 20
_RETRIES = 3  # automatic resumes after a dropped connection or a stall within one download_model call

DEFAULT_MAX_CHECKPOINT_BYTES = 2_000_000_000  # SAM2.1 Large is 898 MB
DEFAULT_CONNECT_TIMEOUT_S = 15.0
DEFAULT_READ_TIMEOUT_S = 60.0


class DownloadCancelled(ModelError):  # noqa: N818 - reads like TrackingCancelled
    """should_cancel() asked download_model to stop; the partial file is kept for a later resume."""


@dataclass(frozen=True)
class ModelEntry:
    """A downloadable model. config: a built-in sam2 config name (configs/sam2.1/...) or an http(s) URL to YAML."""

    name: str
    config: str
    checkpoint_url: str
    expected_size: int | None = None
    sha256: str | None = None
    is_default: bool = False
    label: str = ""


@dataclass(frozen=True)
class DownloadLimits:
    """Caps for one download (Settings: SAM2T_MAX_CHECKPOINT_BYTES, SAM2T_DOWNLOAD_*_TIMEOUT_SECONDS)."""

    max_checkpoint_bytes: int = DEFAULT_MAX_CHECKPOINT_BYTES
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S  # the longest wait for the next bytes, not for the whole file


def fetch_text(client: Any, url: str, limits: DownloadLimits) -> str:
    """GET a config, reading at most MAX_CONFIG_BYTES (whatever Content-Length says); returns the UTF-8 text."""
    import httpx

    try:
        with client.stream("GET", url) as response:
            if response.status_code != 200:
                raise ModelError(f"{url} answered HTTP {response.status_code} {response.reason_phrase}")
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > MAX_CONFIG_BYTES:
                raise ModelError(f"{url} is over 1 MB ({declared} bytes): that is not a model config")
            body = bytearray()
            for chunk in response.iter_bytes(64 * 1024):
                body += chunk
                if len(body) > MAX_CONFIG_BYTES:
                    raise ModelError(f"{url} sent over 1 MB: that is not a model config")
    except httpx.TimeoutException as exc:
        raise ModelError(timeout_message(url, exc, limits)) from exc
    except httpx.HTTPError as exc:
        raise ModelError(f"could not download {url}: {exc or type(exc).__name__}") from exc
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise ModelError(f"{url} is not UTF-8 text: give the URL of a SAM2 model config in YAML") from None


def timeout_message(url: str, exc: Exception, limits: DownloadLimits) -> str:
    import httpx

    if isinstance(exc, httpx.ConnectTimeout):
        return (f"could not connect to {url} within {limits.connect_timeout_s:g} s "
                "(SAM2T_DOWNLOAD_CONNECT_TIMEOUT_SECONDS): check the address and the server's network")
    return (f"{url} sent nothing for {limits.read_timeout_s:g} s (SAM2T_DOWNLOAD_READ_TIMEOUT_SECONDS); "
            "the server or the network stalled: try again later")


def fetch_checkpoint(
    client: Any,
    entry: ModelEntry,
    part: Path,
    on_progress: Callable[[int, int | None], None] | None,
    should_cancel: Callable[[], bool] | None,
    limits: DownloadLimits,
) -> tuple[int, str]:
    """Download (or resume) the checkpoint into `part`; return (size, sha256) after checking what is known."""
    import httpx

    url = entry.checkpoint_url
    cap = limits.max_checkpoint_bytes
    total: int | None = entry.expected_size
    last_error: Exception | None = None
    for _attempt in range(_RETRIES + 1):
        have = part.stat().st_size if part.exists() else 0
        if total is not None and have == total:
            break
        if (total is not None and have > total) or have > cap:
            part.unlink()
            have = 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            with client.stream("GET", url, headers=headers) as response:
                if response.status_code == 416 and have:
                    part.unlink()  # our partial file does not fit this server's file: start over
                    continue
                if response.status_code not in (200, 206):
                    raise ModelError(f"{url} answered HTTP {response.status_code} {response.reason_phrase}")
                if response.status_code == 200:
                    have = 0  # the server ignored the Range header: it sends the whole file
                    length = response.headers.get("Content-Length", "")
                    server_total = int(length) if length.isdigit() else None
                else:
                    match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
                    if not match or int(match.group(1)) != have:
                        part.unlink(missing_ok=True)
                        raise ModelError(f"{url} answered a resume request with an unexpected range; try again")
                    server_total = int(match.group(2)) if match.group(2) != "*" else None
                if server_total is not None:
                    if entry.expected_size is not None and server_total != entry.expected_size:
                        raise ModelError(
                            f"{url} is {server_total} bytes, expected {entry.expected_size}: wrong file or URL"
                        )
                    if server_total > cap:
                        part.unlink(missing_ok=True)
                        raise ModelError(f"{url} is {server_total} bytes, over the {cap}-byte cap "
                                         "(SAM2T_MAX_CHECKPOINT_BYTES): not a SAM2 checkpoint, or raise the cap")
                    total = server_total
                with open(part, "ab" if have else "wb") as out:
                    done = have
                    if on_progress:
                        on_progress(done, total)
                    for chunk in response.iter_bytes(_CHUNK):
                        if should_cancel and should_cancel():
                            raise DownloadCancelled(f"download of {entry.name} cancelled; it resumes next time")
                        if done + len(chunk) > cap:
                            # No (or a false) length: the cap is checked on what actually arrives.
                            out.close()
                            part.unlink(missing_ok=True)
                            raise ModelError(f"{url} sent over {cap} bytes, the cap (SAM2T_MAX_CHECKPOINT_BYTES): "
                                             "the download was stopped and deleted")
                        out.write(chunk)
                        done += len(chunk)
                        if on_progress:
                            on_progress(done, total)
            if total is None or part.stat().st_size >= total:
                break
            last_error = ModelError(f"{url} closed the connection early")
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ReadTimeout, httpx.WriteError) as exc:
            last_error = exc  # a dropped or stalled connection: resume from what we have
        except httpx.TimeoutException as exc:
            raise ModelError(timeout_message(url, exc, limits)) from exc
        except httpx.HTTPError as exc:
            raise ModelError(f"could not download {url}: {exc or type(exc).__name__}") from exc
    else:
        if isinstance(last_error, httpx.TimeoutException):
            raise ModelError(timeout_message(url, last_error, limits) + f" ({_RETRIES} resumes tried; the partial "
                             "file is kept)")
        raise ModelError(f"download of {url} kept failing after {_RETRIES} resumes: {last_error}")
    size = part.stat().st_size
    if total is not None and size != total:
        part.unlink()
        raise ModelError(f"{url}: got {size} bytes, expected {total}; the download was deleted, try again")
    digest = sha256_file(part)
    if entry.sha256 and digest != entry.sha256.lower():
        part.unlink()
        raise ModelError(f"{url}: SHA-256 is {digest}, expected {entry.sha256}; the file is corrupt or was replaced")
    return size, digest


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
