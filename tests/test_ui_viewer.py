"""The viewer's value as the server reads it (ViewerValue: untrusted, it comes from the browser) and the Annotate
handlers on a real store, without a browser: seeds saved from the viewer, a click added to a saved box, several tracks
in one job."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import gradio as gr
import pytest

from sam2_tracking.states import JobState
from ui import viewer as vw
from ui.viewer_value import (
    MAX_SEEDS,
    MAX_TEXT_CHARS,
    MAX_TRACKS,
    JobOverlay,
    PendingSeed,
    ViewerValue,
    ViewerValueError,
)

PAGE_KEYS = {"dataset", "revision", "base_revision", "tracks", "active", "selected", "hidden", "frame_idx", "pending",
             "seek", "reset_pending", "job", "poll"}  # the JSON shape web/static/viewer/ reads and writes


def test_a_value_the_server_sends_reads_back_the_same_in_the_pages_shape(handlers):
    h, store, dataset = handlers
    value = h.open_dataset(ViewerValue(), dataset.dataset_id)
    value = dataclasses.replace(value, selected=(value.active,), pending=(
        PendingSeed(3, value.active, (1.5, 2.0, 40.0, 50.0), ((10.0, 12.5, True), (20.0, 3.0, False))),))
    sent = value.to_json()
    assert set(sent) == PAGE_KEYS and isinstance(sent["revision"], str)
    assert sent["pending"] == {"3": {str(value.active): {"box": [1.5, 2.0, 40.0, 50.0],
                                                        "clicks": [[10.0, 12.5, True], [20.0, 3.0, False]]}}}
    assert sent["dataset"] == {"id": dataset.dataset_id, "name": dataset.name, "frame_count": dataset.frame_count,
                               "width": dataset.width, "height": dataset.height, "fps": dataset.fps}
    assert ViewerValue.from_json(json.loads(json.dumps(sent))) == value
    overlay = JobOverlay(7, dataset.dataset_id, JobState.RUNNING, 0, 4, (0, 9))
    with_job = dataclasses.replace(value, job=overlay).to_json()
    assert with_job["job"] == {"id": 7, "dataset_id": dataset.dataset_id, "status": "running", "start": 0,
                               "current": 4, "frames": [0, 9]}
    assert ViewerValue.from_json(json.loads(json.dumps(with_job))).job == overlay
    assert vw.empty_value() == ViewerValue().to_json() and set(vw.empty_value()) == PAGE_KEYS


def test_missing_or_null_keys_take_their_defaults_and_json_numbers_are_numbers():
    assert ViewerValue.from_json(None) == ViewerValue() == ViewerValue.from_json({})
    value = ViewerValue.from_json({"dataset": {"id": 4}, "active": 3.0, "selected": None, "frame_idx": 7.0,
                                   "pending": None, "extra": "ignored"})
    assert value.dataset.id == 4 and value.active == 3 and value.selected == () and value.frame_idx == 7
    assert value.pending == () and "extra" not in value.to_json()


@pytest.mark.parametrize(("raw", "message"), [
    ("nonsense", "must be a JSON object"),
    ({"dataset": {"id": "1"}}, "dataset id must be a whole number"),
    ({"dataset": {"id": 1, "fps": "fast"}}, "fps: not a number"),
    ({"dataset": [1]}, "dataset must be a JSON object"),
    ({"selected": [1, "2"]}, "selected: a track id must be a whole number"),
    ({"selected": [True]}, "must be a whole number"),
    ({"selected": 5}, "selected must be a list"),
    ({"hidden": [-4]}, "must be 0 or more"),
    ({"hidden": list(range(MAX_TRACKS + 1))}, f"more than the {MAX_TRACKS} allowed"),
    ({"active": 2.5}, "the active track must be a whole number"),
    ({"active": 2**70}, "at most"),
    ({"frame_idx": "7"}, "the viewer's frame must be a whole number"),
    ({"frame_idx": -3}, "frame must be 0 or more"),
    ({"base_revision": -5}, "base_revision must be 0 or more"),
    ({"revision": "r" * 500}, "revision is longer than"),
    ({"reset_pending": "yes"}, "reset_pending must be true or false"),
    ({"seek": -1}, "seek must be 0 or more"),
    ({"tracks": [{"id": 1, "label": "x" * (MAX_TEXT_CHARS + 1), "colour": "#ffffff"}]}, "label is longer than"),
    ({"tracks": [{"id": 1, "label": "x", "colour": "red"}]}, "colour must be #rrggbb"),
    ({"tracks": [{"id": 1, "label": "x", "colour": "#ffffff", "begin": "0"}]}, "first frame must be a whole"),
    ({"job": {"id": 1, "dataset_id": 1, "status": "exploded"}}, "job status must be one of"),
    ({"job": {"id": 1, "dataset_id": 1, "status": "running", "frames": [0, 1, 2]}}, "job frames holds 3"),
    ({"pending": []}, "pending must be a JSON object"),
    ({"pending": {"x": {}}}, r"frame 'x': not a frame"),
    ({"pending": {"-1": {}}}, r"frame '-1': not a frame"),
    ({"pending": {"1": {"t": {}}}}, "track 't': not a track id"),
    ({"pending": {"1": {"2": "box"}}}, "an unsaved edit must be a JSON object"),
    ({"pending": {"1": {"2": {"box": [1, 1, 9]}}}}, "a box has four numbers"),
    ({"pending": {"1": {"2": {"box": [1, 1, math.nan, 9]}}}}, "box: not a number"),
    ({"pending": {"1": {"2": {"box": [1, 1, "9", 9]}}}}, "box: not a number"),
    ({"pending": {"1": {"2": {"clicks": [[1, 2]]}}}}, r"a click is \[x, y, positive\]"),
    ({"pending": {"1": {"2": {"clicks": [[1, 2, "yes"]]}}}}, r"a click is \[x, y, positive\]"),
    ({"pending": {"1": {"2": {"clicks": [[1, math.inf, True]]}}}}, "click: not a number"),
    ({"pending": {"1": {"2": {"clicks": [[1, 2, True]] * 65}}}}, "at most 64 clicks"),
    ({"pending": {str(f): {"2": {"clicks": []}} for f in range(MAX_SEEDS + 1)}}, "more than 10000 unsaved"),
])
def test_every_field_the_page_sends_is_checked(raw, message):
    with pytest.raises(ViewerValueError, match=message):
        ViewerValue.from_json(raw)
    # In an event handler the same refusal is a message for the person (gr.Error), not a server error.
    with pytest.raises(gr.Error, match="The page sent a viewer state the server cannot use"):
        vw.read_value(raw)


def test_pending_edits_are_checked_against_the_video_and_clamped():
    value = ViewerValue.from_json({"pending": {"4": {"2": {"box": [-10, 5, 900, 50], "clicks": [[700, -3, 1]]}},
                                               "1": {"2": {"box": None, "clicks": []}}}})
    assert value.has_unsaved and not ViewerValue.from_json({"pending": {"1": {"2": {"clicks": []}}}}).has_unsaved
    [edit] = vw.pending_edits(value, width=640, height=360, frame_count=10)
    assert (edit.frame_idx, edit.track_id) == (4, 2)
    assert (edit.box.x1, edit.box.y1, edit.box.x2, edit.box.y2) == (0.0, 5.0, 640.0, 50.0)
    assert [(c.x, c.y, c.positive) for c in edit.clicks] == [(639.0, 0.0, True)]
    for pending, message in [({"10": {"2": {"box": [1, 1, 9, 9]}}}, "not a frame of this video"),
                             ({"1": {"2": {"box": [5, 5, 6, 6]}}}, "empty"),
                             ({"1": {"2": {"box": [700, 5, 800, 60]}}}, "empty")]:
        with pytest.raises(ValueError, match=message):
            vw.pending_edits(ViewerValue.from_json({"pending": pending}), width=640, height=360, frame_count=10)


@pytest.fixture()
def handlers(tmp_path: Path, sample_video: Path):
    from queues.config import get_store
    from sam2_tracking.library import add_video_if_missing
    from sam2_tracking.settings import Settings
    from ui.annotate import AnnotateHandlers

    settings = Settings(data_dir=tmp_path / "data", model_dir=tmp_path / "models")
    store = get_store(settings)
    dataset = add_video_if_missing(store, sample_video, seed_file=sample_video.with_suffix(".json"))
    return AnnotateHandlers(settings, store), store, dataset


def test_a_click_added_to_a_saved_box_keeps_the_box(handlers):
    h, store, dataset = handlers
    value = h.open_dataset(ViewerValue(), dataset.dataset_id)
    track_id = value.active
    saved = store.get_features(track_id, 0, 1)[0]
    value = dataclasses.replace(value, pending=(PendingSeed(0, track_id, None, ((500, 180, False),)),))
    value, message = h.save(value)
    assert message == "Saved 1 edit(s)." and value.reset_pending and value.pending == ()
    [feature] = store.get_features(track_id, 0, 1)
    assert feature.box == saved.box and [(c.x, c.y, c.positive) for c in feature.clicks] == [(500.0, 180.0, False)]


def test_ticked_tracks_go_into_one_job_and_stale_values_are_refused(handlers):
    h, store, dataset = handlers
    store.set_setting("sam2_enabled", True)
    store.set_setting("tracking_enabled", True)
    store.upsert_model("m", "configs/sam2.1/sam2.1_hiera_t.yaml", "http://127.0.0.1:9/m.pt", is_default=False,
                       status="ready")
    value = h.open_dataset(ViewerValue(), dataset.dataset_id)
    track_ids = [t.id for t in value.tracks]
    value = dataclasses.replace(value, selected=tuple(track_ids))
    _value, job_id, message = h.start_tracking(value, "m", "cpu", 5, "forward", "10", 5, owner="ann")
    job = store.get_job(job_id)
    assert sorted(job.spec.track_ids) == sorted(track_ids) and job.owner == "ann" and f"Job {job_id}" in message
    with pytest.raises(gr.Error, match="no longer exists"):
        h.start_tracking(dataclasses.replace(value, selected=(424242,)), "m", "cpu", 5, "forward", "10", 5,
                         owner="ann")
    value = dataclasses.replace(value, pending=(PendingSeed(3, track_ids[0], (1, 1, 50, 50), ()),))
    with pytest.raises(gr.Error, match="Save your edits first"):
        h.start_tracking(value, "m", "cpu", 5, "forward", "10", 5, owner="ann")
    assert len(store.list_jobs()) == 1


def test_the_job_panel_counts_frames_tracked_before_their_batch_commits(handlers):
    """A notification comes as soon as its frame is tracked (queues.runner): the panel's bar and text follow it while
    the committed count is still 0, also for a job in both directions (where the current frame says nothing)."""
    from queues.jobs_api import Caller
    from sam2_tracking.store import JobNotification

    h, store, dataset = handlers
    store.set_setting("sam2_enabled", True)
    store.set_setting("tracking_enabled", True)
    store.upsert_model("m", "configs/sam2.1/sam2.1_hiera_t.yaml", "http://127.0.0.1:9/m.pt", is_default=False,
                       status="ready")
    value = h.open_dataset(ViewerValue(), dataset.dataset_id)  # frame 0, where the sample's seeds are
    _value, job_id, _message = h.start_tracking(value, "m", "cpu", 15, "both", "100", 10, owner="ann")
    job = store.get_job(job_id)
    assert job.frames_total == 15 and store.claim_job(job_id, "host:1:cpu:0")
    store.update_job(job_id, notification=JobNotification(frame_idx=5, frames_done=6, percent=40.0,
                                                          preview_jpeg=None, frames_total=15))
    caller = Caller("ann", False)
    panel, view = h.job_view(caller, job_id)
    assert view.frames_done == 0 and abs(panel.fraction - 6 / 15) < 1e-9  # done: committed, for the viewer's reload
    assert "0/15 frames" in panel.text and "Tracked 6/15" in panel.text
    # The My jobs table and the Admin jobs table say the same: tracked, and how many of them are saved.
    assert my_rows(store, caller)[0][4] == "6/15 (0 saved)"
    assert admin_rows(store)[0][5] == "6/15 (0 saved)"
    store.update_job(job_id, status=JobState.DONE, frames_done=15)
    assert "Tracked" not in h.job_view(caller, job_id)[0].text
    assert my_rows(store, caller)[0][4] == "15/15" and admin_rows(store)[0][5] == "15/15"


def my_rows(store, caller):
    from queues.jobs_api import list_my_jobs
    from ui.views import my_jobs_rows

    return my_jobs_rows(list_my_jobs(store, caller))


def admin_rows(store):
    from ui.views import jobs_rows

    return jobs_rows(store.list_jobs(limit=30), {})
