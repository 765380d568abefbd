"""The whole product in a real browser: Debian's Chromium driven by Playwright against `python app.py`.

Kept to a few flows because each costs CI time: an annotator drawing in the browser viewer and tracking two objects
in one job that follows them across a page reload; the admin stopping jobs by turning SAM2 off; and an annotator
never seeing the Admin tab. SAM2T_SCREENSHOT_DIR=docs makes the tests write the README's screenshots.
"""

from __future__ import annotations

import os

import pytest

from sam2_tracking.testing.app_server import AppServer, start_tracking_ready_app
from sam2_tracking.testing.queue_harness import TEST_MODEL_NAME
from sam2_tracking.testing.wait import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.browser]

VIEWPORT = {"width": 1400, "height": 1100}


@pytest.fixture(scope="module")
def app(tmp_path_factory, model_server):
    server, store, settings = start_tracking_ready_app(tmp_path_factory.mktemp("ui"), model_server)
    yield server, store, settings
    server.stop()


def screenshot(page, name: str) -> None:
    folder = os.environ.get("SAM2T_SCREENSHOT_DIR")
    if folder:
        page.screenshot(path=os.path.join(folder, name), full_page=True)


def painted(page, frame_idx: int) -> None:
    page.locator(f'#frame-viewer .sv-root[data-painted-frame="{frame_idx}"]').wait_for(timeout=30_000)


def drag_box(page, fx1: float, fy1: float, fx2: float, fy2: float) -> None:
    """Drag on the viewer's canvas between two points given as fractions of its size (the rubber band path)."""
    canvas = page.locator("#frame-viewer canvas.sv-frame")
    canvas.scroll_into_view_if_needed()  # mouse coordinates are the viewport's
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] * fx1, box["y"] + box["height"] * fy1)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * (fx1 + fx2) / 2, box["y"] + box["height"] * (fy1 + fy2) / 2, steps=4)
    page.mouse.move(box["x"] + box["width"] * fx2, box["y"] + box["height"] * fy2, steps=4)
    page.mouse.up()


def live_preview_off(page) -> None:
    """The live SAM2 preview of a drawn seed has its own test (test_preview_browser.py); here it would only add
    preview computations in front of the jobs on the same two CPU cores."""
    if page.locator(".pv-on").count():
        page.locator(".pv-on").uncheck()


def activate_track(page, track_id: int) -> None:
    page.locator(f'#frame-viewer .sv-track[data-track-id="{track_id}"] .sv-name').click()
    page.locator(f'#frame-viewer .sv-track.sv-active[data-track-id="{track_id}"]').wait_for()


def check_rle_decoder(page) -> None:
    """The viewer's JavaScript reads pycocotools' compressed RLE exactly (runs longer than 2^5 and 2^10 included)."""
    import numpy as np

    from sam2_tracking.engine.masks import mask_to_rle

    rng = np.random.default_rng(0)
    masks = [np.zeros((360, 640), bool), np.ones((360, 640), bool), rng.random((37, 53)) > 0.5]
    blocky = np.zeros((1080, 1920), bool)
    blocky[100:900, 300:1500] = True
    blocky[400:420, 700:1400] = False
    masks.append(blocky)
    for mask in masks:
        flat = mask.flatten(order="F").astype(np.int8)
        changes = np.flatnonzero(np.diff(flat)) + 1
        bounds = np.concatenate([[0], changes, [flat.size]])
        runs = np.diff(bounds).tolist()
        if flat[0]:
            runs = [0, *runs]  # COCO RLE always starts with a run of zeros
        decoded = page.evaluate("(c) => window.sam2Viewer.decodeCounts(c)", mask_to_rle(mask)["counts"])
        assert decoded == runs


