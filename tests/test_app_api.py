"""The running app over HTTP: logins, and admin endpoints refused to annotators on the server (not just hidden)."""

from __future__ import annotations

import httpx
import pytest

from queues.config import get_store
from sam2_tracking.settings import Settings
from sam2_tracking.testing.app_server import AppServer
from sam2_tracking.testing.wait import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def secured_app(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("app") / "data"
    server = AppServer(data_dir, data_dir / "models", SAM2T_ADMIN_PASSWORD="admin-secret",
                       SAM2T_ANNOTATORS="ann:ann-secret", SAM2T_EMBED_CONSUMERS="none")
    store = get_store(Settings(data_dir=data_dir, model_dir=data_dir / "models"))
    yield server, store
    server.stop()


def _client(server: AppServer, user: str, password: str):
    from gradio_client import Client

    return Client(server.url, auth=(user, password), verbose=False, analytics_enabled=False, download_files=False)


def test_wrong_password_is_refused(secured_app):
    server, _store = secured_app
    response = httpx.post(server.url + "login", data={"username": "ann", "password": "wrong"})
    assert response.status_code >= 400
    with pytest.raises(Exception):  # noqa: B017 - gradio_client raises its own error types for a refused login
        _client(server, "ann", "wrong")


def test_admin_endpoints_refuse_an_annotator_and_accept_the_admin(secured_app):
    server, store = secured_app
    annotator = _client(server, "ann", "ann-secret")
    for api_name, args in [("/admin_set_sam2", (True,)), ("/admin_set_tracking", (True,)),
                           ("/admin_download_model", ("sam2.1_hiera_tiny",)),
                           ("/admin_remove_model", ("sam2.1_hiera_tiny",)),
                           ("/admin_add_model", ("evil", "configs/sam2.1/sam2.1_hiera_t.yaml", "http://x/y.pt")),
                           ("/admin_set_model_queue", ("gpu",))]:
        with pytest.raises(Exception, match="Only the admin can do this"):
            annotator.predict(*args, api_name=api_name)
    assert store.get_setting("sam2_enabled", False) is False
    assert store.get_setting("model_queue", None) is None
    assert [m.name for m in store.list_models() if m.name == "evil"] == []
    assert store.get_model("sam2.1_hiera_tiny").status == "absent"

    admin = _client(server, "admin", "admin-secret")
    message, tracking = admin.predict(True, api_name="/admin_set_sam2")
    assert message == "SAM2 support is on." and tracking is False
    assert store.get_setting("sam2_enabled") is True
    with pytest.raises(Exception, match="Download at least one model first"):
        admin.predict(True, api_name="/admin_set_tracking")


def test_annotator_cannot_track_while_tracking_is_off(secured_app):
    server, store = secured_app
    store.set_setting("tracking_enabled", False)
    annotator = _client(server, "ann", "ann-secret")
    with pytest.raises(Exception, match="mask tracking is turned off"):
        annotator.predict(None, "sam2.1_hiera_tiny", "cpu", 10, "forward", "100", 5, api_name="/track")
    assert store.list_jobs() == []


def test_annotator_exports_the_sample_as_coco_and_imports_it_back(secured_app, tmp_path):
    import json

    import numpy as np
    from pycocotools import mask as mask_utils

    from sam2_tracking.store import UpsertKeyframe

    server, store = secured_app
    dataset = next(d for d in store.list_datasets() if d.name == "sample_shapes.mp4")
    track_id = store.list_tracks(dataset.dataset_id)[0].track_id
    mask = np.zeros((dataset.height, dataset.width), dtype=bool)
    mask[150:210, 470:530] = True
    store.save_edits(dataset.dataset_id, store.get_revision(dataset.dataset_id),
                     [UpsertKeyframe(track_id, 4, mask=mask)])
    annotator = _client(server, "ann", "ann-secret")
    viewer, _status = annotator.predict(dataset.dataset_id, None, api_name="/open_dataset")
    exported = annotator.predict(viewer, "COCO (RLE, with track ids)", api_name="/export")
    url = exported["url"] if isinstance(exported, dict) else exported
    response = httpx.get(url, auth=None, cookies=annotator.cookies) if url.startswith("http") else None
    content = response.content if response is not None else open(url, "rb").read()
    coco = json.loads(content)
    assert {a["track_id"] for a in coco["annotations"]} <= {t.track_id for t in store.list_tracks(dataset.dataset_id)}
    assert len(coco["images"]) == dataset.frame_count
    [annotation] = [a for a in coco["annotations"] if a["track_id"] == track_id]
    rle = {"size": annotation["segmentation"]["size"], "counts": annotation["segmentation"]["counts"].encode()}
    assert np.array_equal(mask_utils.decode(rle).astype(bool), mask)
    assert annotation["area"] == int(mask.sum()) == 3600

    # A malformed import is refused with a message and changes nothing.
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": 2, "tracks": {"1": {"id": 1, "features": [{"frame": "x"}]}}}))
    from gradio_client import handle_file

    tracks_before = store.list_tracks(dataset.dataset_id)
    with pytest.raises(Exception, match="Nothing was imported"):
        annotator.predict(viewer, handle_file(str(bad)), "Detect from the file", False,
                          api_name="/import_annotations")
    assert store.list_tracks(dataset.dataset_id) == tracks_before


def test_viewer_routes_need_a_login_and_refuse_unknown_frames(secured_app):
    server, store = secured_app
    dataset = next(d for d in store.list_datasets() if d.name == "sample_shapes.mp4")
    frame_url = f"{server.url}viewer/frame/{dataset.dataset_id}/3.jpg"
    assert httpx.get(frame_url).status_code == 401
    assert httpx.get(f"{server.url}viewer/masks/{dataset.dataset_id}?start=0&stop=10").status_code == 401
    cookies = _client(server, "ann", "ann-secret").cookies
    response = httpx.get(frame_url, cookies=cookies)
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert response.content[:2] == b"\xff\xd8"
    # The app packs the video's frames as JPEG in the background (web/frame_pack.py) and then answers from there,
    # with the same bytes it encoded on demand.
    from web.frame_pack import packed_frames

    wait_for(lambda: packed_frames(server.data_dir / "viewer-frames", dataset.dataset_id, dataset.path)
             >= dataset.frame_count, 60, "the app to pack the video's frames", 0.2)
    assert httpx.get(frame_url, cookies=cookies).content == response.content
    assert httpx.get(f"{server.url}viewer/frame/{dataset.dataset_id}/{dataset.frame_count}.jpg",
                     cookies=cookies).status_code == 404
    assert httpx.get(f"{server.url}viewer/frame/999/0.jpg", cookies=cookies).status_code == 404
    masks = httpx.get(f"{server.url}viewer/masks/{dataset.dataset_id}?start=-5&stop=99999", cookies=cookies).json()
    assert masks["start"] == 0 and masks["stop"] <= dataset.frame_count and masks["size"] == [dataset.height,
                                                                                               dataset.width]
    timeline = httpx.get(f"{server.url}viewer/timeline/{dataset.dataset_id}", cookies=cookies).json()
    assert [t["track_id"] for t in timeline["tracks"]] == [t.track_id for t in store.list_tracks(dataset.dataset_id)]


def test_an_annotator_cannot_follow_or_cancel_someone_elses_job(secured_app):
    from sam2_tracking.types import JobSpec

    server, store = secured_app
    dataset = next(d for d in store.list_datasets() if d.name == "sample_shapes.mp4")
    track_id = store.list_tracks(dataset.dataset_id)[0].track_id
    spec = JobSpec(dataset_id=dataset.dataset_id, track_ids=(track_id,), start_frame_idx=0,
                   model_name="sam2.1_hiera_tiny", queue="cpu")
    job = store.create_job(spec, frames_total=10, owner="admin")
    annotator = _client(server, "ann", "ann-secret")
    with pytest.raises(Exception, match="started by someone else"):
        annotator.predict(job.job_id, api_name="/follow_job")
    with pytest.raises(Exception, match="Only the admin can do this"):
        annotator.predict(job.job_id, api_name="/admin_cancel_job")
    assert store.get_job(job.job_id).status == "queued" and not store.get_job(job.job_id).cancel_requested


def test_saving_a_forged_viewer_value_is_refused_and_changes_nothing(secured_app):
    server, store = secured_app
    dataset = next(d for d in store.list_datasets() if d.name == "sample_shapes.mp4")
    annotator = _client(server, "ann", "ann-secret")
    viewer, _status = annotator.predict(dataset.dataset_id, None, api_name="/open_dataset")
    revision = store.get_revision(dataset.dataset_id)
    track_id = store.list_tracks(dataset.dataset_id)[0].track_id
    for pending in ({"99999": {str(track_id): {"box": [1, 1, 50, 50], "clicks": []}}},
                    {"2": {str(track_id): {"box": [1, 1, "x", 50], "clicks": []}}},
                    {"2": {"424242": {"box": [1, 1, 50, 50], "clicks": []}}},
                    {"2": {str(track_id): {"box": None, "clicks": [[1, 2, True]] * 1000}}}):
        with pytest.raises(Exception, match="Not saved|no longer exists|viewer state the server cannot use"):
            annotator.predict({**viewer, "pending": pending}, api_name="/save")
    # A value that is not the viewer's shape at all is refused with a message too (not a server error).
    for forged, words in [("nonsense", "must be a JSON object"), ({**viewer, "selected": "all"}, "must be a list"),
                          ({**viewer, "frame_idx": -1}, "frame must be 0 or more")]:
        with pytest.raises(Exception, match=words):
            annotator.predict(forged, api_name="/save")
    assert store.get_revision(dataset.dataset_id) == revision


def test_tracks_created_renamed_deleted_and_restored_through_the_api(secured_app):
    server, store = secured_app
    dataset = next(d for d in store.list_datasets() if d.name == "sample_shapes.mp4")
    annotator = _client(server, "ann", "ann-secret")
    viewer, _status = annotator.predict(dataset.dataset_id, None, api_name="/open_dataset")
    viewer, status = annotator.predict(viewer, "crab", api_name="/create_track")
    track_id = viewer["active"]
    assert "Created track" in status and store.get_track(track_id).label == "crab"
    viewer, _status = annotator.predict(viewer, "lobster", api_name="/rename_track")
    assert store.get_track(track_id).label == "lobster"
    box = {str(track_id): {"box": [10, 20, 60, 90], "clicks": [[30, 40, True]]}}
    viewer, status = annotator.predict({**viewer, "pending": {"7": box}}, api_name="/save")
    assert "Saved 1 edit(s)" in status
    # The undo token stays in the session (gr.State), not in what the client holds.
    viewer, _status = annotator.predict({**viewer, "selected": [track_id]}, api_name="/delete_tracks")
    assert track_id not in [t.track_id for t in store.list_tracks(dataset.dataset_id)]
    viewer, status = annotator.predict(viewer, api_name="/undo_delete")
    [restored] = [t for t in store.list_tracks(dataset.dataset_id) if t.label == "lobster"]
    [feature] = store.get_features(restored.track_id)
    assert feature.frame_idx == 7 and feature.keyframe and feature.box.x1 == 10 and len(feature.clicks) == 1
    with pytest.raises(Exception, match="Nothing to restore"):
        annotator.predict(viewer, api_name="/undo_delete")


def test_the_seed_preview_route_needs_a_login_and_answers_bad_requests_with_a_message(secured_app):
    server, store = secured_app
    dataset = next(d for d in store.list_datasets() if d.name == "sample_shapes.mp4")
    url = f"{server.url}viewer/preview/{dataset.dataset_id}"
    good = {"frame_idx": 0, "clicks": [[10, 10, True]], "queue": "cpu"}
    assert httpx.post(url, json=good).status_code == 401
    cookies = _client(server, "ann", "ann-secret").cookies
    before = (store.get_setting("sam2_enabled", False), store.get_setting("tracking_enabled", False))
    try:
        store.set_setting("sam2_enabled", False)
        refused = httpx.post(url, json=good, cookies=cookies)
        assert refused.status_code == 400 and refused.json()["error"].startswith("SAM2 is turned off")
        store.set_setting("sam2_enabled", True)
        store.set_setting("tracking_enabled", True)
        for body, words in [
            ({**good, "clicks": [[dataset.width + 5, 10, True]]}, "outside the frame"),
            ({**good, "clicks": "abc"}, "not a valid prompt"),
            ({**good, "frame_idx": "x"}, "not a valid prompt"),
            ({**good, "frame_idx": 10**400}, "not a valid prompt"),
            ({**good, "frame_idx": 2.5}, "not a frame number"),
            ({**good, "track_id": 10**30, "frame_idx": 10**30}, "past the end"),
            ({**good, "track_id": 10**30}, "unknown track"),
            ({**good, "box": [1, 2]}, "not a valid prompt"),
            (good, "choose a model"),  # no model is ready on this server
            ({**good, "model": 5}, "choose a model"),
            ({**good, "model": "sam2.1_hiera_tiny"}, "is not ready"),
            ({**good, "queue": "tpu"}, "unknown queue"),
        ]:
            response = httpx.post(url, json=body, cookies=cookies)
            assert response.status_code == 400 and words in response.json()["error"].lower(), (body, response.text)
        answer = httpx.post(f"{server.url}viewer/preview/999", json=good, cookies=cookies).json()
        assert answer["error"].startswith("Unknown video")
        # An id no row can hold is refused at the route (web.ids), before the preview is asked.
        refused = httpx.post(f"{server.url}viewer/preview/{10**30}", json=good, cookies=cookies)
        assert refused.status_code == 404 and refused.json()["detail"].startswith("No video")
    finally:
        store.set_setting("sam2_enabled", before[0])
        store.set_setting("tracking_enabled", before[1])
