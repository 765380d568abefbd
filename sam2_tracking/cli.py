"""Command line for headless use and scripting, running the same code as the app:

    python -m sam2_tracking track VIDEO --frame F (--box X1,Y1,X2,Y2 [--mask PNG] | --object SPEC ...)
        [--frames N] [--direction D] [--batch-size B] --model NAME_OR_DIR --out PATH
        --format coco|dive|maskzip|viame|mp4

    An --object SPEC is `key=value` pairs joined by ';': label=NAME, box=X1,Y1,X2,Y2, click=X,Y (positive),
    neg=X,Y (negative; both repeatable), mask=PNG; e.g. --object "label=fish;box=10,10,50,40;neg=30,20".
    Every object is seeded on --frame and all are tracked in one run.
    python -m sam2_tracking convert IN OUT --format coco|dive|maskzip|viame|mp4 [--video VIDEO]

`track` records the seed and the results in a store (a temporary one unless --store is given) through the same
job and batch-writing code the queue consumers use, then exports from that store.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

from sam2_tracking.formats.files import EXPORT_FORMATS, IMPORT_FORMATS
from sam2_tracking.states import JobState

PROG = "python -m sam2_tracking"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Track object masks through video with SAM2.")
    commands = parser.add_subparsers(dest="command", required=True)

    track = commands.add_parser("track", help="track objects from boxes, clicks or masks and write the result")
    track.add_argument("video", help="video file, or folder / .zip of frames")
    track.add_argument("--frame", type=int, required=True, help="frame index of the seed (0-based)")
    track.add_argument("--box", help="one object's seed box X1,Y1,X2,Y2 in pixels (left, top, right, bottom): "
                                     "shorthand for --object box=...;label=LABEL")
    track.add_argument("--object", dest="objects", action="append", default=[], metavar="SPEC",
                       help="an object to track, repeatable: 'label=fish;box=X1,Y1,X2,Y2;click=X,Y;neg=X,Y;"
                            "mask=PNG' (any of box, clicks and mask)")
    track.add_argument("--mask", help="seed mask PNG at video size (alpha or grey > 127 is the object); used "
                                      "instead of the box as the prompt")
    track.add_argument("--frames", type=int, help="frames to track per direction, the seed frame included "
                                                  "(default: to the end of the video)")
    track.add_argument("--direction", choices=["forward", "backward", "both"], default="forward")
    track.add_argument("--batch-size", type=int, default=100, help="frames per committed batch (10, 100, 300, 500, 1000)")
    track.add_argument("--model", required=True, help="model folder (config.yaml + checkpoint.pt) or the name of a "
                                                      "downloaded model in SAM2T_MODEL_DIR")
    track.add_argument("--label", default="object", help="the track's label (default: object)")
    track.add_argument("--out", required=True, help="output file")
    track.add_argument("--format", required=True, choices=EXPORT_FORMATS)
    track.add_argument("--store", help="store file to keep the results in (default: a temporary one)")
    track.add_argument("--device", help="cpu, cuda or mps (default: the best available)")
    track.add_argument("--quiet", action="store_true", help="no progress bar")

    convert = commands.add_parser("convert", help="convert annotations between formats")
    convert.add_argument("input", help=f"annotation file ({', '.join(IMPORT_FORMATS)}; detected from the content)")
    convert.add_argument("output")
    convert.add_argument("--format", required=True, choices=EXPORT_FORMATS)
    convert.add_argument("--from", dest="from_format", choices=IMPORT_FORMATS, help="input format if not detected")
    convert.add_argument("--video", help="the annotated video: gives the frame size and count (needed for COCO "
                                         "from DIVE JSON without masks, and for mp4)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from sam2_tracking.logging_setup import setup_logging

    # One progress bar (ours, disable=--quiet) instead of SAM2's per-pass bars and its '_C' warning interleaved.
    setup_logging(logging.WARNING)
    from sam2_tracking.formats import FormatError
    from sam2_tracking.store.records import StoreError
    from sam2_tracking.types import SeedError

    try:
        if args.command == "track":
            out = run_track(args)
        else:
            out = run_convert(args)
    except Interrupted as exc:
        print(f"{PROG} {args.command}: {exc}", file=sys.stderr)
        return 130
    except (FormatError, StoreError, SeedError, ValueError, OSError) as exc:
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


def parse_box(text: str):
    from sam2_tracking.types import Box

    parts = text.replace(" ", "").split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4:
        raise ValueError(f"--box must be four numbers X1,Y1,X2,Y2, got {text!r}")
    return Box(*values)


def parse_point(text: str, what: str):
    parts = text.replace(" ", "").split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 2:
        raise ValueError(f"{what} must be two numbers X,Y, got {text!r}")
    return values


def parse_object(spec: str, default_label: str) -> dict:
    """One --object SPEC as {"label", "box", "clicks", "mask"} (mask: a PNG path); ValueError names the fault."""
    from sam2_tracking.types import Click

    out: dict = {"label": default_label, "box": None, "clicks": [], "mask": None}
    for item in spec.split(";"):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not value:
            raise ValueError(f"--object {spec!r}: {item!r} is not key=value")
        if key == "label":
            out["label"] = value
        elif key == "box":
            out["box"] = parse_box(value)
        elif key in ("click", "pos", "neg"):
            x, y = parse_point(value, f"--object {key}=")
            out["clicks"].append(Click(x, y, key != "neg"))
        elif key == "mask":
            out["mask"] = value
        else:
            raise ValueError(f"--object {spec!r}: unknown key {key!r} (label, box, click, neg, mask)")
    if out["box"] is None and not out["clicks"] and out["mask"] is None:
        raise ValueError(f"--object {spec!r} has no seed: give box=, click= or mask=")
    return out


def seed_objects(args: argparse.Namespace) -> list[dict]:
    """The objects to track: --box (with --mask) is one object, each --object another."""
    objects = []
    if args.box is not None:
        objects.append({"label": args.label, "box": parse_box(args.box), "clicks": [], "mask": args.mask})
    elif args.mask:
        objects.append({"label": args.label, "box": None, "clicks": [], "mask": args.mask})
    objects += [parse_object(spec, args.label) for spec in args.objects]
    if not objects:
        raise ValueError("nothing to track: give --box X1,Y1,X2,Y2 or one or more --object SPEC")
    return objects


def resolve_model_dir(name_or_dir: str) -> Path:
    path = Path(name_or_dir).expanduser()
    if path.is_dir():
        return path
    from sam2_tracking.settings import load_settings

    model_dir = load_settings().model_dir
    candidate = model_dir / name_or_dir
    if candidate.is_dir():
        return candidate
    raise ValueError(
        f"--model {name_or_dir!r} is neither a folder nor a downloaded model in {model_dir}: give the folder holding "
        "config.yaml and checkpoint.pt (python -m sam2_tracking.models.testmodel writes one), or download the model first"
    )


def run_track(args: argparse.Namespace) -> Path:
    """Record the seeds and a job in the store, run it through the one job run (as a consumer does), then export.

    With --store, a run of the same command that was interrupted (Ctrl-C, or a killed process) is continued: its
    committed frames are kept and tracking resumes exactly from its saved state."""
    from dataclasses import replace

    from sam2_tracking.engine.video import open_video
    from sam2_tracking.formats.files import image_names, write_annotations
    from sam2_tracking.formats.maskzip import png_to_mask
    from sam2_tracking.store import open_store

    objects = seed_objects(args)
    check_entering_video(args.video)
    model_dir = resolve_model_dir(args.model)
    with tempfile.TemporaryDirectory(prefix="sam2t-cli-") as tmp, open_video(args.video) as frames:
        store_path = Path(args.store) if args.store else Path(tmp) / "store.db"
        store = open_store(store_path)
        try:
            if not (0 <= args.frame < frames.frame_count):
                raise ValueError(f"--frame {args.frame} is outside the video (frames 0 to {frames.frame_count - 1})")
            for obj in objects:
                if obj["box"] is not None:
                    obj["box"].check_inside(frames.width, frames.height)
                for click in obj["clicks"]:
                    if not (0 <= click.x < frames.width and 0 <= click.y < frames.height):
                        raise ValueError(f"click ({click.x:g}, {click.y:g}) lies outside the "
                                         f"{frames.width}x{frames.height} frame")
                if obj["mask"] is not None:
                    # The PNG's header is checked against the video before it is decoded.
                    obj["mask"] = png_to_mask(Path(obj["mask"]).read_bytes(), obj["mask"],
                                              (frames.height, frames.width))
            request = request_key(args, objects, model_dir)
            job = resumable_job(store, request) if args.store else None
            if job is None:
                job = create_job(store, args, frames, objects, model_dir, request)
            else:
                print(f"{PROG} track: continuing job {job.job_id} from {args.store} "
                      f"({job.frames_done} of {job.frames_total} frames already tracked)", file=sys.stderr)
            state = run_in_foreground(store, job, store_path, model_dir, args)
            if state != JobState.DONE:
                job = store.get_job(job.job_id)
                kept = len(store.job_frames_written(job.job_id))
                again = "run the same command again to continue" if args.store else \
                    "give --store FILE to keep the frames and continue later"
                raise Interrupted(f"stopped after {kept} of {job.frames_total} frames ({state}); {again}")
            dataset = store.get_dataset(job.dataset_id)
            annotations = store.export_annotations(dataset.dataset_id)
            annotations = replace(annotations, frame_names=image_names(getattr(frames, "frame_names", ())))
            video_frames = None
            if args.format == "mp4":
                done = store.job_frames_written(job.job_id)
                video_frames = frames.iter_frames(min(done), max(done) + 1)
            return write_annotations(annotations, args.out, args.format, frames=video_frames,
                                     video_name=dataset.name)
        finally:
            store.close()


class Interrupted(Exception):  # noqa: N818 - an event, not a mistake
    """The run stopped before its last frame (Ctrl-C); what it tracked is committed."""


def request_key(args: argparse.Namespace, objects: list[dict], model_dir: Path) -> str:
    """What makes two runs of `track` the same job: the video, the seeds and the tracking options."""
    import hashlib
    import json

    seeds = [{"label": o["label"], "box": o["box"].as_list() if o["box"] is not None else None,
              "clicks": [[c.x, c.y, c.positive] for c in o["clicks"]],
              "mask": hashlib.sha256(o["mask"].tobytes()).hexdigest() if o["mask"] is not None else None}
             for o in objects]
    return json.dumps({"video": str(Path(args.video).resolve()), "frame": args.frame, "frames": args.frames,
                       "direction": args.direction, "batch": args.batch_size, "model": str(model_dir),
                       "objects": seeds}, sort_keys=True)


def resumable_job(store, request: str):
    """The newest job of this exact request that did not finish (a Ctrl-C'd or killed run), reopened; else None."""
    for job in store.list_jobs(statuses=[JobState.CANCELLED, JobState.RUNNING, JobState.QUEUED], limit=None):
        if job.spec.extra.get("cli_request") != request or job.undone_at is not None:
            continue
        holder = str(job.worker or "")
        if job.status == JobState.RUNNING and holder.startswith("cli-") and _alive(holder[4:]):
            raise ValueError(f"job {job.job_id} in this store is being tracked by another run (pid {holder[4:]})")
        store.update_job(job.job_id, status=JobState.QUEUED, cancel_requested=0, finished_at=None,
                         heartbeat_at=None)
        return store.get_job(job.job_id)
    return None


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return int(pid) != os.getpid()


def create_job(store, args: argparse.Namespace, frames, objects: list[dict], model_dir: Path, request: str):
    from sam2_tracking.engine.plan import FramePlan
    from sam2_tracking.jobs.seeds import seeds_to_json
    from sam2_tracking.store import UpsertKeyframe
    from sam2_tracking.types import Direction, JobSpec

    video_path = str(Path(args.video).resolve())
    # The file's name, as the app names an upload: COCO file_name is <name>/<frame>.jpg from both.
    dataset = store.add_dataset(Path(args.video).name, video_path, getattr(frames.info, "kind", "video"),
                                frames.frame_count, frames.fps, frames.width, frames.height)
    track_ids = [store.create_track(dataset.dataset_id, obj["label"]).track_id for obj in objects]
    store.save_edits(dataset.dataset_id, store.get_revision(dataset.dataset_id), [
        UpsertKeyframe(track_id, args.frame, box=obj["box"], mask=obj["mask"], clicks=tuple(obj["clicks"]))
        for track_id, obj in zip(track_ids, objects, strict=True)
    ])
    seeds = seeds_to_json({track_id: store.keyframe_seeds(track_id) for track_id in track_ids})
    spec = JobSpec(dataset.dataset_id, tuple(track_ids), args.frame, model_name=str(model_dir), queue="cli",
                   num_frames=args.frames, direction=Direction(args.direction), batch_size=args.batch_size,
                   extra={"seeds": seeds, "cli_request": request})
    total = FramePlan.for_job(spec, frames.frame_count).total
    return store.create_job(spec, total)


def run_in_foreground(store, job, store_path: Path, model_dir: Path, args: argparse.Namespace):
    """Run the job in this process through jobs.run; the first Ctrl-C stops it keeping every tracked frame (a second
    one interrupts at once)."""
    import signal
    import threading

    from tqdm import tqdm

    from sam2_tracking.jobs.run import JobRunner, run_job

    stop = threading.Event()
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(_signum, _frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print(f"\n{PROG} track: stopping; the frames tracked so far are being saved (Ctrl-C again to abort)",
              file=sys.stderr)

    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        signal.signal(signal.SIGINT, on_sigint)
    try:
        with tqdm(total=job.frames_total, initial=job.frames_done, unit="frame", desc="tracking",
                  disable=args.quiet) as bar:
            runner = JobRunner(
                worker_id=f"cli-{os.getpid()}", model_dir=model_dir.parent, resume_dir=store_path.parent / "resume",
                video_path=lambda dataset: Path(dataset.path), device=args.device,
                on_progress=lambda progress: bar.update(progress.frames_done - bar.n), stop_requested=stop.is_set,
                keep_resume_on_stop=True,
            )
            return run_job(store, job.job_id, runner)
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)


def run_convert(args: argparse.Namespace) -> Path:
    from dataclasses import replace

    from sam2_tracking.formats import FormatError
    from sam2_tracking.formats.files import export_notes, image_names, load_annotations, write_annotations

    if args.video is None:
        annotations = load_annotations(args.input, args.from_format, limits=import_limits())
        if args.format == "mp4":
            raise FormatError("--format mp4 draws on the video's frames: give --video VIDEO")
        report(annotations.warnings, "not imported from " + str(args.input))
        report(export_notes(annotations, args.format), "not exported")
        return write_annotations(annotations, args.output, args.format)
    from sam2_tracking.engine.video import open_video

    check_entering_video(args.video)
    with open_video(args.video) as frames:
        # Read against the video's size: every size the file declares is checked before a mask is decoded.
        annotations = load_annotations(args.input, args.from_format, frame_size=(frames.height, frames.width),
                                       limits=import_limits())
        if annotations.width and (annotations.width, annotations.height) != (frames.width, frames.height):
            raise FormatError(
                f"{args.input} is for a {annotations.width}x{annotations.height} video, {args.video} is "
                f"{frames.width}x{frames.height}"
            )
        annotations = replace(annotations, width=frames.width, height=frames.height,
                              frame_count=frames.frame_count, fps=frames.fps, name=Path(args.video).name,
                              frame_names=image_names(getattr(frames, "frame_names", ())))
        report(annotations.warnings, "not imported from " + str(args.input))
        report(export_notes(annotations, args.format), "not exported")
        video_frames = frames.iter_frames() if args.format == "mp4" else None
        return write_annotations(annotations, args.output, args.format, frames=video_frames)


def check_entering_video(path: str) -> None:
    """The app's upload check (upload_checks.check_video_upload: file size, the zip's directory, every frame's or
    the stream's header against SAM2T_MAX_FRAME_PIXELS) on a video given here, before a frame is decoded: a small
    zip can declare frames that take gigabytes to decode. Raises UploadError (a ValueError: exit status 2) with the
    message the app gives; a missing path is left to open_video's message."""
    from sam2_tracking.settings import load_settings
    from sam2_tracking.upload_checks import check_video_upload

    if Path(path).exists():
        check_video_upload(path, load_settings())


def import_limits():
    """The import limits of the environment's settings (SAM2T_MAX_...)."""
    from sam2_tracking.formats.limits import ImportLimits
    from sam2_tracking.settings import load_settings

    return ImportLimits.from_settings(load_settings())


def report(lines, what: str) -> None:
    """Tell the person what a conversion could not keep (stderr, so scripts still read `wrote PATH` alone)."""
    for line in lines:
        print(f"{PROG}: warning ({what}): {line}", file=sys.stderr)
