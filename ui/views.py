"""Formatting store records as table rows and short texts for the UI."""

from __future__ import annotations

import time
from collections.abc import Sequence

from queues.heartbeat import worker_gone
from queues.jobs_api import frames_tracked
from sam2_tracking.states import DOWNLOADING_MODEL_STATES, JobState


def format_bytes(value: int | None) -> str:
    if value is None:
        return ""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(value) < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return ""


def format_age(timestamp: float | None) -> str:
    if not timestamp:
        return ""
    age = max(0.0, time.time() - timestamp)
    return f"{age:.0f} s ago" if age < 120 else f"{age / 60:.0f} min ago"


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def models_rows(models) -> list[list]:
    rows = []
    for model in models:
        progress = ""
        if model.status in DOWNLOADING_MODEL_STATES and model.progress_bytes is not None:
            progress = format_bytes(model.progress_bytes)
            if model.total_bytes:
                progress += f" of {format_bytes(model.total_bytes)} ({100 * model.progress_bytes / model.total_bytes:.0f}%)"
        rows.append([model.name, "default" if model.is_default else "custom", model.status, format_bytes(model.size),
                     progress, model.error or ""])
    return rows


def workers_rows(workers, ready_models: list[str], queue_names: Sequence[str] | None = None) -> list[list]:
    """The Admin workers table: live consumers first, then those past the missed-heartbeat window, marked gone in
    their heartbeat cell (their rows are removed a day later: queues.heartbeat). queue_names: only these queues' workers."""
    now = time.time()
    shown = sorted((w for w in workers if queue_names is None or w.queue in queue_names),
                   key=lambda w: (worker_gone(w, now), w.queue, w.worker_id))
    return [[w.queue, w.worker_id, w.device, w.current_job_id or "",
             ("gone: last heartbeat " if worker_gone(w, now) else "") + format_age(w.heartbeat_at),
             worker_models_cell(w.models, ready_models)] for w in shown]


def worker_models_cell(worker_models, ready: list[str]) -> str:
    """One consumer's models, e.g. "tiny ✓, large –": ✓ verified in its own model folder, – not there yet (it
    fetches a ready model when a job needs it). Models are named without the "sam2.1_hiera_" prefix."""
    if worker_models is None:
        return "not reported"
    names = sorted(set(ready) | set(worker_models))
    if not names:
        return "none"
    return ", ".join(f"{name.removeprefix('sam2.1_hiera_')} {'✓' if name in worker_models else '–'}"
                     for name in names)


def frames_cell(frames_done: int, frames_tracked: int, frames_total: int) -> str:
    """A jobs table's progress cell: '25/30 (20 saved)' while frames wait for their batch's commit, else '20/30'."""
    if frames_tracked > frames_done:
        return f"{frames_tracked}/{frames_total} ({frames_done} saved)"
    return f"{frames_done}/{frames_total}"


def job_message(job) -> str:
    if job.status == JobState.FAILED:
        return job.error or JobState.FAILED.value
    if job.error or job.message:  # e.g. why someone other than the owner stopped it
        return job.error or job.message
    if job.resumed_count:
        return f"resumed {job.resumed_count}x after a worker stopped"
    return ""


def jobs_rows(jobs, dataset_names: dict[int, str]) -> list[list]:
    return [
        [job.job_id, dataset_names.get(job.dataset_id, job.dataset_id), ", ".join(map(str, job.spec.track_ids)),
         job.queue, job.status, frames_cell(job.frames_done, frames_tracked(job), job.frames_total), f"{job.fps or 0:.1f}",
         format_eta(job.eta_s) if job.status == JobState.RUNNING else "", job.worker or "", job_message(job)]
        for job in jobs
    ]


def my_jobs_rows(views) -> list[list]:
    """The Annotate tab's My jobs table from jobs_api.JobView records (ui/annotate_layout.JOB_COLUMNS)."""
    return [[v.job_id, v.owner or "", ", ".join(f"#{t}" for t in v.track_ids), v.status,
             frames_cell(v.frames_done, v.frames_tracked, v.frames_total), f"{v.fps or 0:.1f}",
             format_eta(v.eta_s) if v.status == JobState.RUNNING else "", v.message or ""] for v in views]


def job_summary(job) -> str:
    """One line for the Annotate tab's progress box."""
    text = f"Job {job.job_id}: {job.status}, {job.frames_done}/{job.frames_total} frames ({job.percent:.0f}%)"
    if job.status == JobState.RUNNING:
        if job.fps:
            text += f", {job.fps:.1f} frames/s"
        if job.eta_s is not None:
            text += f", about {format_eta(job.eta_s)} left"
        if job.current_frame_idx is not None:
            text += f", at frame {job.current_frame_idx}"
    message = job_message(job)
    return text + (f". {message}" if message else ".")
