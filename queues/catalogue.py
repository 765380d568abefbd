"""Keeps the store's model catalogue in step with the default SAM2.1 models that models.py knows."""

from __future__ import annotations


def ensure_default_models(store) -> None:
    """List every default model in the store (as not downloaded) unless it is there already."""
    from sam2_tracking.models import DEFAULT_MODELS
    from sam2_tracking.store import NotFound

    for entry in DEFAULT_MODELS.values():
        try:
            store.get_model(entry.name)
        except NotFound:
            store.upsert_model(entry.name, entry.config, entry.checkpoint_url, is_default=True, status="absent",
                               size=entry.expected_size, sha256=entry.sha256)
