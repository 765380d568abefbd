"""Adding videos to the store: probe the file, record it as a dataset, and apply a seed file if it has one.

A seed file is the JSON written next to the sample clips (assets/*.json): {"seeds": [{"label", "frame", "box"}]}.
Each seed becomes a track with a keyframe box, so a new user can press the track button at once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .store import CreateTrack, Dataset, UpsertKeyframe
from .types import Box


def add_video(store, path: str | os.PathLike, name: str | None = None) -> Dataset:
    """Probe `path` (raises VideoError for files that are not a readable video or image sequence) and add it."""
    from .video import probe_video

    path = Path(path).resolve()
    info = probe_video(path)
    return store.add_dataset(name or path.name, str(path), info.kind, info.frame_count, info.fps, info.width,
                             info.height)


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
