"""The instant SAM2 preview in a real browser (Debian's Chromium via Playwright) against `python app.py`, whose
embedded CPU consumer serves the preview queue: a positive then a negative click refine the pending mask, Accept
saves the prompts as the keyframe, a job tracks from it, and the job's mask on that frame is the accepted preview.
"""

from __future__ import annotations

import numpy as np
import pytest

from sam2_tracking.engine.masks import rle_to_mask
from sam2_tracking.testing.app_server import start_tracking_ready_app
from sam2_tracking.testing.browser import preview_click as click
from sam2_tracking.testing.wait import wait_for
from tests.test_ui_browser import VIEWPORT, activate_track, painted, screenshot

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module")
def app(tmp_path_factory, model_server):
    server, store, _settings = start_tracking_ready_app(tmp_path_factory.mktemp("preview-ui"), model_server)
    yield server, store
    server.stop()


def test_click_refine_accept_and_track_from_the_preview(browser, app):
    server, store = app
    dataset = next(d for d in store.list_datasets() if d.name == "sample_shapes.mp4")
    track_id = store.list_tracks(dataset.dataset_id)[0].track_id  # the red disc, seeded by a box on frame 0
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(server.url)
    painted(page, 0)
    page.wait_for_function("window.sam2Preview && window.sam2Preview.hooked", timeout=30_000)
    activate_track(page, track_id)

    positive = click(page, 500 / 640, 180 / 360)
    assert positive.get("error") is None and positive["frame"] == 0 and positive["track"] == track_id
    assert positive["encoded"]
    negative = click(page, 470 / 640, 150 / 360, negative=True)
    assert negative.get("error") is None and not negative["encoded"]  # the frame's features were reused
    assert negative["present"], "the random-weight test model scores this seed absent; pick other clicks"
    assert negative["counts"] != positive["counts"], "the negative click did not change the pending mask"
    page.locator("#seed-preview .pv-status").get_by_text("Preview:").wait_for()
    page.wait_for_timeout(300)  # the viewer paints the pending mask on its next animation frame
    screenshot(page, "preview.png")
    assert store.get_features(track_id, 0, 1)[0].clicks == ()  # a preview saves nothing

    page.keyboard.press("a")  # Accept: the prompts become the keyframe, like any saved edit
    page.locator("#annotate-status").get_by_text("Saved 1 edit(s)").wait_for()
    [keyframe] = store.get_features(track_id, 0, 1)
    # Clicks refine the frame's saved box (the preview was of box + clicks too, as the job will be).
    assert keyframe.keyframe and keyframe.box is not None and keyframe.box.x1 == 462
    assert [c.positive for c in keyframe.clicks] == [True, False]
    assert abs(keyframe.clicks[0].x - 500) < 3 and abs(keyframe.clicks[0].y - 180) < 3

    frames = page.locator("#track-frames input")
    frames.fill("3")
    frames.press("Tab")
    page.locator("#track-button").click()
    job = wait_for(lambda: next(iter(store.list_jobs()), None), 30, "the job to be queued")
    job = wait_for(lambda: store.get_job(job.job_id) if store.get_job(job.job_id).finished else None, 180,
                   f"the job to end ({server.log()})")
    assert job.status == "done", job.error
    [tracked] = store.get_features(track_id, 0, 1)
    accepted = rle_to_mask({"size": [dataset.height, dataset.width], "counts": negative["counts"]})
    assert tracked.present and np.array_equal(tracked.mask, accepted)
    page.close()


def test_clear_drops_the_seed_and_bad_requests_get_a_message(browser, app):
    server, store = app
    dataset = next(d for d in store.list_datasets() if d.name == "sample_shapes.mp4")
    track_id = store.list_tracks(dataset.dataset_id)[1].track_id
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(server.url)
    painted(page, 0)
    page.wait_for_function("window.sam2Preview && window.sam2Preview.hooked", timeout=30_000)
    page.evaluate("window.sam2Viewer.seek(5)")
    painted(page, 5)
    activate_track(page, track_id)
    assert click(page, 0.12, 0.25).get("error") is None
    page.locator("#seed-preview .pv-clear").click()
    page.locator("#seed-preview .pv-status").get_by_text("Cleared.").wait_for()
    assert page.evaluate(f"window.sam2Viewer.state().pending['5'] && window.sam2Viewer.state().pending['5']"
                         f"['{track_id}'] || null") is None
    # No worker on the gpu queue: a message in the page, nothing saved.
    page.locator("#track-queue input").click()
    page.get_by_role("option", name="gpu", exact=True).click()
    answer = click(page, 0.12, 0.25)
    assert answer["error"].startswith("No worker is listening on gpu")
    page.locator("#seed-preview .pv-status.pv-error").get_by_text("No worker is listening on gpu").wait_for()
    assert store.get_features(track_id, 5, 6) == []
    page.close()
