"""Who may do what, and how a refusal reaches the person. Every admin handler calls require_admin(): Gradio exposes
each event as an HTTP endpoint, so hiding the Admin tab is not protection. Every refused action (a person's mistake,
a missing right) raises user_error(): one log line, no traceback.
"""

from __future__ import annotations

import contextvars
import hmac
import logging
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence

import gradio as gr

from sam2_tracking.settings import Settings

# The longest lockout, and how many (user, address) pairs are remembered: a spray of made-up names must not grow
# memory without bound (the oldest entries go first).
MAX_BACKOFF_SECONDS = 900.0
MAX_TRACKED_LOGINS = 10_000

# Gradio calls the auth callable with (username, password) only; ClientAddressMiddleware puts the caller's address
# here for the duration of each HTTP request, so the throttle can count failures per user AND address (counting per
# user alone would let anyone lock the admin out). The address is the one uvicorn settled on, which
# trust_proxy_headers_only_from() makes the real peer.
_client_address: contextvars.ContextVar[str] = contextvars.ContextVar("client_address", default="unknown")

log = logging.getLogger("ui")


def user_error(message: str) -> gr.Error:
    """The error to raise for a person's mistake or a refused action; logs one INFO line (Gradio prints a traceback
    for every gr.Error otherwise)."""
    log.info("refused: %s", message)
    return gr.Error(message, print_exception=False)


class LoginThrottle:
    """Counts failed logins per (username, address). After `max_failures` in a row, that pair is locked out for
    `backoff` seconds, doubling with each further failure up to MAX_BACKOFF_SECONDS; a success clears the count.
    While locked out the password is not even checked, so guessing goes no faster by trying harder."""

    def __init__(self, max_failures: int, backoff: float, clock=time.monotonic) -> None:
        self.max_failures = max_failures
        self.backoff = backoff
        self._clock = clock
        self._failures: OrderedDict[tuple[str, str], tuple[int, float]] = OrderedDict()  # key -> (count, locked until)
        self._lock = threading.Lock()

    def seconds_locked(self, key: tuple[str, str]) -> float:
        with self._lock:
            _count, until = self._failures.get(key, (0, 0.0))
        return max(0.0, until - self._clock())

    def record(self, key: tuple[str, str], success: bool) -> None:
        with self._lock:
            if success:
                self._failures.pop(key, None)
                return
            count, _until = self._failures.pop(key, (0, 0.0))
            count += 1
            until = 0.0
            if count >= self.max_failures:
                until = self._clock() + min(MAX_BACKOFF_SECONDS, self.backoff * 2 ** (count - self.max_failures))
            self._failures[key] = (count, until)
            while len(self._failures) > MAX_TRACKED_LOGINS:
                self._failures.popitem(last=False)


def trust_proxy_headers_only_from(proxies: Sequence[str]) -> None:
    """Make uvicorn believe X-Forwarded-For only from `proxies` (SAM2T_TRUSTED_PROXIES, already validated); call it
    before launch().

    Gradio 6.31 starts uvicorn itself (gradio/http_server.py, start_server) with a uvicorn.Config that names no
    forwarded_allow_ips, so uvicorn reads FORWARDED_ALLOW_IPS and, when it is unset, trusts 127.0.0.1 and ::1: behind
    a local reverse proxy, a client could put any address in X-Forwarded-For and start a fresh throttle count with
    each one. Set to the list ("" trusts no peer), uvicorn's ProxyHeadersMiddleware rewrites the client address only
    when the socket peer is listed, to the right-most X-Forwarded-For address that is not a listed proxy (what the
    proxy itself saw), and leaves it the socket peer otherwise. Every route sees that address, the login throttle
    through ClientAddressMiddleware.
    """
    value = ",".join(proxies)
    previous = os.environ.get("FORWARDED_ALLOW_IPS")
    if previous is not None and previous != value:
        log.warning("FORWARDED_ALLOW_IPS=%r is replaced by SAM2T_TRUSTED_PROXIES=%r: list the proxies there",
                    previous, value)
    os.environ["FORWARDED_ALLOW_IPS"] = value
    if proxies:
        log.info("X-Forwarded-For is believed from %s only", value)


class ClientAddressMiddleware:
    """Plain ASGI middleware (it runs in the request's own task, so the context variable reaches the login route).
    It sits inside uvicorn's ProxyHeadersMiddleware, so scope["client"] is already the resolved client address."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope.get("type") == "http":
            client = scope.get("client")
            token = _client_address.set(client[0] if client else "unknown")
            try:
                await self.app(scope, receive, send)
            finally:
                _client_address.reset(token)
        else:
            await self.app(scope, receive, send)


def make_auth(settings: Settings, throttle: LoginThrottle | None = None):
    """The callable for `launch(auth=...)`: check_login behind a LoginThrottle. A locked-out attempt gets HTTP 429
    with the wait in the message (Gradio's login page shows the error's detail)."""
    from fastapi import HTTPException

    throttle = throttle or LoginThrottle(settings.login_max_failures, settings.login_backoff_seconds)

    def auth(username: str, password: str) -> bool:
        key = (username, _client_address.get())
        wait = throttle.seconds_locked(key)
        if wait > 0:
            raise HTTPException(status_code=429, detail=f"Too many failed logins for {username!r}: "
                                f"try again in {math.ceil(wait)} s.")
        ok = check_login(settings, username, password)
        throttle.record(key, ok)
        return ok

    return auth


def check_login(settings: Settings, username: str, password: str) -> bool:
    """The admin account or one of the annotator accounts (constant-time compares)."""
    accounts = [(settings.admin_user, settings.admin_password), *settings.annotators]
    ok = False
    for user, secret in accounts:
        ok |= hmac.compare_digest(username.encode(), user.encode()) & hmac.compare_digest(
            password.encode(), secret.encode()
        )
    return ok


def is_admin(settings: Settings, request: gr.Request | None) -> bool:
    if not settings.admin_auth_enabled:
        return True  # local trial without logins: the single user is the admin
    username = getattr(request, "username", None) if request is not None else None
    return username is not None and hmac.compare_digest(username.encode(), settings.admin_user.encode())


def require_admin(settings: Settings, request: gr.Request | None) -> None:
    if not is_admin(settings, request):
        raise user_error("Only the admin can do this. Log in as the admin account.")

