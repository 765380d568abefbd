"""Login throttling (and whose address it counts: proxy headers only from SAM2T_TRUSTED_PROXIES), export retention
and the launch options that carry the limits (in-process, and two real app processes marked slow)."""

from __future__ import annotations

import asyncio
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


def test_trusted_proxies_must_be_addresses_or_networks(tmp_path):
    assert _settings(tmp_path, trusted_proxies=("127.0.0.1", "::1", "10.0.0.0/8")).trusted_proxies[2] == "10.0.0.0/8"
    # "*" would believe everyone; a host name or a network with host bits would silently match nothing in uvicorn.
    for bad in ("*", "proxy.local", "10.0.0.1/8"):
        with pytest.raises(ValueError, match="SAM2T_TRUSTED_PROXIES lists"):
            _settings(tmp_path, trusted_proxies=(bad,))


def _throttle_key_address(monkeypatch, proxies: tuple[str, ...], peer: str, forwarded: str | None) -> str:
    """The address the login throttle counts for one request, through uvicorn's own Config built as Gradio 6.31's
    start_server builds it (no forwarded_allow_ips), after app.py's trust_proxy_headers_only_from()."""
    import uvicorn

    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")  # what a deployer may have set: replaced, and restored after
    auth.trust_proxy_headers_only_from(proxies)
    seen = []

    async def route(scope, receive, send):
        seen.append(auth._client_address.get())

    config = uvicorn.Config(app=auth.ClientAddressMiddleware(route), host="127.0.0.1", port=0, log_level="warning")
    config.load()
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    scope = {"type": "http", "client": (peer, 5000), "headers": headers, "scheme": "http", "path": "/login"}
    asyncio.run(config.loaded_app(scope, None, None))
    return seen[0]


def test_the_throttle_counts_the_socket_peer_unless_it_is_a_listed_proxy(monkeypatch):
    # By default no peer is a proxy, loopback included (uvicorn's own default trusts 127.0.0.1 and ::1).
    assert _throttle_key_address(monkeypatch, (), "127.0.0.1", "198.51.100.1") == "127.0.0.1"
    assert _throttle_key_address(monkeypatch, (), "::1", "198.51.100.1") == "::1"
    proxies = ("127.0.0.1", "10.0.0.0/8")
    # From a listed proxy: the right-most address that is not a listed proxy, so a client cannot choose its own
    # address by sending X-Forwarded-For of its own (the proxy appends the real one after it).
    assert _throttle_key_address(monkeypatch, proxies, "127.0.0.1", "198.51.100.1, 10.1.2.3") == "198.51.100.1"
    assert _throttle_key_address(monkeypatch, proxies, "127.0.0.1", "6.6.6.6, 198.51.100.1") == "198.51.100.1"
    assert _throttle_key_address(monkeypatch, proxies, "127.0.0.1", None) == "127.0.0.1"
    # A peer that is not listed is itself the client, whatever it sends.
    assert _throttle_key_address(monkeypatch, proxies, "192.0.2.9", "198.51.100.1") == "192.0.2.9"


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


def _throttled_app(tmp_path, **env: str):
    from sam2_tracking.testing.app_server import AppServer

    data_dir = tmp_path / "data"
    return AppServer(data_dir, data_dir / "models", SAM2T_ADMIN_PASSWORD="admin-secret",
                     SAM2T_ANNOTATORS="ann:ann-secret", SAM2T_EMBED_CONSUMERS="none", SAM2T_SAMPLE_VIDEO="false",
                     SAM2T_LOGIN_MAX_FAILURES="2", SAM2T_LOGIN_BACKOFF_SECONDS="600", **env)


def _login(server, user: str, password: str, forwarded: str | None = None):
    import httpx

    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    return httpx.post(server.url + "login", data={"username": user, "password": password}, headers=headers, timeout=30)


@pytest.mark.slow
def test_the_running_app_throttles_logins_per_user_and_address_whatever_x_forwarded_for_says(tmp_path):
    """End to end: the middleware hands the address to the auth callable inside Gradio's own /login route. The
    requests come from 127.0.0.1, as through a local reverse proxy, each naming another client in X-Forwarded-For:
    with no SAM2T_TRUSTED_PROXIES that header is not believed, so they all count against 127.0.0.1."""
    server = _throttled_app(tmp_path)
    try:
        assert [_login(server, "ann", "guess", f"198.51.100.{n}").status_code for n in (1, 2)] == [400, 400]
        locked = _login(server, "ann", "ann-secret", "198.51.100.3")
        assert locked.status_code == 429 and "Too many failed logins for 'ann': try again in" in locked.text
        assert _login(server, "ann", "ann-secret").status_code == 429
        assert _login(server, "admin", "admin-secret", "198.51.100.4").status_code == 200  # another user
        assert server.process.poll() is None
    finally:
        server.stop()


@pytest.mark.slow
def test_behind_a_listed_proxy_each_forwarded_client_is_throttled_on_its_own(tmp_path):
    server = _throttled_app(tmp_path, SAM2T_TRUSTED_PROXIES="127.0.0.1")
    try:
        assert [_login(server, "ann", "guess", "203.0.113.5").status_code for _ in range(2)] == [400, 400]
        assert _login(server, "ann", "ann-secret", "203.0.113.5").status_code == 429
        # Another client behind the same proxy is not locked out by the first one's failures.
        assert _login(server, "ann", "ann-secret", "203.0.113.6").status_code == 200
        # The locked-out client prepending an address of its choice: the proxy appends the real one, which counts.
        assert _login(server, "ann", "ann-secret", "198.51.100.9, 203.0.113.5").status_code == 429
        assert server.process.poll() is None
    finally:
        server.stop()
