"""Ids in URLs (issue 20): every route of the app parses its ids through web.ids, so an id no row can hold answers
a short 4xx, never a 500 from the database driver, and the app goes on answering. Through the ASGI app Gradio builds
with our data routes (ui.app_ui.data_routes), on both store backends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi import HTTPException

from sam2_tracking.settings import Settings
from web.ids import DB_INT_MAX, query_index, route_id

ASSETS = Path(__file__).resolve().parent.parent / "assets"
TOKEN = "worker-token-0123456789abcdef"
# 2^63 overflowed SQLite's driver (500); the rest were refused by FastAPI's int, or read as a missing row.
BAD_IDS = [str(2**63), "-1", "abc", "1e3", "1" * 40, "+1", "1_0", "%20"]


@pytest.fixture()
def client(store, tmp_path):
    """A real Gradio app with the app's data routes, answering in-process (TestClient re-raises a server error, so
    a 500 from an unhandled exception fails the test rather than passing as a status)."""
    import gradio as gr
    from fastapi.testclient import TestClient
    from gradio.routes import App

    from ui.app_ui import data_routes, launch_options

    # viewer_cache_bytes=0: no background frame packing, the frame route decodes on demand.
    settings = Settings(data_dir=tmp_path, model_dir=tmp_path, worker_token=TOKEN, viewer_cache_bytes=0)
    meta = json.loads((ASSETS / "sample_shapes.json").read_text())
    dataset = store.add_dataset("sample_shapes.mp4", ASSETS / "sample_shapes.mp4", "video", meta["frames"],
                                meta["fps"], meta["width"], meta["height"])
    with gr.Blocks() as demo:
        gr.Markdown("x")
    options = launch_options(settings, data_routes(settings, store))
    return TestClient(App.create_app(demo, app_kwargs=options["app_kwargs"])), dataset


def _routes(good_id: int, bad: str) -> list[tuple[str, str]]:
    """Every route with `bad` in one id position (method, url)."""
    return [
        ("GET", f"/viewer/frame/{bad}/0.jpg"),
        ("GET", f"/viewer/frame/{good_id}/{bad}.jpg"),
        ("GET", f"/viewer/masks/{bad}?start=0&stop=10"),
        ("GET", f"/viewer/timeline/{bad}"),
        ("POST", f"/viewer/preview/{bad}"),
        ("GET", f"/worker/video/{bad}"),
    ]


def _ask(client, method: str, url: str):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if method == "POST":
        return client.post(url, json={"frame_idx": 0, "clicks": [[10, 10, True]]}, headers=headers)
    return client.get(url, headers=headers)


def test_ids_no_row_can_hold_answer_a_short_4xx_on_every_route_and_the_app_keeps_answering(client):
    test_client, dataset = client
    for bad in BAD_IDS:
        for method, url in _routes(dataset.dataset_id, bad):
            answer = _ask(test_client, method, url)
            assert answer.status_code in (404, 422), (url, answer.status_code, answer.text)
            detail = answer.json()["detail"]
            # Our message, short, whatever the length of the id (a 40-digit id is cut).
            assert isinstance(detail, str) and len(detail) < 80, (url, detail)
    # The largest id a database integer holds reaches the store on both backends and is simply not there.
    for method, url in _routes(dataset.dataset_id, str(DB_INT_MAX)):
        answer = _ask(test_client, method, url)
        assert answer.status_code in (400, 404), (url, answer.text)  # the preview says "Unknown video" (400)

    # Still answering, with the right data.
    timeline = test_client.get(f"/viewer/timeline/{dataset.dataset_id}")
    assert timeline.status_code == 200 and timeline.json()["frame_count"] == dataset.frame_count
    frame = test_client.get(f"/viewer/frame/{dataset.dataset_id}/3.jpg")
    assert frame.status_code == 200 and frame.content[:2] == b"\xff\xd8"
    video = _ask(test_client, "GET", f"/worker/video/{dataset.dataset_id}")
    assert video.status_code == 200 and video.content == (ASSETS / "sample_shapes.mp4").read_bytes()


def test_mask_range_bounds_are_parsed_too(client):
    test_client, dataset = client
    url = f"/viewer/masks/{dataset.dataset_id}"
    for bad in (str(2**63), "abc", "1e3", "1" * 40, "--1"):
        for query in (f"start={bad}&stop=10", f"start=0&stop={bad}"):
            answer = test_client.get(f"{url}?{query}")
            assert answer.status_code == 422 and "must be a frame number" in answer.json()["detail"], query
    # A negative or past-the-end bound is a range to clamp, as the viewer has always been answered.
    clamped = test_client.get(f"{url}?start=-5&stop={DB_INT_MAX}").json()
    assert clamped["start"] == 0 and clamped["stop"] <= dataset.frame_count


def test_route_id_accepts_only_plain_digits_up_to_a_database_integer():
    assert route_id("0", "video") == 0
    assert route_id("42", "video") == 42
    assert route_id(str(DB_INT_MAX), "video") == DB_INT_MAX
    for text in (str(DB_INT_MAX + 1), "-1", "abc", "1e3", "1.0", "+1", " 1", "1_0", "\u0661", "", "9" * 400):
        with pytest.raises(HTTPException) as refused:
            route_id(text, "video")
        assert refused.value.status_code == 404 and refused.value.detail.startswith("No video ")
    assert query_index(None, "start", 7) == 7
    assert query_index("-5", "start", 0) == -5
    with pytest.raises(HTTPException) as refused:
        query_index(f"-{DB_INT_MAX + 1}", "start", 0)
    assert refused.value.status_code == 422
