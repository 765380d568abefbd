"""Export the open video's annotations to a file, and import a file into it (Annotate tab, 'Import / export')."""

from __future__ import annotations

import os
import time

import gradio as gr

from sam2_tracking.settings import Settings
from ui.auth import user_error

FORMAT_LABELS = {
    "DIVE JSON": "dive",
    "DIVE mask zip": "maskzip",
    "COCO (RLE, with track ids)": "coco",
    "VIAME CSV (boxes + contour)": "viame",
    "Overlay video (MP4)": "mp4",
}
IMPORT_LABELS = {"Detect from the file": None, "DIVE JSON": "dive", "DIVE mask zip": "maskzip", "COCO": "coco",
                 "VIAME CSV": "viame"}


def export_dataset(settings: Settings, store, dataset_id: int | None, format_label: str,
                   username: str | None = None) -> str:
    """Write the dataset's saved annotations into the user's export folder (old exports pruned first); return the
    file's path for gr.File."""
    from dataclasses import replace

    from sam2_tracking.engine.video import open_video
    from sam2_tracking.export_files import prune_exports, user_export_dir
    from sam2_tracking.formats.files import EXTENSIONS, export_notes, image_names, write_annotations

    if dataset_id is None:
        raise user_error("Open a video first.")
    fmt = FORMAT_LABELS.get(format_label)
    if fmt is None:
        raise user_error(f"Unknown export format {format_label!r}.")
    dataset = store.get_dataset(dataset_id)
    annotations = store.export_annotations(dataset_id)
    out_dir = user_export_dir(settings.data_dir / "exports", username)
    prune_exports(settings.data_dir / "exports", out_dir, settings.export_max_age_seconds, settings.exports_per_user)
    out_dir.mkdir(parents=True, exist_ok=True)
    if dataset.kind == "images":  # COCO and VIAME name an image sequence's frames by their files (DIVE matches them)
        with open_video(dataset.path) as frames:
            annotations = replace(annotations, frame_names=image_names(getattr(frames, "frame_names", ())))
    for note in export_notes(annotations, fmt):
        gr.Warning(f"Export: {note}.")
    stem = dataset.name.rsplit(".", 1)[0]
    path = out_dir / f"{stem}-{fmt}-{time.strftime('%Y%m%d-%H%M%S')}{EXTENSIONS[fmt]}"
    if fmt == "mp4":
        with open_video(dataset.path) as frames:
            return str(write_annotations(annotations, path, fmt, frames=frames.iter_frames(0, frames.frame_count),
                                         video_name=dataset.name))
    return str(write_annotations(annotations, path, fmt, video_name=dataset.name))


def import_file(store, dataset_id: int | None, base_revision: int, file_path: str | None, format_label: str,
                replace_existing: bool, settings: Settings | None = None) -> tuple[int, str]:
    """Validate and apply an annotation file in one transaction; return (new revision, message).

    The file is read against the open video's size (every size it declares is checked before a mask is decoded)
    and the import limits in settings; what it holds that the app cannot keep is listed in the message."""
    from sam2_tracking.formats import FormatError
    from sam2_tracking.store import RevisionConflict, StoreError

    if dataset_id is None:
        raise user_error("Open a video first.")
    if not file_path:
        raise user_error("Choose a DIVE JSON, DIVE mask zip, COCO or VIAME CSV file to import.")
    from sam2_tracking.formats.files import load_annotations, store_import_notes
    from sam2_tracking.formats.limits import DEFAULT_LIMITS, ImportLimits

    try:
        dataset = store.get_dataset(dataset_id)
        limits = DEFAULT_LIMITS if settings is None else ImportLimits.from_settings(settings)
        annotations = load_annotations(file_path, IMPORT_LABELS.get(format_label),
                                       frame_size=(dataset.height, dataset.width), limits=limits)
        mapping = store.import_annotations(dataset_id, annotations, replace_existing=bool(replace_existing),
                                           base_revision=base_revision)
    except RevisionConflict as exc:
        raise user_error(str(exc)) from None
    except (FormatError, StoreError, ValueError) as exc:
        # Readers name the file by its path; here that is Gradio's temporary copy, which means nothing to the
        # person (and shows the server's folders): name it as they uploaded it.
        text = str(exc).replace(str(file_path), os.path.basename(str(file_path)))
        raise user_error(f"Nothing was imported: {text}") from None
    notes = store_import_notes(annotations)
    for note in notes:
        gr.Warning(f"Import: {note}.")
    message = f"Imported {len(mapping)} track(s)."
    if notes:
        message += " Not kept: " + "; ".join(notes) + "."
    return store.get_revision(dataset_id), message
