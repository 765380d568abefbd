"""Where exported files go, and their removal: without it every export (an overlay MP4 can be gigabytes) stays on
the server's disk forever.

Each user's exports live in their own folder under data_dir/exports; a file older than the retention time is removed
(from every user's folder) whenever anyone exports, and a user never has more than `keep` files.
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

ANONYMOUS = "local"  # the user of an app without logins


def user_export_dir(exports_root: Path, username: str | None) -> Path:
    """A folder name that is safe on any file system and distinct per user (the hash keeps 'a b' and 'a_b' apart)."""
    name = username or ANONYMOUS
    slug = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:40]
    return exports_root / f"{slug}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def prune_exports(exports_root: Path, user_dir: Path, max_age_seconds: float, keep: int,
                  now: float | None = None) -> list[Path]:
    """Remove exports older than max_age_seconds anywhere under exports_root, then the oldest of user_dir's files
    beyond keep - 1 (room for the export about to be written). Returns the removed paths."""
    now = time.time() if now is None else now
    removed = []
    if exports_root.is_dir():
        # "*" too: exports written before per-user folders existed.
        for path in [*exports_root.glob("*"), *exports_root.glob("*/*")]:
            if path.is_file() and now - _mtime(path) > max_age_seconds:
                path.unlink(missing_ok=True)
                removed.append(path)
    if user_dir.is_dir():
        files = sorted((p for p in user_dir.iterdir() if p.is_file()), key=_mtime)
        for path in files[: max(0, len(files) - (keep - 1))]:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:  # removed meanwhile by another user's export
        return float("inf")