def test_two_tracks_in_one_job_followed_across_a_reload_cancelled_corrected_retracked_and_undone(browser, app):
    server, store, _settings = app
    dataset = next(d for d in store.list_datasets() if d.name == "sample_shapes.mp4")
    track_ids = [t.track_id for t in store.list_tracks(dataset.dataset_id)][:2]
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(server.url)
    painted(page, 0)
    screenshot(page, "annotate.png")
    check_rle_decoder(page)
    live_preview_off(page)

    # Step with the keyboard (right, shift+right = +10, left) and draw on the frame shown: frame 10.
    page.keyboard.press("ArrowRight")
    painted(page, 1)
    page.keyboard.press("Shift+ArrowRight")
    painted(page, 11)
    page.keyboard.press("ArrowLeft")
    painted(page, 10)
    activate_track(page, track_ids[0])
    drag_box(page, 0.70, 0.35, 0.86, 0.62)
    activate_track(page, track_ids[1])
    drag_box(page, 0.05, 0.12, 0.20, 0.38)
    page.locator("#frame-viewer .sv-info").get_by_text("2 unsaved seed(s)").wait_for()
    # Tracking refuses unsaved edits, and queues nothing.
    page.keyboard.press("t")
    page.get_by_text("Save your edits first").first.wait_for()
    assert store.list_jobs() == []
    page.keyboard.press("s")
    page.locator("#annotate-status").get_by_text("Saved 2 edit(s)").wait_for()
    for track_id in track_ids:
        [feature] = store.get_features(track_id, 10, 11)
        assert feature.keyframe and feature.box is not None
    box = store.get_features(track_ids[0], 10, 11)[0].box
    assert 420 <= box.x1 <= 470 and 200 <= box.y2 <= 240  # where the drag was, in video pixels (640x360)

    # Both tracks ticked go into ONE job; watch its progress bar and a preview before it ends.
    for track_id in track_ids:
        page.locator(f'#frame-viewer .sv-track[data-track-id="{track_id}"] .sv-select').check()
    frames = page.locator("#track-frames input")
    frames.fill("60")
    frames.press("Tab")
    # Commit every 10 frames, so the job cancelled below keeps some; a preview shows as soon as 10 % is tracked.
    page.locator("#track-advanced").get_by_text("Advanced").click()
    page.locator("#batch-choice input").click()
    page.get_by_role("option", name="10", exact=True).click()
    page.locator("#track-button").click()
    page.locator("#job-progress").get_by_text("Job 1").wait_for(timeout=10_000)
    [job] = store.list_jobs()
    assert sorted(job.spec.track_ids) == sorted(track_ids) and job.spec.start_frame_idx == 10
    page.locator('#job-bar progress:not([value="0.0000"])').wait_for(timeout=120_000)
    page.locator("#job-preview img").wait_for(timeout=240_000)
    # The preview came when 10 % was tracked; the cancel below keeps what was committed, so let a batch commit.
    wait_for(lambda: store.get_job(job.job_id).frames_done >= 10, 240, "the job's first batch to commit")
    assert not store.get_job(job.job_id).finished
    screenshot(page, "tracking.png")

    # A reloaded page reattaches to the running job, and cancels it.
    page.reload()
    painted(page, 0)
    live_preview_off(page)
    page.locator("#job-progress").get_by_text(f"Job {job.job_id}: running").wait_for(timeout=30_000)
    page.locator("#cancel-button").click()
    wait_for(lambda: store.get_job(job.job_id).finished, 60, "the job to stop")
    stopped = store.get_job(job.job_id)
    assert stopped.status == "cancelled" and 0 < stopped.frames_done < stopped.frames_total
    kept = store.job_frames_written(job.job_id)
    assert kept and all(store.get_features(track_ids[0], f, f + 1) for f in kept)

    # Correct a tracked frame with a box and re-track from it (track 1 only): a second job owns what follows.
    fixed = sorted(kept)[3]
    page.locator(f'#frame-viewer .sv-track[data-track-id="{track_ids[1]}"] .sv-select').uncheck()
    page.evaluate(f"window.sam2Viewer.seek({fixed})")
    painted(page, fixed)
    activate_track(page, track_ids[0])
    drag_box(page, 0.66, 0.33, 0.88, 0.66)
    page.locator("#frame-viewer .sv-info").get_by_text("1 unsaved seed(s)").wait_for()
    page.locator("#save-button").click()
    page.locator("#annotate-status").get_by_text("Saved 1 edit(s)").wait_for()
    frames.fill("3")
    frames.press("Tab")
    page.locator("#track-button").click()
    wait_for(lambda: len(store.list_jobs()) == 2 and store.list_jobs()[0].finished, 180, "the re-track job to end")
    retrack = store.list_jobs()[0]
    assert retrack.status == "done" and retrack.spec.track_ids == (track_ids[0],)
    assert retrack.spec.start_frame_idx == fixed
    corrected = store.get_features(track_ids[0], fixed, fixed + 3)
    assert corrected[0].keyframe and corrected[0].box is not None
    assert [f.job_id for f in corrected[1:]] == [retrack.job_id] * 2

    # Undo the re-track: the first job's frames come back.
    page.locator("#undo-button").click()
    page.locator("#annotate-status").get_by_text(f"Job {retrack.job_id} undone").wait_for(timeout=30_000)
    assert [f.job_id for f in store.get_features(track_ids[0], fixed + 1, fixed + 3)] == [job.job_id] * 2
    page.close()


