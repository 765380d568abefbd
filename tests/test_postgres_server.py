"""The PostgreSQL fixture itself: a real server on loopback, a fresh database per test, row locks that block."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.postgres


def test_fresh_database_per_test_and_row_locks_block(postgres_url):
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as admin:
        assert admin.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0] == 0
        admin.execute("CREATE TABLE jobs (id int PRIMARY KEY, lease text)")
        admin.execute("INSERT INTO jobs VALUES (1, NULL)")
    # The store's job lease relies on this: a second writer asking for the same row waits for the first's commit.
    with psycopg.connect(postgres_url) as first, psycopg.connect(postgres_url) as second:
        first.execute("SELECT lease FROM jobs WHERE id = 1 FOR UPDATE")
        second.execute("SET lock_timeout = '200ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            second.execute("SELECT lease FROM jobs WHERE id = 1 FOR UPDATE")
        second.rollback()
        first.execute("UPDATE jobs SET lease = 'worker-a' WHERE id = 1")
        first.commit()
        assert second.execute("SELECT lease FROM jobs WHERE id = 1 FOR UPDATE").fetchone()[0] == "worker-a"


def test_server_listens_on_loopback_only(postgres_server):
    import psycopg

    with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone()[0] == "127.0.0.1"
