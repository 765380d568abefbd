"""Builds the Gradio Blocks app (Admin and Annotate tabs) and the options it is launched with."""

from __future__ import annotations

import gradio as gr

from sam2_tracking.settings import Settings
from ui.admin import build_admin_tab
from ui.annotate_layout import build_annotate_tab
from ui.auth import ClientAddressMiddleware, make_auth

TITLE = "SAM2 mask tracking"


def build_ui(settings: Settings, store) -> gr.Blocks:
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"## {TITLE}")
        with gr.Tabs():
            with gr.Tab("Annotate", id="annotate"):
                build_annotate_tab(demo, settings, store)
            with gr.Tab("Admin", id="admin"):
                build_admin_tab(settings, store)
    return demo


def launch_options(settings: Settings) -> dict:
    options = {"server_name": settings.host, "server_port": settings.port, "show_error": True,
               # Exports are written under the data folder; Gradio serves only files in allowed paths.
               "allowed_paths": [str(settings.data_dir / "exports")],
               # Gradio refuses larger uploads while they stream in, before any handler sees them.
               "max_file_size": settings.max_upload_bytes}
    if settings.admin_auth_enabled:
        from starlette.middleware import Middleware

        options["auth"] = make_auth(settings)
        options["app_kwargs"] = {"middleware": [Middleware(ClientAddressMiddleware)]}
        options["auth_message"] = "Log in with your annotator account, or the admin account for the Admin tab."
    return options
