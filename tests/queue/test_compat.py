"""A state_dir written by an earlier whisperd opens unchanged and reports the same states.

The schema below is a frozen copy of ledger schema 1 (whisperd 0.1.0, before the package
layout); rows are written with plain SQL, as that version wrote them, and read back through
today's API, read-only and read-write (which migrates to the current schema).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from daemon.queue import FILENAME, SCHEMA_VERSION, open_ledger
from daemon.version import Fingerprint

V1 = """
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY, path BLOB NOT NULL, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, inode INTEGER,
    state TEXT NOT NULL CHECK (state IN
        ('queued','running','done','failed','superseded','gone')),
    attempts INTEGER NOT NULL DEFAULT 0, not_before REAL NOT NULL DEFAULT 0,
    enqueued_at REAL NOT NULL, started_at REAL, finished_at REAL, updated_at REAL NOT NULL,
    worker TEXT, model TEXT NOT NULL, settings TEXT NOT NULL DEFAULT '{}',
    outputs TEXT NOT NULL DEFAULT '[]', audio_seconds REAL, processing_seconds REAL,
    language TEXT, progress REAL NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 1),
    last_error TEXT, error_kind TEXT CHECK (error_kind IN ('permanent','transient'))
);
CREATE UNIQUE INDEX jobs_version ON jobs (path, size, mtime_ns, inode);
CREATE UNIQUE INDEX jobs_version_noinode ON jobs (path, size, mtime_ns) WHERE inode IS NULL;
CREATE UNIQUE INDEX jobs_one_running ON jobs (path) WHERE state = 'running';
CREATE INDEX jobs_queue ON jobs (state, enqueued_at, id);
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE state = 'done';
PRAGMA user_version = 1;
"""

ROWS = [
    # path, size, mtime_ns, inode, state, attempts, outputs, language, error
    (b"a/done.wav", 10, 1000, 1, "done", 0, '["a/done.srt"]', "en", None),
    (b"a/fail.wav", 11, 1001, 2, "failed", 3, "[]", None, "corrupt"),
    (b"b/gone.wav", 12, 1002, 3, "gone", 0, "[]", None, None),
    (b"b/sup.wav", 13, 1003, 4, "superseded", 0, "[]", None, None),
    (b"b/sup.wav", 14, 1004, 4, "running", 0, "[]", None, None),
    (b"caf\xe9.wav", 15, 1005, None, "queued", 0, "[]", None, None),
    (b"big.wav", 16, 1006, (1 << 64) - 5 - (1 << 64), "queued", 0, "[]", None, None),
]


@pytest.fixture
def old_state(tmp_path: Path) -> Path:
    state = tmp_path / "var"
    state.mkdir()
    with sqlite3.connect(state / FILENAME) as conn:
        conn.executescript(V1)
        for i, (path, size, mtime, inode, st, attempts, outs, lang, err) in enumerate(ROWS):
            conn.execute(
                "INSERT INTO jobs (path, size, mtime_ns, inode, state, attempts, enqueued_at,"
                " updated_at, model, outputs, language, last_error) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'base', ?, ?, ?)",
                (path, size, mtime, inode, st, attempts, 100 + i, 100 + i, outs, lang, err),
            )
    return state


def test_an_old_ledger_reads_the_same_read_only(old_state: Path) -> None:
    with open_ledger(old_state, readonly=SCHEMA_VERSION == 1) as ledger:
        latest = {job.path: job.state for job in ledger.latest_per_path()}
        assert latest == {
            "a/done.wav": "done",
            "a/fail.wav": "failed",
            "b/gone.wav": "gone",
            "b/sup.wav": "running",
            os.fsdecode(b"caf\xe9.wav"): "queued",
            "big.wav": "queued",
        }
        done = ledger.history("a/done.wav")[0]
        assert (done.outputs, done.language) == (("a/done.srt",), "en")
        assert ledger.history("big.wav")[0].fingerprint.inode == (1 << 64) - 5
        counts = {state: n for state, n in ledger.counts().items() if n}
        assert counts == {"queued": 2, "running": 1, "done": 1, "failed": 1, "superseded": 1,
                          "gone": 1}  # fmt: skip


def test_an_old_ledger_opens_for_writing_and_keeps_its_promises(old_state: Path) -> None:
    with open_ledger(old_state) as ledger:
        recovery = ledger.recover(now=200)  # the crash leftover goes back to the queue
        assert [j.path for j in recovery.requeued] == ["b/sup.wav"] and not recovery.failed
        assert ledger.is_known("a/done.wav", Fingerprint(10, 1000, 1))  # never transcribed again
        assert not ledger.is_known("b/gone.wav", Fingerprint(12, 1002, 3))  # may come back
        assert ledger.enqueue("a/done.wav", Fingerprint(10, 1000, 1), model="base",
                              settings_json="{}", now=201) is None  # fmt: skip
    with sqlite3.connect(old_state / FILENAME) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
