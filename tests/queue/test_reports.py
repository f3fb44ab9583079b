"""The read-only queries behind whisperd status."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from daemon.errors import LedgerError
from daemon.queue import Ledger, RetryPolicy
from daemon.version import Fingerprint
from tests.queue.support import FP1, FP2, READ_COUNTS, add, run_python

# --- status queries ----------------------------------------------------------------------


def test_counts_throughput_and_latest(ledger: Ledger) -> None:
    assert ledger.counts() == dict.fromkeys(
        ["queued", "running", "done", "failed", "superseded", "gone", "incomplete", "skipped"], 0
    )
    for i, audio in enumerate([3600.0, 1800.0, 900.0]):
        job = add(ledger, f"{i}.wav", now=i)
        ledger.claim("w", now=10)
        ledger.complete(
            job.id,
            outputs=[f"{i}.txt"],
            audio_seconds=audio,
            processing_seconds=60,
            language="de",
            now=[1000, 3000, 3600][i],
        )
    # Window (0, 3600]... only finished in (3600 - 1800, 3600]: 1800 + 900 audio seconds.
    assert ledger.throughput(1800, now=3600) == pytest.approx(2700 / 1800)
    assert ledger.throughput(3600, now=3600) == pytest.approx(6300 / 3600)
    assert ledger.throughput(60, now=10_000) == 0
    add(ledger, "0.wav", FP2, now=4000)
    latest = {j.path: (j.state, j.fingerprint) for j in ledger.latest_per_path()}
    assert latest["0.wav"] == ("queued", FP2) and latest["1.wav"][0] == "done"
    assert ledger.counts()["done"] == 3 and ledger.counts()["queued"] == 1
    assert ledger.running() == []
    with pytest.raises(LedgerError, match="no job 999"):
        ledger.get(999)


def test_100k_is_known_lookups(ledger: Ledger) -> None:
    n = 100_000
    versions = [(f"folder{i % 100}/file{i}.wav", Fingerprint(i, i * 7, i + 1)) for i in range(n)]
    t0 = time.perf_counter()
    assert ledger.enqueue_many(versions, model="small", settings_json="{}", now=1) == n
    t1 = time.perf_counter()
    assert all(ledger.is_known(p, fp) for p, fp in versions)
    t2 = time.perf_counter()
    known = ledger.known_versions()
    assert all(v in known for v in versions)
    t3 = time.perf_counter()
    assert not ledger.is_known("folder1/file1.wav", Fingerprint(1, 8, 2))
    assert len(ledger.known_versions(under="folder7")) == n // 100
    print(
        f"\n100k: enqueue_many {t1 - t0:.2f}s, is_known x{n} {t2 - t1:.2f}s, "
        f"known_versions + lookups {t3 - t2:.2f}s"
    )
    assert t2 - t1 < 60  # generous; the printed number is the benchmark


def test_readonly_reader_after_the_service_stopped(db: Path) -> None:
    with Ledger(db) as led:
        add(led, "a.wav")
    result = run_python(READ_COUNTS, str(db))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["counts"]["queued"] == 1


def test_worker_threads_share_one_ledger(ledger: Ledger) -> None:
    ledger.enqueue_many(
        ((f"{i}.wav", FP1) for i in range(200)), model="small", settings_json="{}", now=1
    )
    claimed: list[list[int]] = [[] for _ in range(4)]

    def work(n: int) -> None:
        while (job := ledger.claim(f"gpu{n}", now=2)) is not None:
            claimed[n].append(job.id)
            ledger.set_progress(job.id, 0.5, now=3)
            ledger.complete(
                job.id, outputs=[], audio_seconds=1, processing_seconds=1, language=None, now=4
            )

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    ids = [i for ids in claimed for i in ids]
    assert len(ids) == len(set(ids)) == 200
    assert ledger.counts()["done"] == 200


def test_abandon_marks_a_running_job_gone_or_superseded(ledger: Ledger) -> None:
    gone, changed = add(ledger, "a.wav"), add(ledger, "b.wav")
    ledger.claim("w", now=1)
    ledger.abandon(gone.id, state="gone", reason="the file disappeared", now=2)
    ledger.claim("w", now=3)
    ledger.abandon(changed.id, state="superseded", reason="changed", now=4)
    assert [ledger.get(j.id).state for j in (gone, changed)] == ["gone", "superseded"]
    assert ledger.get(gone.id).last_error == "the file disappeared"
    assert not ledger.is_known("a.wav", gone.fingerprint)  # a comeback is queued afresh
    with pytest.raises(LedgerError, match="not running"):
        ledger.abandon(gone.id, state="gone", reason="again", now=5)


def test_brief_rows_and_the_listed_jobs(ledger: Ledger) -> None:
    """What the status report reads (current, jobs, in_state without a limit), on both."""
    done, failed = add(ledger, "d.wav", now=1), add(ledger, "f.wav", now=2)
    ledger.claim("w", now=3)
    ledger.complete(done.id, outputs=["d.txt"], audio_seconds=5, processing_seconds=1,
                    language="en", now=100)  # fmt: skip
    ledger.claim("w", now=101)
    ledger.fail(failed.id, error="bad", transient=False, policy=RetryPolicy(max_attempts=1),
                now=102)  # fmt: skip
    waiting = add(ledger, "sub/w.wav", now=103)
    brief = {b.id: (b.path, b.state) for b in ledger.current(since=50)}
    assert brief == {done.id: ("d.wav", "done"), failed.id: ("f.wav", "failed"),
                     waiting.id: ("sub/w.wav", "queued")}  # fmt: skip
    assert done.id not in {b.id for b in ledger.current(since=100.5)}
    assert sorted(j.path for j in ledger.jobs([waiting.id, done.id, 999])) == ["d.wav", "sub/w.wav"]
    assert [j.id for j in ledger.in_state("done", limit=-1)] == [done.id]
    assert [j.id for j in ledger.recent_failures()] == [failed.id]
    assert ledger.oldest_queued_at() == 103 and ledger.active_ids() == {waiting.id}
    assert ledger.totals() == (5.0, 1.0) and ledger.totals("failed") == (0.0, 0.0)
