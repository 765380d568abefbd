"""Helpers shared by the test suite and the benchmarks: real servers and processes on loopback (the app, consumers,
PostgreSQL, Redis, an HTTP file server, Chromium), a store snapshot, and one polling wait.

They live in the package, not in tests/, so benchmarks use them without importing the test suite. Importing any of
these modules starts nothing and imports nothing heavy: torch, sam2, httpx, psycopg and Playwright are imported inside
the functions that use them. A missing outside program (chromium, redis-server, PostgreSQL) raises MissingToolError,
saying how to install it: a test that needs one fails rather than skips.
"""

from __future__ import annotations


class MissingToolError(RuntimeError):
    """An outside program a test or benchmark needs is not installed (tests/run_all.sh installs them all)."""
