"""HTTP fetching for model downloads: a config with a 1 MB cap, and the checkpoint through the one resumable download
(sam2_tracking.download: a size cap, timeouts, resume by Range requests, a cancel check before every chunk).
models/files.py decides where the bytes go.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sam2_tracking import download
from sam2_tracking.models.config import MAX_CONFIG_BYTES, ModelError

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

    def download_limits(self) -> download.Limits:
        """The checkpoint download's caps, for sam2_tracking.download."""
        return download.Limits(self.max_checkpoint_bytes, "SAM2T_MAX_CHECKPOINT_BYTES", self.connect_timeout_s,
                               self.read_timeout_s)


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
        raise ModelError(download.timeout_message(url, exc, limits.download_limits())) from exc
    except httpx.HTTPError as exc:
        raise ModelError(f"could not download {url}: {exc or type(exc).__name__}") from exc
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise ModelError(f"{url} is not UTF-8 text: give the URL of a SAM2 model config in YAML") from None


def fetch_checkpoint(
    client: Any,
    entry: ModelEntry,
    part: Path,
    on_progress: Callable[[int, int | None], None] | None,
    should_cancel: Callable[[], bool] | None,
    limits: DownloadLimits,
) -> tuple[int, str]:
    """Download (or resume) the checkpoint into `part`; return (size, sha256) after checking what is known."""
    try:
        return download.download_resumable(client, entry.checkpoint_url, part, limits.download_limits(),
                                  expected_size=entry.expected_size, expected_sha256=entry.sha256,
                                  on_progress=on_progress, should_cancel=should_cancel)
    except download.DownloadCancelled:
        raise DownloadCancelled(f"download of {entry.name} cancelled; it resumes next time") from None
    except download.DownloadError as exc:
        raise ModelError(str(exc)) from exc
