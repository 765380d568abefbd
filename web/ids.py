"""Ids and frame numbers in URLs, parsed once for every route of the app (web.routes, web.video_route, the seed
preview of ui.seed_preview).

Routes take their ids as text and hand them to route_id or query_index, which accept only what a row could hold:
ASCII digits, at most the largest SQLite INTEGER / PostgreSQL BIGINT. An id no row can have (negative, "abc", "1e3",
2^63, a 40-digit number) is answered here with a short JSON message, before the store is asked: handed to a database
driver, a number past 64 bits raised OverflowError (SQLite) and the route answered 500.
"""

from __future__ import annotations

# At module level: the routes raise it, and FastAPI answers it as {"detail": message}.
from fastapi import HTTPException

DB_INT_MAX = 2**63 - 1  # SQLite INTEGER and PostgreSQL BIGINT both stop here
_MAX_DIGITS = len(str(DB_INT_MAX))
_SHOWN_CHARS = 24  # a long id is cut in the message: it is only there to say which one was refused


def _parse(text: str | None) -> int | None:
    """text as a non-negative integer a database column can hold, else None. Only ASCII digits: int() alone would
    also take "+1", " 1", "1_0" and other scripts' digits, none of which a page or a consumer ever sends."""
    if text is None or not (text.isascii() and text.isdigit()) or len(text) > _MAX_DIGITS:
        return None
    value = int(text)
    return value if value <= DB_INT_MAX else None


def _shown(text: str) -> str:
    return repr(text[:_SHOWN_CHARS] + ("..." if len(text) > _SHOWN_CHARS else ""))


def route_id(text: str, what: str) -> int:
    """A path segment naming a row or a frame ("video", "frame"): its value, or 404 {"detail": "No video '-1'."}.
    404 rather than 422: from outside, an id that cannot exist and one that does not are the same thing."""
    value = _parse(text)
    if value is None:
        raise HTTPException(status_code=404, detail=f"No {what} {_shown(text)}.")
    return value


def query_index(text: str | None, name: str, default: int) -> int:
    """A query parameter bounding a frame range (e.g. /masks?start=): its value, which may be negative (the route
    clamps a range to the video), default when absent, or 422 {"detail": "start must be a frame number, not '1e3'."}
    for text that is no integer or one past 64 bits."""
    if text is None:
        return default
    value = _parse(text[1:]) if text.startswith("-") else _parse(text)
    if value is None:
        raise HTTPException(status_code=422, detail=f"{name} must be a frame number, not {_shown(text)}.")
    return -value if text.startswith("-") else value
