"""Every row of every table of a store (a SQLite file path, or an open Store on either backend), for tests that prove
a refused operation changed nothing."""

from __future__ import annotations

import sqlite3


def snapshot(path) -> dict:
    if hasattr(path, "_read"):  # an open Store: read through it, so this works on PostgreSQL too
        return _snapshot_store(path)
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        return {t: sorted(map(repr, conn.execute(f"SELECT * FROM {t}").fetchall())) for t in tables}
    finally:
        conn.close()


def _snapshot_store(store) -> dict:
    with store._read() as conn:
        if conn.dialect == "sqlite":
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        else:
            tables = [r[0] for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name")]
        return {t: sorted(repr(tuple(row)) for row in conn.execute(f"SELECT * FROM {t}").fetchall()) for t in tables}
