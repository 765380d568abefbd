"""The one logging set-up of a service process (app.py and `python -m queues.consumer`), called first thing in main().

Import this before gradio or sam2: tqdm reads TQDM_* when it is first imported (gradio's dependencies import it).
"""

from __future__ import annotations

import logging
import os
import warnings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: int = logging.INFO) -> None:
    """INFO lines with time and logger name on stderr, without the noise a service log does not want."""
    # SAM2 draws a tqdm bar per batch; in a service log that is noise (job progress lives in the store).
    os.environ.setdefault("TQDM_DISABLE", "1")
    # sam2 1.1.0 warns on every video state that its optional CUDA extension is missing: harmless (DESIGN.md 3).
    warnings.filterwarnings("ignore", message="cannot import name '_C'", category=UserWarning)
    logging.basicConfig(level=level, format=LOG_FORMAT)
    # One INFO line per HTTP request (Gradio's start-up checks, a consumer fetching a model or a video) is noise.
    logging.getLogger("httpx").setLevel(logging.WARNING)
