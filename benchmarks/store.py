"""Write tracking results for a long track in batches, then export it; print one JSON object.

    .venv/bin/python benchmarks/store.py --frames 5000 --width 1920 --height 1080
    .venv/bin/python benchmarks/store.py --backend postgres   # a throwaway local PostgreSQL (Debian's package)
    .venv/bin/python benchmarks/store.py --backend postgres --database-url postgresql://user@host/db

Measures what a consumer pays per committed frame (RLE encoding plus the batch transaction) at the start and at the
end of the track: growth_ratio = last / first stays near 1 when writing does not depend on the track's length.
Mask generation is not timed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sam2_tracking.formats.coco import write_coco  # noqa: E402
from sam2_tracking.formats.dive import write_dive_json  # noqa: E402
from sam2_tracking.store import UpsertKeyframe, open_store  # noqa: E402
from sam2_tracking.types import Box, FrameMask, JobSpec  # noqa: E402


def make_stamp(radius: int) -> np.ndarray:
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return xx * xx + yy * yy <= radius * radius


def frame_mask(frame_idx: int, track_id: int, width: int, height: int, stamp: np.ndarray) -> FrameMask:
    """A disc wandering across the frame, absent for a few frames now and then, like an object leaving view."""
    if frame_idx % 97 in (95, 96):
        return FrameMask(frame_idx, track_id, False, -3.0)
    size = stamp.shape[0]
    x = int((width - size) * (0.5 + 0.45 * np.sin(frame_idx / 60)))
    y = int((height - size) * (0.5 + 0.45 * np.cos(frame_idx / 45)))
    mask = np.zeros((height, width), dtype=bool)
    mask[y : y + size, x : x + size] = stamp
    return FrameMask(frame_idx, track_id, True, 4.0, mask)


def run(frames: int, width: int, height: int, batch_size: int, folder: Path, database_url: str = "") -> dict:
    store = open_store(database_url or folder / "store.db")
    ds = store.add_dataset("bench", "/bench.mp4", "video", frames, 30.0, width, height)
    track_id = store.create_track(ds.dataset_id, "object").track_id
    store.save_edits(ds.dataset_id, 0, [UpsertKeyframe(track_id, 0, box=Box(10, 10, 200, 200))])
    job = store.create_job(JobSpec(ds.dataset_id, (track_id,), 0, "bench", "cpu", batch_size=batch_size), frames)
    store.claim_job(job.job_id, "bench")
    stamp = make_stamp(max(8, height // 6))
    per_frame_ms = []
    for start in range(0, frames, batch_size):
        batch = [frame_mask(f, track_id, width, height, stamp) for f in range(start, min(start + batch_size, frames))]
        t0 = time.perf_counter()
        store.write_job_batch(job.job_id, batch)
        elapsed_ms = (time.perf_counter() - t0) * 1000
        per_frame_ms.extend([elapsed_ms / len(batch)] * len(batch))
    window = min(500, frames)
    first = float(np.mean(per_frame_ms[:window]))
    last = float(np.mean(per_frame_ms[-window:]))

    t0 = time.perf_counter()
    write_coco(store.export_annotations(ds.dataset_id), folder / "out_coco.json")
    export_coco_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    write_dive_json(store.export_annotations(ds.dataset_id), folder / "out_dive.json")
    export_dive_s = time.perf_counter() - t0
    assert store.get_job(job.job_id).frames_done == frames
    if database_url:
        with store._read() as conn:
            store_bytes = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    else:
        store_bytes = (folder / "store.db").stat().st_size
    store.close()
    return {
        "backend": "postgres" if database_url else "sqlite",
        "frames": frames,
        "width": width,
        "height": height,
        "batch_size": batch_size,
        "write_ms_per_frame_first_500": round(first, 3),
        "write_ms_per_frame_last_500": round(last, 3),
        "growth_ratio": round(last / first, 3),
        "write_ms_per_frame_mean": round(float(np.mean(per_frame_ms)), 3),
        "export_coco_s": round(export_coco_s, 3),
        "export_dive_s": round(export_dive_s, 3),
        "store_mb": round(store_bytes / 1e6, 2),
        "coco_mb": round((folder / "out_coco.json").stat().st_size / 1e6, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=5000)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--dir", help="folder for the store and exports (default: a temporary one)")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--database-url", default="",
                        help="with --backend postgres: an empty database to use (default: start a throwaway local "
                        "PostgreSQL, as the tests do; its fsync is off, so commits cost less than on a real server)")
    args = parser.parse_args()
    server = None
    database_url = ""
    if args.backend == "postgres":
        database_url = args.database_url
        if not database_url:
            from sam2_tracking.testing.postgres_server import PostgresServer, find_pg_bin

            pg_bin = find_pg_bin()
            if pg_bin is None:
                sys.exit("PostgreSQL is not installed (apt-get install postgresql), or pass --database-url")
            server = PostgresServer(pg_bin)
            database_url = server.create_database("bench")
    try:
        if args.dir:
            folder = Path(args.dir)
            folder.mkdir(parents=True, exist_ok=True)
            result = run(args.frames, args.width, args.height, args.batch_size, folder, database_url)
        else:
            with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
                result = run(args.frames, args.width, args.height, args.batch_size, Path(tmp), database_url)
    finally:
        if server is not None:
            server.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