def drag_video(page, start: tuple[float, float], end: tuple[float, float], width: int, height: int) -> None:
    """Drag on the viewer's canvas between two points given in video pixels."""
    canvas = page.locator("#frame-viewer canvas.sv-frame")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()

    def screen(x: float, y: float) -> tuple[float, float]:
        return box["x"] + x * box["width"] / width, box["y"] + y * box["height"] / height

    page.mouse.move(*screen(*start))
    page.mouse.down()
    page.mouse.move(*screen(*end), steps=6)
    page.mouse.up()


def saved_and_shown(page) -> None:
    """The viewer took the saved state back: no unsaved seed, and this frame's saved annotations loaded again."""
    page.wait_for_function("() => { const s = window.sam2Viewer.state();"
                           " return s.overlays && Object.keys(s.pending).length === 0; }", timeout=30_000)


def test_a_saved_box_is_resized_by_a_corner_and_moved_by_its_body(browser, app):
    server, store, _settings = app
    dataset = next(d for d in store.list_datasets() if d.name == "sample_shapes.mp4")
    track_id = store.list_tracks(dataset.dataset_id)[1].track_id  # frame 0 of this one is no other test's
    [saved] = store.get_features(track_id, 0, 1)
    assert saved.keyframe and saved.box is not None
    b = saved.box
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(server.url)
    painted(page, 0)
    live_preview_off(page)
    activate_track(page, track_id)
    saved_and_shown(page)

    def stored_box() -> list[float]:
        box = store.get_features(track_id, 0, 1)[0].box
        return [box.x1, box.y1, box.x2, box.y2]

    def close_to(expected: list[float]) -> bool:
        return all(abs(a - e) <= 1.5 for a, e in zip(stored_box(), expected, strict=True))

    # The saved box's bottom-right handle, dragged 30 px right and 20 px down (video pixels): only it moves.
    drag_video(page, (b.x2, b.y2), (b.x2 + 30, b.y2 + 20), dataset.width, dataset.height)
    page.locator("#frame-viewer .sv-info").get_by_text("1 unsaved seed(s)").wait_for()
    assert stored_box() == [b.x1, b.y1, b.x2, b.y2]  # an unsaved edit until Save
    page.keyboard.press("s")
    resized = [b.x1, b.y1, b.x2 + 30, b.y2 + 20]
    wait_for(lambda: close_to(resized), 30, f"the resized box {resized} (stored: {stored_box()})")
    [feature] = store.get_features(track_id, 0, 1)
    assert feature.keyframe and feature.clicks == saved.clicks  # the keyframe kept its clicks

    # Dragged from inside, the saved box moves whole: 20 px left, 10 px down.
    saved_and_shown(page)
    x1, y1, x2, y2 = stored_box()
    centre = ((x1 + x2) / 2, (y1 + y2) / 2)
    drag_video(page, centre, (centre[0] - 20, centre[1] + 10), dataset.width, dataset.height)
    page.locator("#frame-viewer .sv-info").get_by_text("1 unsaved seed(s)").wait_for()
    page.locator("#save-button").click()
    moved = [x1 - 20, y1 + 10, x2 - 20, y2 + 10]
    wait_for(lambda: close_to(moved), 30, f"the moved box {moved} (stored: {stored_box()})")
    page.close()


