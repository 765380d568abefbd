"""Refusals a person can act on: one log line each, no traceback (Gradio prints one for every gr.Error otherwise)."""

from __future__ import annotations

import logging

import gradio as gr

log = logging.getLogger("ui")


def user_error(message: str) -> gr.Error:
    """The error to raise for a person's mistake or a refused action; logs one INFO line."""
    log.info("refused: %s", message)
    return gr.Error(message, print_exception=False)
