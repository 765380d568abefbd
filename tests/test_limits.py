"""Login throttling, export retention and the launch options that carry the limits (fast, in-process)."""

from __future__ import annotations

import os
import time

import pytest
from fastapi import HTTPException

from sam2_tracking.export_files import prune_exports, user_export_dir
from sam2_tracking.settings import Settings
from ui import auth
from ui.app_ui import launch_options


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _settings(tmp_path, **kw) -> Settings:
    return Settings(data_dir=tmp_path, model_dir=tmp_path / "models", admin_password="admin-secret",
                    annotators=(("ann", "ann-secret"),), **kw)


def _attempt(check, user, password, address):
    token = auth._client_address.set(address)
    try:
        return check(user, password)
    finally:
        auth._client_address.reset(token)


def test_failed_logins_lock_out_that_user_and_address_only_with_a_doubling_backoff(tmp_path):
    clock = Clock()
    settings = _settings(tmp_path, login_max_failures=3, login_backoff_seconds=30)
    check = auth.make_auth(settings, auth.LoginThrottle(3, 30, clock=clock))
    assert [_attempt(check, "ann", "guess", "10.0.0.9") for _ in range(3)] == [False] * 3
    with pytest.raises(HTTPException) as refused:
        _attempt(check, "ann", "ann-secret", "10.0.0.9")  # even the right password waits
    assert refused.value.status_code == 429 and "try again in 30 s" in refused.value.detail
    # The same user from another address, and another user from the attacker's address, are not locked out.
    assert _attempt(check, "ann", "ann-secret", "10.0.0.2") is True
    assert _attempt(check, "admin", "admin-secret", "10.0.0.9") is True
    clock.now += 31
    assert _attempt(check, "ann", "guess", "10.0.0.9") is False  # a fourth failure: twice as long
    with pytest.raises(HTTPException, match="60 s"):
        _attempt(check, "ann", "ann-secret", "10.0.0.9")
    clock.now += 61
    assert _attempt(check, "ann", "ann-secret", "10.0.0.9") is True  # a success clears the count
    assert _attempt(check, "ann", "guess", "10.0.0.9") is False
    assert _attempt(check, "ann", "ann-secret", "10.0.0.9") is True


def test_backoff_is_capped_and_memory_is_bounded():
    clock = Clock()
    throttle = auth.LoginThrottle(1, 30, clock=clock)
    for _ in range(40):
        throttle.record(("ann", "1.2.3.4"), success=False)
    assert throttle.seconds_locked(("ann", "1.2.3.4")) == auth.MAX_BACKOFF_SECONDS
    for number in range(auth.MAX_TRACKED_LOGINS + 50):
        throttle.record((f"user{number}", "1.2.3.4"), success=False)
    assert len(throttle._failures) == auth.MAX_TRACKED_LOGINS


def test_launch_options_carry_the_upload_limit_and_the_throttled_login(tmp_path):
    options = launch_options(_settings(tmp_path, max_upload_bytes=12345))
    assert options["max_file_size"] == 12345
    assert callable(options["auth"]) and options["app_kwargs"]["middleware"][0].cls is auth.ClientAddressMiddleware
    local = launch_options(Settings(data_dir=tmp_path, model_dir=tmp_path))
    assert "auth" not in local and local["max_file_size"] == Settings.max_upload_bytes


def test_old_exports_are_removed_and_each_user_keeps_at_most_n(tmp_path):
    root = tmp_path / "exports"
    ann, other = user_export_dir(root, "ann"), user_export_dir(root, "a/../nn")
    assert ann.parent == root and other.parent == root and ann != other and ".." not in other.name
    now = time.time()
    for folder in (ann, other):
        folder.mkdir(parents=True)
    for number in range(5):
        path = ann / f"e{number}.json"
        path.write_text("{}")
        os.utime(path, (now - 100 + number, now - 100 + number))
    stale = other / "old.mp4"
    stale.write_text("x")
    os.utime(stale, (now - 7200, now - 7200))
    fresh = other / "new.mp4"
    fresh.write_text("x")
    removed = prune_exports(root, ann, max_age_seconds=3600, keep=3, now=now)
    assert set(removed) == {stale, ann / "e0.json", ann / "e1.json", ann / "e2.json"}
    assert sorted(p.name for p in ann.iterdir()) == ["e3.json", "e4.json"]  # room for the one being written
    assert fresh.exists()


def test_export_goes_to_the_users_folder_and_prunes(tmp_path, store, sample_sequence):
    from sam2_tracking.library import add_video
    from ui.annotation_files import export_dataset

    settings = _settings(tmp_path, exports_per_user=2)
    dataset = add_video(store, sample_sequence)
    paths = [export_dataset(settings, store, dataset.dataset_id, "DIVE JSON", "ann") for _ in range(3)]
    folder = user_export_dir(tmp_path / "exports", "ann")
    assert all(os.path.dirname(p) == str(folder) for p in paths)
    assert len(list(folder.iterdir())) <= 2


def test_uploads_and_imports_share_a_pool_of_concurrent_runs(tmp_path, store):
    """Gradio runs one call per event at a time by default: one user's slow upload would hold up everyone's."""
    from ui.app_ui import build_ui

    settings = Settings(data_dir=tmp_path, model_dir=tmp_path / "models", upload_concurrency=3)
    demo = build_ui(settings, store)
    limits = {fn.api_name: (fn.concurrency_limit, fn.concurrency_id) for fn in demo.fns.values()
              if fn.api_name in ("upload_video", "import_annotations")}
    assert limits == {"upload_video": (3, "file_uploads"), "import_annotations": (3, "file_uploads")}


@pytest.mark.slow
def test_the_running_app_throttles_logins_per_user_and_address(tmp_path):
    """End to end: the middleware hands the address to the auth callable inside Gradio's own /login route."""
    import httpx

    from sam2_tracking.testing.app_server import AppServer

    data_dir = tmp_path / "data"
    server = AppServer(data_dir, data_dir / "models", SAM2T_ADMIN_PASSWORD="admin-secret",
                       SAM2T_ANNOTATORS="ann:ann-secret", SAM2T_EMBED_CONSUMERS="none", SAM2T_SAMPLE_VIDEO="false",
                       SAM2T_LOGIN_MAX_FAILURES="2", SAM2T_LOGIN_BACKOFF_SECONDS="600")
    try:
        def login(user, password):
            return httpx.post(server.url + "login", data={"username": user, "password": password}, timeout=30)

        assert [login("ann", "guess").status_code for _ in range(2)] == [400, 400]
        locked = login("ann", "ann-secret")
        assert locked.status_code == 429 and "Too many failed logins for 'ann': try again in" in locked.text
        assert login("admin", "admin-secret").status_code == 200  # another user from the same address
        assert server.process.poll() is None
    finally:
        server.stop()
