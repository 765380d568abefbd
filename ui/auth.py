"""Who may do what. Every admin handler calls require_admin(): Gradio exposes each event as an HTTP endpoint, so
hiding the Admin tab is not protection.
"""

from __future__ import annotations

import hmac

import gradio as gr

from sam2_tracking.settings import Settings


def check_login(settings: Settings, username: str, password: str) -> bool:
    """Gradio's auth callback: the admin account or one of the annotator accounts (constant-time compares)."""
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
        raise gr.Error("Only the admin can do this. Log in as the admin account.")

