"""Builds the Gradio Blocks app (Admin and Annotate tabs) and the options it is launched with."""

from __future__ import annotations

import gradio as gr

from sam2_tracking.settings import Settings
from ui.admin import build_admin_tab
from ui.annotate_layout import build_annotate_tab
from ui.auth import ClientAddressMiddleware, make_auth
from ui.shared_reads import SharedReads

TITLE = "SAM2 mask tracking"
# Error texts wrap instead of being cut off (toasts and table cells).
CSS = """
.toast-body, .toast-text, .toast-details { white-space: normal !important; overflow-wrap: anywhere; }
.wrap-cells td, .wrap-cells th, .wrap-cells .cell-wrap { white-space: normal !important; overflow-wrap: anywhere; }
.wrap-cells table { table-layout: auto; }
.job-bar progress { width: 80%; height: 18px; }
"""


def build_ui(settings: Settings, store) -> gr.Blocks:
    # One SharedReads for every page's timers: what all pages show alike is read once a second, not once per page.
    shared = SharedReads(store)
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"## {TITLE}")
        with gr.Tabs():
            with gr.Tab("Annotate", id="annotate"):
                build_annotate_tab(demo, settings, store, shared)
            # Hidden until the page load says the viewer is the admin; every admin handler checks on the server too.
            with gr.Tab("Admin", id="admin", visible=False) as admin_tab:
                build_admin_tab(demo, settings, store, admin_tab, shared)
    return demo


def serve(demo: gr.Blocks, settings: Settings, store) -> None:
    """Launch with the data routes (frame viewer, seed preview, worker video) and serve until stopped."""
    demo.launch(**launch_options(settings, data_routes(settings, store)))


def data_routes(settings: Settings, store) -> list:
    """The app's own routes, declared before launch: Gradio builds its FastAPI app inside launch(), and routes given
    to that app's constructor exist from the first request on and come before Gradio's own. (Added after launch,
    they 404ed for the first moments the server answered: a consumer or a page could get there first.)"""
    from fastapi import APIRouter

    from ui.seed_preview import mount_preview_route
    from web.frame_pack import FramePacks
    from web.frames import FrameCache
    from web.routes import mount_viewer_routes
    from web.video_route import mount_worker_video_route

    router = APIRouter()
    mount_viewer_routes(router, store, FrameCache(), FramePacks(settings.viewer_cache_dir, settings.viewer_cache_bytes))
    mount_preview_route(router, settings, store)
    mount_worker_video_route(router, settings, store)
    return list(router.routes)


def launch_options(settings: Settings, routes: list | None = None) -> dict:
    options = {"server_name": settings.host, "server_port": settings.port, "show_error": True, "css": CSS,
               # Exports are written under the data folder; Gradio serves only files in allowed paths.
               "allowed_paths": [str(settings.data_dir / "exports")],
               # Gradio refuses larger uploads while they stream in, before any handler sees them.
               "max_file_size": settings.max_upload_bytes,
               "app_kwargs": {"routes": list(routes or [])}}
    if settings.admin_auth_enabled:
        from starlette.middleware import Middleware

        options["auth"] = make_auth(settings)
        options["app_kwargs"]["middleware"] = [Middleware(ClientAddressMiddleware)]
        options["auth_message"] = "Log in with your annotator account, or the admin account for the Admin tab."
    return options
