"""Seeds <-> JSON, so a job keeps the seeds it was started with (masks as COCO RLE).

A job snapshots its seeds when it is enqueued: later edits to the track, and the masks the job itself writes onto
the seed frame, must not change what a resumed job is seeded with.
"""

from __future__ import annotations

from sam2_tracking.engine.masks import mask_to_rle, rle_to_mask
from sam2_tracking.types import Box, Click, Seed


def seed_to_json(seed: Seed) -> dict:
    data: dict = {"frame_idx": int(seed.frame_idx)}
    if seed.box is not None:
        data["box"] = [float(v) for v in seed.box.as_list()]
    if seed.mask is not None:
        data["mask_rle"] = mask_to_rle(seed.mask)
    if seed.clicks:
        data["clicks"] = [[float(c.x), float(c.y), bool(c.positive)] for c in seed.clicks]
    return data


def seed_from_json(data: dict) -> Seed:
    return Seed(
        frame_idx=int(data["frame_idx"]),
        box=Box(*data["box"]) if data.get("box") is not None else None,
        mask=rle_to_mask(data["mask_rle"]) if data.get("mask_rle") is not None else None,
        clicks=tuple(Click(x, y, positive) for x, y, positive in data.get("clicks", ())),
    )


def seeds_to_json(seeds_by_track: dict[int, list[Seed]]) -> dict[str, list[dict]]:
    return {str(track_id): [seed_to_json(s) for s in seeds] for track_id, seeds in seeds_by_track.items()}


def seeds_from_json(data: dict[str, list[dict]]) -> dict[int, list[Seed]]:
    return {int(track_id): [seed_from_json(s) for s in seeds] for track_id, seeds in data.items()}
