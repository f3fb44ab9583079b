"""Fixtures shared by the tests of this folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.queue import Ledger


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "ledger.sqlite3"


@pytest.fixture
def ledger(db: Path):
    with Ledger(db) as led:
        yield led
