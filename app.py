"""Entry point: read settings, open the store, start the embedded consumer(s), build the UI, launch.

    python app.py            # http://127.0.0.1:7860, everything embedded (SQLite store and queues, a CPU consumer)

Every setting is an environment variable (SAM2T_*), listed in README.md.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent / "assets"


def prepare(settings):
    """Open the store, make sure the default models are listed, clear what imports that died mid-way left, and add the
    sample clips on first start."""
    from queues.catalogue import ensure_default_models
    from queues.config import get_store
    from sam2_tracking.library import add_video_if_missing

    store = get_store(settings)
    ensure_default_models(store)
    dropped = store.drop_abandoned_imports()
    if dropped:
        logging.getLogger("app").info("removed the staging rows of %d import(s) that stopped mid-way", dropped)
    if settings.sample_video:
        for name in ("sample_shapes.mp4", "sample_sequence.zip"):
            add_video_if_missing(store, ASSETS_DIR / name, seed_file=ASSETS_DIR / (Path(name).stem + ".json"))
    return store


def start_embedded_consumers(settings) -> list:
    from queues.consumer import start_consumer

    started = []
    for queue in settings.embedded_consumers:
        consumer, heartbeat, identity = start_consumer(settings, queue, embedded=True)
        consumer.start()
        logging.getLogger("app").info("embedded consumer %s serving %r on %s", identity.worker_id, queue,
                                      identity.device)
        started.append((consumer, heartbeat))
    return started


def main() -> int:
    from sam2_tracking.logging_setup import setup_logging

    setup_logging()  # before the imports below: tqdm reads TQDM_* when gradio's dependencies first import it
    from sam2_tracking.settings import load_settings, require_logins_when_reachable

    try:
        settings = load_settings()
        # Before anything is opened or imported: with no login, only this machine may reach the app (or SAM2T_OPEN).
        require_logins_when_reachable(settings)
    except ValueError as error:
        # A setting to change, not a bug: its message alone, no traceback.
        logging.getLogger("app").error("%s", error)
        return 2
    from ui.app_ui import build_ui, serve
    from ui.auth import trust_proxy_headers_only_from

    trust_proxy_headers_only_from(settings.trusted_proxies)
    store = prepare(settings)
    consumers = start_embedded_consumers(settings)
    demo = build_ui(settings, store)
    try:
        serve(demo, settings, store)
    finally:
        for consumer, heartbeat in consumers:
            consumer.stop()
            heartbeat.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
