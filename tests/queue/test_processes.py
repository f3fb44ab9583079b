"""Several processes on one ledger file: readers, writers, kill -9, opening damaged files."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from daemon.errors import LedgerError
from daemon.queue import SCHEMA_VERSION, Ledger, open_ledger
from tests.queue.support import FP1, READ_COUNTS, add, run_python

# --- processes ---------------------------------------------------------------------------


def test_readonly_reader_in_another_process_while_writer_holds_a_transaction(db: Path) -> None:
    with Ledger(db) as led:
        for i in range(3):
            add(led, f"{i}.wav", now=i)
        led.claim("w", now=5)
        # The service is in the middle of a write transaction; the reader must not wait.
        led._conn.execute("BEGIN IMMEDIATE")
        led._conn.execute("UPDATE jobs SET state = 'gone' WHERE state = 'queued'")
        result = run_python(READ_COUNTS, str(db))
        led._conn.execute("ROLLBACK")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["counts"]["queued"] == 2 and report["counts"]["running"] == 1
    assert report["counts"]["gone"] == 0 and report["depth"] == 2
    assert report["refused"]
    assert report["seconds"] < 5  # far below busy_timeout: it did not wait for the lock


def test_readonly_without_a_ledger_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="no ledger yet"):
        Ledger(tmp_path / "ledger.sqlite3", readonly=True)


def _claim_all(db: str, worker: str, start: Any) -> list[int]:
    """Child process: claim and complete jobs until none is left."""
    claimed = []
    start.wait(30)
    with Ledger(Path(db)) as led:
        while (job := led.claim(worker, now=10)) is not None:
            claimed.append(job.id)
            led.complete(
                job.id, outputs=[], audio_seconds=1, processing_seconds=1, language="en", now=11
            )
    return claimed


def test_processes_claiming_concurrently_never_share_a_job(db: Path) -> None:
    with Ledger(db) as led:
        total = led.enqueue_many(
            ((f"f{i:04}.wav", FP1) for i in range(300)), model="small", settings_json="{}", now=1
        )
    assert total == 300
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        start = manager.Event()
        with ctx.Pool(4) as pool:
            results = [pool.apply_async(_claim_all, (str(db), f"p{i}", start)) for i in range(4)]
            start.set()
            per_worker = [r.get(timeout=120) for r in results]
    claimed = [job_id for ids in per_worker for job_id in ids]
    assert len(claimed) == len(set(claimed)) == 300
    assert sum(1 for ids in per_worker if ids) >= 2, "the workers did not overlap"
    who = {job_id: f"p{i}" for i, ids in enumerate(per_worker) for job_id in ids}
    with Ledger(db) as led:
        assert led.counts()["done"] == 300
        assert {j.id: j.worker for j in led.latest_per_path()} == who


# --- opening -----------------------------------------------------------------------------


def test_corrupt_file_is_a_ledger_error(db: Path) -> None:
    db.parent.mkdir(parents=True)
    db.write_bytes(b"this is not sqlite\n" * 500)
    with pytest.raises(LedgerError, match=r"not a usable whisperd ledger.*move the file"):
        Ledger(db)


def test_damaged_pages_are_a_ledger_error(db: Path) -> None:
    with Ledger(db) as led:
        led.enqueue_many(
            ((f"{i:05}" * 20, FP1) for i in range(2000)), model="m", settings_json="{}", now=1
        )
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(db.read_bytes())
    data[8192:40960] = b"\xff" * 32768  # scribble over index and table pages
    db.write_bytes(bytes(data))
    with pytest.raises(LedgerError, match="not a usable whisperd ledger"):
        Ledger(db)


def test_newer_schema_is_refused(db: Path) -> None:
    Ledger(db).close()
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(LedgerError, match="newer than this whisperd"):
        Ledger(db)


def test_pragmas_and_schema(tmp_path: Path) -> None:
    with open_ledger(tmp_path) as led:
        conn = led._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert (tmp_path / "ledger.sqlite3").exists()
