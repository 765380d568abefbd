"""Consumers without a shared disk: the app's worker-token video route (a real `python app.py`) and the consumer-side
fetch that caches by content hash (sam2_tracking.engine.remote_video)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from sam2_tracking.engine.remote_video import CACHE_FOLDER, HASH_HEADER, VideoFetchError, fetch_video, local_video_path
from sam2_tracking.settings import Settings
from sam2_tracking.testing.app_server import AppServer

TOKEN = "worker-token-0123456789abcdef"
ASSETS = Path(__file__).resolve().parent.parent / "assets"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("video-app")
    server = AppServer(root / "data", root / "models", SAM2T_WORKER_TOKEN=TOKEN, SAM2T_ADMIN_PASSWORD="admin-pw",
                       SAM2T_EMBED_CONSUMERS="none")
    yield server
    server.stop()


def _sample_dataset_id(app) -> int:
    from sam2_tracking.store import open_store

    store = open_store(app.data_dir / "store.db")
    try:
        return next(d.dataset_id for d in store.list_datasets() if d.path.endswith("sample_shapes.mp4"))
    finally:
        store.close()


@pytest.fixture(scope="module")
def video_url(app):
    return f"{app.url}worker/video/{_sample_dataset_id(app)}"


def test_route_needs_the_worker_token_and_serves_only_datasets(app, video_url):
    assert httpx.get(video_url).status_code == 401
    assert httpx.get(video_url, headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 401
    assert httpx.get(video_url, headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for bad in ("999999", "0", "-1", str(2**70)):
        assert httpx.get(f"{app.url}worker/video/{bad}", headers=auth).status_code == 404, bad
    assert httpx.get(f"{app.url}worker/video/..%2f..%2fetc%2fpasswd", headers=auth).status_code in (404, 422)

    whole = httpx.get(video_url, headers=auth)
    expected = (ASSETS / "sample_shapes.mp4").read_bytes()
    assert whole.status_code == 200 and whole.content == expected
    assert whole.headers[HASH_HEADER] == hashlib.sha256(expected).hexdigest()
    part = httpx.get(video_url, headers={**auth, "Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == expected[100:200]


def test_no_token_configured_means_no_route(tmp_path):
    from fastapi import FastAPI

    from web.video_route import mount_worker_video_route

    app = FastAPI()
    before = len(app.routes)
    mount_worker_video_route(app, Settings(data_dir=tmp_path, model_dir=tmp_path), store=None)
    assert len(app.routes) == before


def test_the_data_routes_exist_in_the_app_gradio_builds(tmp_path):
    """The routes go into the constructor of the app launch() builds, so the server's first request finds them (added
    after launch they 404ed for a moment: the CI run that caught it asked before they were there)."""
    import gradio as gr
    from fastapi.testclient import TestClient
    from gradio.routes import App

    from sam2_tracking.store import open_store
    from ui.app_ui import data_routes, launch_options

    settings = Settings(data_dir=tmp_path, model_dir=tmp_path, worker_token=TOKEN)
    store = open_store(tmp_path / "store.db")
    with gr.Blocks() as demo:
        gr.Markdown("x")
    options = launch_options(settings, data_routes(settings, store))
    client = TestClient(App.create_app(demo, app_kwargs=options["app_kwargs"]))
    assert client.get("/worker/video/1").status_code == 401
    answer = client.get("/viewer/timeline/1")  # our handler's 404, not Gradio's
    assert answer.status_code == 404 and answer.json() == {"detail": "No video 1."}
    store.close()


def test_fetch_caches_by_content_hash_and_resumes(app, video_url, tmp_path):
    dataset_id = int(video_url.rsplit("/", 1)[1])
    expected = (ASSETS / "sample_shapes.mp4").read_bytes()
    sha = hashlib.sha256(expected).hexdigest()
    cache = tmp_path / CACHE_FOLDER
    # A fetch cut short earlier left the first half: the next one resumes it and verifies the whole.
    cache.mkdir()
    (cache / f"{sha}.part").write_bytes(expected[: len(expected) // 2])
    path = fetch_video(app.url, TOKEN, dataset_id, cache, suffix=".mp4")
    assert path == cache / f"{sha}.mp4" and path.read_bytes() == expected
    assert not (cache / f"{sha}.part").exists()
    inode = path.stat().st_ino
    assert fetch_video(app.url, TOKEN, dataset_id, cache, suffix=".mp4").stat().st_ino == inode  # not fetched again

    # A corrupt partial file is caught by the hash, removed, and the error says what happens next.
    other = tmp_path / "other"
    other.mkdir()
    (other / f"{sha}.part").write_bytes(b"\0" * 100)
    with pytest.raises(VideoFetchError, match="does not match the app's hash"):
        fetch_video(app.url, TOKEN, dataset_id, other)
    assert not (other / f"{sha}.part").exists()
    assert fetch_video(app.url, TOKEN, dataset_id, other).read_bytes() == expected  # the retry starts clean

    with pytest.raises(VideoFetchError, match="refused this consumer's SAM2T_WORKER_TOKEN"):
        fetch_video(app.url, "not-the-token-0123456789", dataset_id, tmp_path / "c3")
    with pytest.raises(VideoFetchError, match="over the limit"):
        fetch_video(app.url, TOKEN, dataset_id, tmp_path / "c4", max_bytes=1000)


def test_consumer_opens_a_video_it_does_not_have_through_the_app(app, video_url, tmp_path):
    from sam2_tracking.engine.video import open_video
    from sam2_tracking.store import Dataset

    dataset_id = int(video_url.rsplit("/", 1)[1])
    # The row as a consumer on another machine reads it from the shared database: a path that is not on this disk.
    dataset = Dataset(dataset_id, "sample_shapes.mp4", "/nonexistent/app-host/videos/sample_shapes.mp4", "video",
                      0, 0.0, 0, 0)
    lonely = Settings(data_dir=tmp_path / "consumer", model_dir=tmp_path / "models")
    with pytest.raises(VideoFetchError, match="SAM2T_APP_URL and SAM2T_WORKER_TOKEN"):
        local_video_path(lonely, dataset)
    consumer = Settings(data_dir=tmp_path / "consumer", model_dir=tmp_path / "models", app_url=app.url.rstrip("/"),
                        worker_token=TOKEN)
    path = local_video_path(consumer, dataset)
    assert path.parent == consumer.data_dir / CACHE_FOLDER
    with open_video(path) as frames, open_video(ASSETS / "sample_shapes.mp4") as original:
        assert (frames.frame_count, frames.width, frames.height) == (
            original.frame_count, original.width, original.height)
        assert (frames.read(3) == original.read(3)).all()
    # A consumer on the app's own machine opens the file where it is.
    here = Dataset(dataset_id, "s", str(ASSETS / "sample_shapes.mp4"), "video", 0, 0.0, 0, 0)
    assert local_video_path(consumer, here) == ASSETS / "sample_shapes.mp4"
