"""Adding videos to the store: probe the file, record it as a dataset, and apply a seed file if it has one.

A seed file is the JSON written next to the sample clips (assets/*.json): {"seeds": [{"label", "frame", "box"}]}.
Each seed becomes a track with a keyframe box, so a new user can press the track button at once.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from sam2_tracking.store import CreateTrack, Dataset, UpsertKeyframe
from sam2_tracking.types import Box

# Video containers FFmpeg reads here, and a zip of JPEG/PNG frames.
UPLOAD_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".zip")


def add_video(store, path: str | os.PathLike, name: str | None = None, max_frame_pixels: int | None = None) -> Dataset:
    """Probe `path` (raises VideoError for files that are not a readable video or image sequence) and add it."""
    from sam2_tracking.engine.video import probe_video

    path = Path(path).resolve()
    info = probe_video(path)
    if max_frame_pixels is not None:
        # Decoded frames can be larger than a lying container header said; refuse those too before storing.
        from sam2_tracking.upload_checks import check_frame_size

        check_frame_size(info.width, info.height, max_frame_pixels, path.name)
    return store.add_dataset(name or path.name, str(path), info.kind, info.frame_count, info.fps, info.width,
                             info.height)


def add_uploaded_video(store, settings, source: str | os.PathLike, name: str | None = None) -> Dataset:
    """Check an uploaded file against the limits from its headers, copy it into the video folder and add it.

    Raises VideoError (UploadError for a broken limit) with nothing stored: the checks run on the upload itself,
    before the copy, and a copy that then fails to probe is removed.
    """
    from sam2_tracking.upload_checks import UploadError, check_video_upload

    source = Path(source)
    if source.suffix.lower() not in UPLOAD_SUFFIXES:
        raise UploadError(f"{source.name}: not a supported file type; use {', '.join(UPLOAD_SUFFIXES)}")
    check_video_upload(source, settings)
    settings.video_dir.mkdir(parents=True, exist_ok=True)
    target = settings.video_dir / source.name
    counter = 1
    while target.exists():
        target = settings.video_dir / f"{source.stem}-{counter}{source.suffix}"
        counter += 1
    shutil.copyfile(source, target)
    try:
        return add_video(store, target, name=name or source.name, max_frame_pixels=settings.max_frame_pixels)
    except BaseException:
        target.unlink(missing_ok=True)
        raise


def add_video_if_missing(store, path: str | os.PathLike, seed_file: str | os.PathLike | None = None) -> Dataset:
    """Add `path` unless a dataset already points at it; on first add, create the seed file's tracks."""
    existing = store.find_dataset_by_path(str(Path(path).resolve()))
    if existing is not None:
        return existing
    dataset = add_video(store, path)
    if seed_file is not None and Path(seed_file).is_file():
        seeds = json.loads(Path(seed_file).read_text())["seeds"]
        edits = []
        for number, seed in enumerate(seeds, start=1):
            edits.append(CreateTrack(label=seed["label"], placeholder_id=-number))
            edits.append(UpsertKeyframe(track_id=-number, frame_idx=int(seed["frame"]), box=Box(*seed["box"])))
        store.save_edits(dataset.dataset_id, store.get_revision(dataset.dataset_id), edits)
    return store.get_dataset(dataset.dataset_id)