def test_admin_turning_sam2_off_stops_a_running_job_and_keeps_its_frames(browser, app):
    from queues import dispatch
    from sam2_tracking.types import JobSpec

    server, store, settings = app
    store.set_setting("sam2_enabled", True)
    store.set_setting("tracking_enabled", True)
    dataset = next(d for d in store.list_datasets() if d.name == "sample_shapes.mp4")
    track_id = store.list_tracks(dataset.dataset_id)[0].track_id
    spec = JobSpec(dataset_id=dataset.dataset_id, track_ids=(track_id,), start_frame_idx=0, model_name=TEST_MODEL_NAME,
                   queue="cpu", num_frames=None, batch_size=10, notify_percent=5)
    job_id = dispatch.enqueue_tracking_job(settings, store, spec, owner="admin").job_id
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(server.url)
    page.get_by_role("tab", name="Admin").click()
    wait_for(lambda: store.get_job(job_id).frames_done >= 10, 120, "the job to commit a batch")
    page.locator("#sam2-toggle input").uncheck()
    page.locator("#admin-message").get_by_text("SAM2 support is off").wait_for()
    wait_for(lambda: store.get_job(job_id).finished, 60, "the job to stop")
    job = store.get_job(job_id)
    assert job.status == "cancelled" and job.frames_done >= 10 and "turned SAM2 off" in (job.message or "")
    assert len(store.job_frames_written(job_id)) == job.frames_done
    assert store.get_setting("tracking_enabled") is False
    # The toggles show the store after a reload, not the page's last state.
    page.reload()
    page.get_by_role("tab", name="Admin").click()
    assert not page.locator("#sam2-toggle input").is_checked()
    page.locator("#admin-jobs").get_by_text("turned SAM2 off").first.wait_for(state="attached", timeout=10_000)
    screenshot(page, "admin.png")
    page.close()


def test_annotator_never_sees_the_admin_tab_and_a_refused_toggle_reverts(browser, tmp_path):
    data_dir = tmp_path / "data"
    server = AppServer(data_dir, tmp_path / "models", SAM2T_ADMIN_PASSWORD="admin-secret",
                       SAM2T_ANNOTATORS="ann:ann-secret", SAM2T_EMBED_CONSUMERS="none")
    try:
        def login(user: str, password: str):
            context = browser.new_context(viewport=VIEWPORT)
            page = context.new_page()
            page.goto(server.url)
            page.locator("input").first.fill(user)
            page.locator("input[type=password]").fill(password)
            page.locator("input[type=password]").press("Enter")
            painted(page, 0)
            return context, page

        context, page = login("ann", "ann-secret")
        page.get_by_role("tab", name="Annotate").wait_for()
        page.wait_for_timeout(1500)  # the page load event has run (it would reveal the tab)
        assert page.get_by_role("tab", name="Admin").count() == 0 or not page.get_by_role("tab", name="Admin").is_visible()
        context.close()

        context, page = login("admin", "admin-secret")
        page.get_by_role("tab", name="Admin").click()
        toggle = page.locator("#tracking-toggle input")
        toggle.check()  # refused: SAM2 is off and no model is ready
        page.get_by_text("Turn on SAM2 support first").first.wait_for()
        page.wait_for_function("!document.querySelector('#tracking-toggle input').checked", timeout=10_000)
        context.close()
    finally:
        server.stop()
