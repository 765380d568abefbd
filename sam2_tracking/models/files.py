"""The workers' model store on disk: verified downloads and uploads, swapped in atomically; status and removal.

Layout under model_dir (names never start with ".", so the bookkeeping folder cannot clash with a model):
    <name>                          a link to the current version: what load_predictor and model_status read
    .sam2t/versions/<name>/<id>/    config.yaml, checkpoint.pt, manifest.json (written last)
    .sam2t/staging/<name>/          a download in progress: checkpoint.pt.part (kept to resume), source.json, and
                                    owner.json while a process is downloading (left behind if it is killed)
    .sam2t/locks/<name>.lock        held (flock) by the process downloading or installing <name>
A new version is built and verified (the config validated, the checkpoint loaded with torch.load(weights_only=True)
into the architecture with matching keys) in its own folder, then the link is replaced in one rename: a running
consumer keeps loading the old model until the new one is ready, and a failed, cancelled or killed download leaves
it untouched. A folder at <name> that is not a link (written by hand or by an older version) is moved aside once.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from sam2_tracking.download import sha256_file
from sam2_tracking.file_lock import file_lock
from sam2_tracking.models.config import ModelError, builtin_config_text, validate_config
from sam2_tracking.models.fetch import DownloadLimits, ModelEntry, fetch_checkpoint, fetch_text
from sam2_tracking.models.loading import CHECKPOINT_NAME, CONFIG_NAME, build_model, forget_cached

MANIFEST_NAME = "manifest.json"
PART_NAME = CHECKPOINT_NAME + ".part"
_BOOKKEEPING = ".sam2t"
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ModelError(f"model name {str(name)[:120]!r} may only use letters, digits, '_', '.' and '-' (1 to 100 "
                         "characters, not starting with '.' or '-')")
    return name


# ----------------------------------------------------------------------------------------------------- layout


def model_path(model_dir: str | os.PathLike, name: str) -> Path:
    """Where model `name` is read from (a link to its current version once downloaded)."""
    return Path(model_dir) / check_name(name)


def _staging(model_dir: str | os.PathLike, name: str) -> Path:
    return Path(model_dir) / _BOOKKEEPING / "staging" / name


def _versions(model_dir: str | os.PathLike, name: str) -> Path:
    return Path(model_dir) / _BOOKKEEPING / "versions" / name


def partial_checkpoint(model_dir: str | os.PathLike, name: str) -> Path:
    """The partial checkpoint a cut or cancelled download of `name` resumes from."""
    return _staging(model_dir, check_name(name)) / PART_NAME


def _model_lock(model_dir: str | os.PathLike, name: str, blocking: bool = True) -> contextlib.AbstractContextManager[bool]:
    """Serialise downloads and installs of one model across processes; the OS drops the lock of a killed process."""
    return file_lock(Path(model_dir) / _BOOKKEEPING / "locks" / f"{name}.lock", blocking)


# ----------------------------------------------------------------------------------------------------- status


def model_status(model_dir: str | os.PathLike, name: str) -> dict | None:
    """The manifest of a finished download of `name`, or None if it is not (fully) downloaded."""
    folder = model_path(model_dir, name)
    manifest = folder / MANIFEST_NAME
    if not (manifest.is_file() and (folder / CHECKPOINT_NAME).is_file() and (folder / CONFIG_NAME).is_file()):
        return None
    try:
        return json.loads(manifest.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def verified_models(model_dir: str | os.PathLike) -> list[str]:
    """Names of the models fully downloaded and verified in model_dir (what a consumer reports with its heartbeat)."""
    root = Path(model_dir)
    if not root.is_dir():
        return []
    found = []
    for child in sorted(root.iterdir()):
        if child.name.startswith(".") or not _NAME.match(child.name):
            continue  # the bookkeeping folder and swap links: never a model
        if model_status(root, child.name) is not None:
            found.append(child.name)
    return found


def discard_download(model_dir: str | os.PathLike, name: str) -> None:
    """Delete what a refused download of `name` left for resuming (its partial checkpoint); an installed version,
    if any, stays. A consumer fetching a model for a job calls this when the file failed its checks, so a corrupt
    file is neither kept nor resumed from."""
    name = check_name(name)
    with _model_lock(model_dir, name):
        shutil.rmtree(_staging(model_dir, name), ignore_errors=True)


def download_in_progress(model_dir: str | os.PathLike, name: str) -> bool:
    """True while a process on this machine downloads or installs `name` into model_dir (it holds the lock)."""
    with _model_lock(model_dir, check_name(name), blocking=False) as acquired:
        return not acquired


def interrupted_download(model_dir: str | os.PathLike, name: str) -> dict | None:
    """Who was downloading `name` when that process died ({"host", "pid", "started_at"}), or None.

    owner.json is written when a download starts and removed when it ends in any way a process survives, so one
    found while nobody holds the lock belongs to a killed process."""
    owner = _staging(model_dir, check_name(name)) / "owner.json"
    if not owner.is_file() or download_in_progress(model_dir, name):
        return None
    try:
        found = json.loads(owner.read_text())
    except (OSError, json.JSONDecodeError):
        found = None
    return found if isinstance(found, dict) else {"host": None, "pid": None, "started_at": None}


def clear_interrupted(model_dir: str | os.PathLike, name: str) -> None:
    """Forget that a killed process was downloading `name` (its partial checkpoint stays for a resume)."""
    (_staging(model_dir, check_name(name)) / "owner.json").unlink(missing_ok=True)


def remove_model(model_dir: str | os.PathLike, name: str) -> None:
    """Delete a downloaded model and any partial download. Removing a model that is not there is not an error."""
    link = model_path(model_dir, name)
    old = link.resolve() if link.is_symlink() else None
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.exists():
        shutil.rmtree(link)
    for folder in (_versions(model_dir, name), _staging(model_dir, name)):
        shutil.rmtree(folder, ignore_errors=True)
    forget_cached(link, *([old] if old else []))


# ----------------------------------------------------------------------------------------------------- download


def download_model(
    entry: ModelEntry,
    model_dir: str | os.PathLike,
    force: bool = False,
    on_progress: Callable[[int, int | None], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    limits: DownloadLimits | None = None,
) -> Path:
    """Download entry's config and checkpoint, verify them and make them model_dir/<name>; return that path.

    The config is streamed with a 1 MB cap and validated before the checkpoint is fetched; the checkpoint is streamed
    with limits.max_checkpoint_bytes checked while reading and a read timeout, and should_cancel() is asked before
    every chunk. A partial checkpoint is resumed with an HTTP Range request (also after a dropped connection in this
    call). on_progress(bytes_done, bytes_total_or_None) follows the checkpoint. force=True downloads afresh while
    the current version stays in use until the new one is verified. Raises ModelError (DownloadCancelled)."""
    name = check_name(entry.name)
    limits = limits or DownloadLimits()
    if entry.expected_size is not None and entry.expected_size > limits.max_checkpoint_bytes:
        raise ModelError(f"{name} is {entry.expected_size} bytes, over the {limits.max_checkpoint_bytes}-byte cap "
                         "(SAM2T_MAX_CHECKPOINT_BYTES)")
    Path(model_dir).mkdir(parents=True, exist_ok=True)
    with _model_lock(model_dir, name):
        if not force and model_status(model_dir, name) is not None:
            return model_path(model_dir, name)
        with _owned_staging(model_dir, name, fresh=force) as staging:
            _download_into(entry, model_dir, staging, on_progress, should_cancel, limits)
    return model_path(model_dir, name)


def _download_into(entry: ModelEntry, model_dir: str | os.PathLike, staging: Path,
                   on_progress: Callable[[int, int | None], None] | None, should_cancel: Callable[[], bool] | None,
                   limits: DownloadLimits) -> None:
    import httpx

    source = {"config": entry.config, "checkpoint": entry.checkpoint_url, "size": entry.expected_size,
              "sha256": entry.sha256}
    _keep_partial_only_for(staging, source)
    with httpx.Client(follow_redirects=True, timeout=limits.download_limits().timeout()) as client:
        if entry.config.startswith(("http://", "https://")):
            config_text = fetch_text(client, entry.config, limits)
        else:
            config_text = builtin_config_text(entry.config)
        validate_config(config_text)
        part = staging / PART_NAME
        size, digest = fetch_checkpoint(client, entry, part, on_progress, should_cancel, limits)
    manifest = {"name": entry.name, "label": entry.label,
                "sources": {"config": entry.config, "checkpoint": entry.checkpoint_url},
                "size": size, "sha256": digest}
    _install(model_dir, entry.name, config_text, part, manifest, limits)


def install_model_files(
    model_dir: str | os.PathLike,
    name: str,
    config_text: str,
    checkpoint_file: str | os.PathLike,
    sources: dict[str, str],
    label: str = "",
    expected_size: int | None = None,
    sha256: str | None = None,
    limits: DownloadLimits | None = None,
) -> Path:
    """Install a model from a config text and a local checkpoint file (an upload, for servers without internet).

    Same checks as a download (config validation, size cap, known size and SHA-256, weights-only load into the
    architecture); the checkpoint is copied, the current version stays in use until the new one is verified."""
    name = check_name(name)
    limits = limits or DownloadLimits()
    validate_config(config_text)
    source_file = Path(checkpoint_file)
    try:
        size = source_file.stat().st_size
    except OSError as exc:
        raise ModelError(f"cannot read the uploaded checkpoint: {exc.strerror or type(exc).__name__}") from exc
    if size > limits.max_checkpoint_bytes:
        raise ModelError(f"the checkpoint is {size} bytes, over the {limits.max_checkpoint_bytes}-byte cap "
                         "(SAM2T_MAX_CHECKPOINT_BYTES)")
    if expected_size is not None and size != expected_size:
        raise ModelError(f"the checkpoint is {size} bytes, but {name} is {expected_size} bytes: wrong file")
    Path(model_dir).mkdir(parents=True, exist_ok=True)
    with _model_lock(model_dir, name), _owned_staging(model_dir, name, fresh=True) as staging:
        part = staging / PART_NAME
        shutil.copyfile(source_file, part)
        digest = sha256_file(part)
        if sha256 and digest != sha256.lower():
            part.unlink()
            raise ModelError(f"the checkpoint's SHA-256 is {digest}, but {name}'s is {sha256}: wrong or corrupt file")
        manifest = {"name": name, "label": label, "sources": dict(sources), "size": size, "sha256": digest}
        _install(model_dir, name, config_text, part, manifest, limits)
    return model_path(model_dir, name)


@contextlib.contextmanager
def _owned_staging(model_dir: str | os.PathLike, name: str, fresh: bool) -> Iterator[Path]:
    """The staging folder, marked with owner.json for as long as this process works in it (see
    interrupted_download). Call with the model's lock held."""
    staging = _staging(model_dir, name)
    if fresh:
        shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True, exist_ok=True)
    owner = staging / "owner.json"
    owner.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started_at": time.time()}))
    try:
        yield staging
    finally:
        owner.unlink(missing_ok=True)


