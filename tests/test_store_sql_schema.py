"""The store's schema in SQLAlchemy Core (store/sql_schema.py) equals the shipped SQLite schema (store/schema.py)
column for column, and creates, migrates and enforces the same rules on a real PostgreSQL."""

from __future__ import annotations

import sqlite3
import threading

import pytest
import sqlalchemy as sa

from sam2_tracking.store import sql_schema
from sam2_tracking.store.schema import SCHEMA_VERSION, migrate


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


def test_core_schema_matches_the_shipped_sqlite_schema(tmp_path):
    shipped = sqlite3.connect(tmp_path / "shipped.db", isolation_level=None)
    migrate(shipped)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'core.db'}")
    assert sql_schema.migrate_engine(engine) == SCHEMA_VERSION
    engine.dispose()
    core = sqlite3.connect(tmp_path / "core.db")
    expected, actual = _describe(shipped), _describe(core)
    assert sorted(actual) == sorted(expected)
    for table in expected:
        assert actual[table] == expected[table], table
    shipped.close()
    core.close()


@pytest.mark.postgres
def test_postgres_database_is_created_once_even_by_concurrent_openers(postgres_url):
    url = postgres_url.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = sa.create_engine(url, pool_size=8)
    versions, errors = [], []

    def open_it():
        try:
            versions.append(sql_schema.migrate_engine(engine))
        except Exception as exc:  # collected and asserted below: a race would show as a duplicate-table error
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and versions == [SCHEMA_VERSION] * 4
    inspector = sa.inspect(engine)
    assert set(inspector.get_table_names()) == set(sql_schema.metadata.tables)
    assert {c["name"] for c in inspector.get_columns("jobs")} == set(sql_schema.jobs.c.keys())
    assert sql_schema.migrate_engine(engine) == SCHEMA_VERSION  # idempotent

    with engine.begin() as conn:
        conn.execute(sa.update(sql_schema.schema_version).values(version=SCHEMA_VERSION + 50))
    with pytest.raises(RuntimeError, match="knows only up to"):
        sql_schema.migrate_engine(engine)
    engine.dispose()


@pytest.mark.postgres
def test_postgres_enforces_the_same_rules(postgres_url):
    engine = sa.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://", 1))
    sql_schema.migrate_engine(engine)
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
        assert tuple(row) == ("queued", 0, "{}")  # server defaults as schema.py declares them
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


@pytest.mark.postgres
def test_postgres_database_from_an_older_app_is_upgraded(postgres_url):
    engine = sa.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://", 1))
    sql_schema.migrate_engine(engine)
    with engine.begin() as conn:  # what an app at the first PostgreSQL version created
        conn.execute(sa.text("ALTER TABLE workers DROP COLUMN models"))
        conn.execute(sa.update(sql_schema.schema_version).values(version=sql_schema.FIRST_POSTGRES_VERSION))
    assert sql_schema.migrate_engine(engine) == SCHEMA_VERSION
    assert {c["name"] for c in sa.inspect(engine).get_columns("workers")} == set(sql_schema.workers.c.keys())
    engine.dispose()
