"""Fixtures shared by the tests of this folder.

``ledger`` runs each test on both backends: SQLite, and PostgreSQL on the session's
throwaway server (skipped, saying why, where none can be had). A test that also asks for
``db`` checks SQLite's own file and runs on SQLite only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.queue import Ledger

SQLITE_ONLY = {
    "test_100k_is_known_lookups": "100,000 single lookups over a socket; measured by the bench",
    "test_recover_counts_crashes_separately_from_attempts": "recover() on PostgreSQL takes "
    "back expired leases only (tests/queue/test_postgres_leases.py)",
}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "ledger.sqlite3"


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "sqlite":
        with Ledger(tmp_path / "state" / "ledger.sqlite3") as led:
            yield led
        return
    if "db" in request.fixturenames:
        pytest.skip("checks SQLite's own file")
    if request.node.originalname in SQLITE_ONLY:
        pytest.skip(SQLITE_ONLY[request.node.originalname])
    from daemon.queue.postgres import PgLedger

    with PgLedger(request.getfixturevalue("pg_dsn"), node="test", lease_seconds=60) as led:
        yield led
