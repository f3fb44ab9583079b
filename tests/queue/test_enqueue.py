"""The ledger's intake on real SQLite: one row per version, supersede, revive, lookups."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from daemon.queue import Ledger, RetryPolicy
from daemon.version import Fingerprint
from tests.queue.support import FP1, FP2, SETTINGS, add

# --- intake ------------------------------------------------------------------------------


def test_enqueue_dedupes_across_reopen(db: Path) -> None:
    with Ledger(db) as led:
        job = add(led, "a/x.wav", now=10)
        assert (job.state, job.attempts, job.enqueued_at, job.model) == ("queued", 0, 10, "small")
        assert led.enqueue("a/x.wav", FP1, model="small", settings_json=SETTINGS, now=11) is None
        led.complete(
            led.claim("w", now=12).id,
            outputs=["a/x.srt"],
            audio_seconds=5,
            processing_seconds=1,
            language="en",
            now=13,
        )
    with Ledger(db) as led:  # a restart
        assert led.is_known("a/x.wav", FP1)
        assert led.enqueue("a/x.wav", FP1, model="large", settings_json="{}", now=20) is None
        assert led.counts()["done"] == 1 and led.counts()["queued"] == 0
        assert led.get(job.id).outputs == ("a/x.srt",)
        # Same path and times but without an inode is a different version key.
        assert not led.is_known("a/x.wav", Fingerprint(100, 1_000, None))
        assert not led.is_known("a/x.wav", FP2)


def test_null_inode_versions_are_deduped(ledger: Ledger) -> None:
    fp = Fingerprint(5, 6, None)
    add(ledger, "n.wav", fp)
    assert ledger.is_known("n.wav", fp)
    assert ledger.enqueue("n.wav", fp, model="small", settings_json=SETTINGS, now=1) is None
    assert ledger.counts()["queued"] == 1


def test_huge_inode_round_trips(ledger: Ledger) -> None:
    fp = Fingerprint(1, 2, 2**64 - 5)  # 64-bit inodes (NFS, overlayfs) exceed SQLite's range
    job = add(ledger, "big.wav", fp)
    assert ledger.get(job.id).fingerprint == fp
    assert ledger.is_known("big.wav", fp)
    assert ("big.wav", fp) in ledger.known_versions()


def test_new_version_supersedes_queued_and_failed(ledger: Ledger) -> None:
    v1 = add(ledger, "a.wav", FP1, now=1)
    v2 = add(ledger, "a.wav", FP2, now=2)
    assert ledger.get(v1.id).state == "superseded"
    ledger.fail(
        ledger.claim("w", now=3).id,
        error="bad",
        transient=False,
        policy=RetryPolicy(max_attempts=1, backoff=1, backoff_max=1),
        now=4,
    )
    assert ledger.get(v2.id).state == "failed"
    v3 = add(ledger, "a.wav", Fingerprint(130, 3_000, 7), now=5)
    assert ledger.get(v2.id).state == "superseded"
    assert [j.id for j in ledger.latest_per_path()] == [v3.id]
    assert ledger.retry(now=6) == 0  # the superseded failure is not retried


def test_new_version_waits_for_running_older_version(ledger: Ledger) -> None:
    v1 = add(ledger, "a.wav", FP1, now=1)
    add(ledger, "b.wav", FP1, now=2)
    assert ledger.claim("w1", now=3).id == v1.id
    v2 = add(ledger, "a.wav", FP2, now=4)
    assert ledger.get(v1.id).state == "running"  # left alone
    assert ledger.get(v2.id).state == "queued"
    # Another worker skips a.wav (its older version runs) and takes b.wav.
    assert ledger.claim("w2", now=5).path == "b.wav"
    assert ledger.claim("w3", now=6) is None
    ledger.complete(v1.id, outputs=[], audio_seconds=1, processing_seconds=1, language="en", now=7)
    assert ledger.claim("w3", now=8).id == v2.id
    latest = {j.path: j.state for j in ledger.latest_per_path()}
    assert latest == {"a.wav": "running", "b.wav": "running"}


def test_database_refuses_two_running_rows_for_one_path(ledger: Ledger, db: Path) -> None:
    add(ledger, "a.wav", FP1, now=1)
    ledger.claim("w", now=2)
    conn = sqlite3.connect(db)
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "INSERT INTO jobs (path, size, mtime_ns, state, enqueued_at, updated_at, model) "
            "VALUES (?, 1, 1, 'running', 0, 0, 'm')",
            (b"a.wav",),
        )
    conn.close()


def test_gone_version_is_revived_when_it_reappears(ledger: Ledger) -> None:
    job = add(ledger, "a.wav", now=1)
    assert ledger.mark_gone("a.wav", now=2) == []  # nothing had failed: no .error.txt to drop
    assert ledger.get(job.id).state == "gone"
    assert not ledger.is_known("a.wav", FP1)
    assert ledger.claim("w", now=3) is None
    again = add(ledger, "a.wav", now=4)
    assert (again.id, again.state, again.enqueued_at) == (job.id, "queued", 4)
    assert ledger.mark_gone("nothing.wav", now=5) == []


def test_non_utf8_path_round_trips(ledger: Ledger, db: Path) -> None:
    name = os.fsdecode(b"dir/caf\xe9.wav")
    job = add(ledger, name)
    assert ledger.get(job.id).path == name
    assert os.fsencode(ledger.claim("w", now=1).path) == b"dir/caf\xe9.wav"
    assert ledger.is_known(name, FP1)
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT path FROM jobs").fetchone()[0] == b"dir/caf\xe9.wav"
    conn.close()
    assert ledger.known_versions(under="dir") == {(name, FP1)}