def _keep_partial_only_for(staging: Path, source: dict) -> None:
    """A partial checkpoint resumes only a download of the same URL (and expected file)."""
    record = staging / "source.json"
    try:
        previous = json.loads(record.read_text())
    except (OSError, json.JSONDecodeError):
        previous = None
    if previous != source:
        (staging / PART_NAME).unlink(missing_ok=True)
        record.write_text(json.dumps(source))


def _install(model_dir: str | os.PathLike, name: str, config_text: str, part: Path, manifest: dict,
             limits: DownloadLimits) -> None:
    """Verify config + checkpoint in a new version folder, then point model_dir/<name> at it in one rename."""
    versions = _versions(model_dir, name)
    version = versions / f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    version.mkdir(parents=True)
    try:
        (version / CONFIG_NAME).write_text(config_text)
        os.replace(part, version / CHECKPOINT_NAME)
        # Build the model and load the weights once, so a model is only installed if it will load.
        build_model(version / CONFIG_NAME, version / CHECKPOINT_NAME, device="cpu",
                    max_checkpoint_bytes=limits.max_checkpoint_bytes)
        manifest = {**manifest, "downloaded_at": datetime.now(UTC).isoformat(timespec="seconds")}
        (version / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2))
    except BaseException:
        shutil.rmtree(version, ignore_errors=True)  # a refused file is not kept for resuming either
        raise
    link = Path(model_dir) / name
    old = None
    if link.is_symlink():
        old = link.resolve()
    elif link.exists():  # a plain folder: move it into versions/ so that the swap below is one rename
        old = versions / f"previous-{uuid.uuid4().hex[:8]}"
        os.replace(link, old)
    tmp_link = Path(model_dir) / f".{name}.{uuid.uuid4().hex[:8]}.link"
    os.symlink(os.path.relpath(version, link.parent), tmp_link)
    os.replace(tmp_link, link)
    # Old versions go at once: a process that is loading one has its files open (POSIX keeps them readable).
    for child in versions.iterdir():
        if child != version:
            shutil.rmtree(child, ignore_errors=True)
    shutil.rmtree(part.parent, ignore_errors=True)  # the staging folder: nothing left to resume
    forget_cached(link, *([old] if old else []))
