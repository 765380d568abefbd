"""The store's one schema (store/sql_schema.py's metadata) and its versioned migrations (store/migrations.py): a
store migrated from an old version has exactly the tables of a new one, concurrent openers create it once, a store
from a newer app is refused, and PostgreSQL enforces the same rules as SQLite."""

from __future__ import annotations

import sqlite3
import threading

import pytest
import sqlalchemy as sa

from sam2_tracking.store import SCHEMA_VERSION, open_store, sql_schema
from tests.test_store_migration import build_v4_sqlite


def _affinity(declared: str) -> str:
    """SQLite's type affinity of a declared type (https://sqlite.org/datatype3.html section 3.1)."""
    t = declared.upper()
    if "INT" in t:
        return "INTEGER"
    if any(k in t for k in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if "BLOB" in t or not t:
        return "BLOB"
    if any(k in t for k in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


def _describe(conn: sqlite3.Connection) -> dict:
    tables = {}
    for name, sql in conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"):
        if name.startswith("sqlite_"):
            continue
        # A primary key column counts as NOT NULL: SQLAlchemy declares it so, which only forbids what the store
        # never writes (SQLite lets a non-integer primary key of a rowid table hold NULL unless told otherwise).
        columns = [(c[1], _affinity(c[2]), bool(c[3]) or c[5] > 0, (c[4] or "").strip("'"), c[5])
                   for c in conn.execute(f'PRAGMA table_info("{name}")')]
        indexes = sorted((i[1], tuple(r[2] for r in conn.execute(f'PRAGMA index_info("{i[1]}")')))
                         for i in conn.execute(f'PRAGMA index_list("{name}")') if i[3] == "c")
        foreign = sorted((f[2], f[3], f[4], f[6]) for f in conn.execute(f'PRAGMA foreign_key_list("{name}")'))
        tables[name] = {"columns": columns, "indexes": indexes, "foreign_keys": foreign,
                        "without_rowid": "WITHOUT ROWID" in sql.upper()}
    return tables


def test_a_migrated_sqlite_file_has_the_tables_of_a_new_one(tmp_path):
    """A file made by the version 4 app (its own DDL), migrated, equals a file created from the metadata: the
    migrations and the one schema definition cannot drift apart."""
    old = tmp_path / "v4.db"
    build_v4_sqlite(old)
    open_store(old).close()
    open_store(tmp_path / "new.db").close()
    migrated, new = sqlite3.connect(old), sqlite3.connect(tmp_path / "new.db")
    expected, actual = _describe(new), _describe(migrated)
    assert sorted(actual) == sorted(expected) == sorted(sql_schema.metadata.tables)
    for table in expected:
        assert actual[table] == expected[table], table
    assert migrated.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    migrated.close()
    new.close()


def test_concurrent_openers_create_the_store_once(store_location):
    errors = []

    def open_it():
        try:
            open_store(store_location).close()
        except Exception as exc:  # collected and asserted below: a race would show as a duplicate-table error
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    with open_store(store_location) as store, store._read() as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


def test_a_store_from_a_newer_app_is_refused(store_location):
    with open_store(store_location) as store, store._write() as conn:
        conn.execute("UPDATE schema_version SET version = :v", {"v": SCHEMA_VERSION + 50})
    with pytest.raises(RuntimeError, match="knows only up to"):
        open_store(store_location)


@pytest.mark.postgres
def test_postgres_enforces_the_same_rules(postgres_url):
    open_store(postgres_url).close()
    engine = sa.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://", 1))
    s = sql_schema
    with engine.begin() as conn:
        dataset_id = conn.execute(s.datasets.insert().values(
            name="clip", path="/v/clip.mp4", kind="video", frame_count=10, fps=25.0, width=64, height=48,
            created_at=1.0).returning(s.datasets.c.dataset_id)).scalar_one()
        track_id = conn.execute(s.tracks.insert().values(dataset_id=dataset_id, confidence_pairs="[]")
                                .returning(s.tracks.c.track_id)).scalar_one()
        job_id = conn.execute(s.jobs.insert().values(
            dataset_id=dataset_id, spec_json="{}", queue="cpu", start_frame_idx=0, frames_total=10,
            created_at=1.0).returning(s.jobs.c.job_id)).scalar_one()
        conn.execute(s.features.insert().values(track_id=track_id, frame_idx=0, present=1, keyframe=0,
                                                job_id=job_id))
        row = conn.execute(sa.select(s.jobs.c.status, s.jobs.c.frames_done, s.tracks.c.attributes)
                           .select_from(s.jobs.join(s.tracks, s.tracks.c.dataset_id == s.jobs.c.dataset_id))).one()
        assert tuple(row) == ("queued", 0, "{}")  # the metadata's server defaults
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(s.datasets.insert().values(name="x", path="x", kind="audio", frame_count=1, fps=1.0, width=1,
                                                height=1, created_at=1.0))
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(s.features.insert().values(track_id=track_id, frame_idx=0, present=1, keyframe=1))
    with engine.begin() as conn:
        conn.execute(s.jobs.delete().where(s.jobs.c.job_id == job_id))
        assert conn.execute(sa.select(s.features.c.job_id)).scalar_one() is None  # ON DELETE SET NULL
        conn.execute(s.datasets.delete().where(s.datasets.c.dataset_id == dataset_id))
        assert conn.execute(sa.select(sa.func.count()).select_from(s.features)).scalar_one() == 0  # cascades
    engine.dispose()
