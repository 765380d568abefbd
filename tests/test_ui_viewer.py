"""The viewer's value as the server reads it (untrusted: it comes from the browser) and the Annotate handlers on a real
store, without a browser: seeds saved from the viewer, a click added to a saved box, several tracks in one job."""

from __future__ import annotations

import math
from pathlib import Path

import gradio as gr
import pytest

from ui import viewer as vw


def test_normalise_fills_every_field_and_drops_what_is_not_an_id():
    value = vw.normalise({"dataset": {"id": "1"}, "selected": [1, "2", None, True, 2.5, "x"], "frame_idx": "7",
                          "pending": [], "active": 3.0, "extra": "ignored"})
    assert value["dataset"] is None  # a dataset id must be an int
    assert value["selected"] == [1, 2] and value["frame_idx"] == 7 and value["active"] == 3
    assert value["pending"] == {} and "extra" not in value
    assert vw.normalise("nonsense") == vw.empty_value()


def test_pending_edits_are_checked_and_clamped():
    value = vw.normalise({"pending": {"4": {"2": {"box": [-10, 5, 900, 50], "clicks": [[700, -3, 1]]}},
                                      "1": {"2": {"box": None, "clicks": []}}}})
    [edit] = vw.pending_edits(value, width=640, height=360, frame_count=10)
    assert (edit.frame_idx, edit.track_id) == (4, 2)
    assert (edit.box.x1, edit.box.y1, edit.box.x2, edit.box.y2) == (0.0, 5.0, 640.0, 50.0)
    assert [(c.x, c.y, c.positive) for c in edit.clicks] == [(639.0, 0.0, True)]
    for pending, message in [({"10": {"2": {"box": [1, 1, 9, 9]}}}, "not a frame"),
                             ({"-1": {"2": {"box": [1, 1, 9, 9]}}}, "not a frame"),
                             ({"1": {"x": {"box": [1, 1, 9, 9]}}}, "not a track id"),
                             ({"1": {"2": {"box": [1, 1, 9]}}}, "four numbers"),
                             ({"1": {"2": {"box": [1, 1, math.nan, 9]}}}, "not a number"),
                             ({"1": {"2": {"box": [5, 5, 6, 6]}}}, "empty"),
                             ({"1": {"2": {"clicks": [[1, 2]]}}}, r"\[x, y, positive\]"),
                             ({"1": {"2": {"clicks": [[1, 2, True]] * 65}}}, "at most 64")]:
        with pytest.raises(ValueError, match=message):
            vw.pending_edits(vw.normalise({"pending": pending}), width=640, height=360, frame_count=10)


@pytest.fixture()
def handlers(tmp_path: Path, sample_video: Path):
    from queues.runner import get_store
    from sam2_tracking.library import add_video_if_missing
    from sam2_tracking.settings import Settings
    from ui.annotate import AnnotateHandlers

    settings = Settings(data_dir=tmp_path / "data", model_dir=tmp_path / "models")
    store = get_store(settings)
    dataset = add_video_if_missing(store, sample_video, seed_file=sample_video.with_suffix(".json"))
    return AnnotateHandlers(settings, store), store, dataset


def test_a_click_added_to_a_saved_box_keeps_the_box(handlers):
    h, store, dataset = handlers
    value = h.open_dataset(vw.empty_value(), dataset.dataset_id)
    track_id = value["active"]
    saved = store.get_features(track_id, 0, 1)[0]
    value["pending"] = {"0": {str(track_id): {"box": None, "clicks": [[500, 180, False]]}}}
    value, message = h.save(value)
    assert message == "Saved 1 edit(s)." and value["reset_pending"] and value["pending"] == {}
    [feature] = store.get_features(track_id, 0, 1)
    assert feature.box == saved.box and [(c.x, c.y, c.positive) for c in feature.clicks] == [(500.0, 180.0, False)]


def test_ticked_tracks_go_into_one_job_and_stale_values_are_refused(handlers):
    h, store, dataset = handlers
    store.set_setting("sam2_enabled", True)
    store.set_setting("tracking_enabled", True)
    store.upsert_model("m", "configs/sam2.1/sam2.1_hiera_t.yaml", "http://127.0.0.1:9/m.pt", is_default=False,
                       status="ready")
    value = h.open_dataset(vw.empty_value(), dataset.dataset_id)
    track_ids = [t["id"] for t in value["tracks"]]
    value["selected"] = track_ids
    _value, job_id, message = h.start_tracking(value, "m", "cpu", 5, "forward", "10", 5, owner="ann")
    job = store.get_job(job_id)
    assert sorted(job.spec.track_ids) == sorted(track_ids) and job.owner == "ann" and f"Job {job_id}" in message
    with pytest.raises(gr.Error, match="no longer exists"):
        h.start_tracking({**value, "selected": [424242]}, "m", "cpu", 5, "forward", "10", 5, owner="ann")
    value["pending"] = {"3": {str(track_ids[0]): {"box": [1, 1, 50, 50], "clicks": []}}}
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
    value = h.open_dataset(vw.empty_value(), dataset.dataset_id)  # frame 0, where the sample's seeds are
    _value, job_id, _message = h.start_tracking(value, "m", "cpu", 15, "both", "100", 10, owner="ann")
    job = store.get_job(job_id)
    assert job.frames_total == 15 and store.claim_job(job_id, "host:1:cpu:0")
    store.update_job(job_id, notification=JobNotification(frame_idx=5, frames_done=6, percent=40.0,
                                                          preview_jpeg=None, frames_total=15))
    caller = Caller("ann", False)
    view = h.job_view(caller, job_id)
    assert view["done"] == 0 and abs(view["fraction"] - 6 / 15) < 1e-9  # done: committed, for the viewer's reload
    assert "0/15 frames" in view["text"] and "Tracked 6/15" in view["text"]
    # The My jobs table and the Admin jobs table say the same: tracked, and how many of them are saved.
    assert h.jobs_rows(caller)[0][4] == "6/15 (0 saved)"
    assert vw_rows(store)[0][5] == "6/15 (0 saved)"
    store.update_job(job_id, status="done", frames_done=15)
    assert "Tracked" not in h.job_view(caller, job_id)["text"]
    assert h.jobs_rows(caller)[0][4] == "15/15" and vw_rows(store)[0][5] == "15/15"


def vw_rows(store):
    from ui.views import jobs_rows

    return jobs_rows(store.list_jobs(limit=30), {})
