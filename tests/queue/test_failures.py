"""Failures, retries, recovery after a crash, requeue and abandon."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from daemon.errors import LedgerError
from daemon.queue import INTERRUPTED, Ledger, RetryPolicy, crash_message
from tests.queue.support import FP1, REPO, add

# --- failures and recovery ---------------------------------------------------------------


def _fail(led: Ledger, job_id: int, now: float, *, transient: bool = False) -> str:
    return led.fail(
        job_id,
        error="boom",
        transient=transient,
        policy=RetryPolicy(max_attempts=3, backoff=10, backoff_max=15),
        now=now,
    )


def test_fail_backs_off_then_fails_after_max_attempts(ledger: Ledger) -> None:
    job = add(ledger, "a.wav")
    assert _fail(ledger, ledger.claim("w", now=0).id, now=100) == "queued"
    assert ledger.get(job.id).not_before == 110  # 10 * 2**0
    assert ledger.claim("w", now=109) is None
    assert _fail(ledger, ledger.claim("w", now=110).id, now=200) == "queued"
    assert ledger.get(job.id).not_before == 215  # min(10 * 2**1, 15)
    assert _fail(ledger, ledger.claim("w", now=215).id, now=300) == "failed"
    failed = ledger.get(job.id)
    assert (failed.state, failed.attempts, failed.error_kind, failed.last_error) == (
        "failed",
        3,
        "permanent",
        "boom",
    )
    assert failed.finished_at == 300
    assert ledger.claim("w", now=10_000) is None
    assert [j.id for j in ledger.recent_failures(5)] == [job.id]
    assert ledger.enqueue("a.wav", FP1, model="small", settings_json="{}", now=400) is None


def test_transient_errors_get_ten_attempts(ledger: Ledger) -> None:
    job = add(ledger, "a.wav")
    now = 0.0
    states = []
    for _ in range(10):
        claimed = ledger.claim("w", now=now)
        states.append(_fail(ledger, claimed.id, now, transient=True))
        now = ledger.get(job.id).not_before
    assert states == ["queued"] * 9 + ["failed"]
    assert ledger.get(job.id).error_kind == "transient"
    # A permanent error after transient ones fails at max_attempts, which is long past.
    other = add(ledger, "b.wav", now=now)
    _fail(ledger, ledger.claim("w", now=now).id, now, transient=True)
    _fail(ledger, ledger.claim("w", now=now + 100).id, now + 100, transient=True)
    assert _fail(ledger, ledger.claim("w", now=now + 200).id, now + 200) == "failed"
    assert ledger.get(other.id).attempts == 3


def test_requeue_does_not_count_an_attempt(ledger: Ledger) -> None:
    job = add(ledger, "a.wav")
    ledger.claim("w", now=1)
    ledger.set_progress(job.id, 0.5, now=2)
    assert ledger.get(job.id).progress == 0.5
    ledger.requeue(job.id, reason="shutdown", now=3)
    back = ledger.get(job.id)
    assert (back.state, back.attempts, back.progress, back.worker) == ("queued", 0, 0, None)
    assert not ledger.set_progress(job.id, 0.7, now=4)  # not running any more
    with pytest.raises(LedgerError, match="not running"):
        ledger.complete(
            job.id, outputs=[], audio_seconds=1, processing_seconds=1, language=None, now=5
        )


def test_retry_all_paths_and_folders(ledger: Ledger) -> None:
    for i, path in enumerate(["a/b/1.wav", "a/b/2.wav", "a/bc/3.wav", "a/b0", "z.wav"]):
        add(ledger, path, now=i)
    for i in range(5):
        job = ledger.claim("w", now=10 + i)
        _fail(ledger, job.id, 10 + i)
        ledger.claim("w", now=100 + i)  # backoff elapsed: claim again and fail for good
        ledger.fail(
            job.id,
            error="x",
            transient=False,
            policy=RetryPolicy(max_attempts=2, backoff=1, backoff_max=1),
            now=100,
        )
    assert ledger.counts()["failed"] == 5
    assert ledger.retry(["a/b/"], now=200) == 2  # not a/bc, not a/b0
    assert ledger.retry(["z.wav", "nope"], now=200) == 1
    queued = {j.path: j for j in ledger.latest_per_path() if j.state == "queued"}
    assert set(queued) == {"a/b/1.wav", "a/b/2.wav", "z.wav"}
    assert all(j.attempts == 0 and j.not_before == 200 for j in queued.values())
    assert ledger.retry(None, now=300) == 2
    assert ledger.counts()["failed"] == 0


def test_recover_requeues_running_rows_left_by_a_restart(db: Path) -> None:
    with Ledger(db) as led:
        job = add(led, "a.wav")
        led.claim("w", now=1)
    with Ledger(db) as led:
        assert len(led.recover(now=50)) == 1
        back = led.get(job.id)
        assert (back.state, back.attempts, back.last_error, back.not_before) == (
            "queued",
            1,
            INTERRUPTED,
            50,
        )
        assert len(led.recover(now=51)) == 0
        led.claim("w", now=52)
        recovery = led.recover(now=53, crash_limit=2)  # the second interruption: given up
        assert ([j.id for j in recovery.failed], recovery.requeued) == ([job.id], [])
        given_up = led.get(job.id)
        assert (given_up.state, given_up.crashes, given_up.attempts) == ("failed", 2, 2)
        assert given_up.last_error == crash_message(2)
        assert "stopped while transcribing this file 2 times" in given_up.last_error


CLAIM_AND_HANG = """
    import sys, time
    from pathlib import Path
    import structlog
    from daemon.queue import Ledger
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    led = Ledger(Path(sys.argv[1]))
    job = led.claim("doomed", now=5)
    # Half a transaction: this update must vanish with the process.
    led._conn.execute("BEGIN IMMEDIATE")
    led._conn.execute("UPDATE jobs SET state = 'done' WHERE id = ?", (job.id,))
    print(job.id, flush=True)
    time.sleep(600)
"""


def test_recover_after_kill_9_mid_transaction(db: Path) -> None:
    with Ledger(db) as led:
        job = add(led, "a.wav")
        add(led, "b.wav", now=1)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(CLAIM_AND_HANG), str(db)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert int(proc.stdout.readline()) == job.id
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    with Ledger(db) as led:  # the restart
        assert led.counts()["running"] == 1 and led.counts()["done"] == 0
        assert len(led.recover(now=10)) == 1
        back = led.get(job.id)
        assert (back.state, back.attempts, back.worker) == ("queued", 1, None)
        assert led.claim("w", now=11).id == job.id
