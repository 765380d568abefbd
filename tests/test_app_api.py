"""The running app over HTTP: logins, and admin endpoints refused to annotators on the server (not just hidden)."""

from __future__ import annotations

import httpx
import pytest

from queues.runner import get_store
from sam2_tracking.settings import Settings
from tests.support.app_server import AppServer

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
        annotator.predict("sam2.1_hiera_tiny", "cpu", 10, "forward", "100", 5, api_name="/track")
    assert store.list_jobs() == []
