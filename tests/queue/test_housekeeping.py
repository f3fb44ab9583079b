"""The ledger over months: pruning, vacuum, requeueing done files, the counters kept by
triggers, and the status queries that never read the whole table. The tests taking
``ledger`` run on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon.queue import FILENAME, JobStore, RetryPolicy, open_ledger
from daemon.version import Fingerprint

DAY = 86400.0
FOREVER = RetryPolicy(max_attempts=1)


def raw(ledger: JobStore, query: str, params: tuple = ()) -> None:
    """A write the interface has no method for, in the backend's dialect."""
    if ledger.shared:
        from daemon.queue.postgres.connection import sql

        query = sql(query)
    with ledger._write("test") as conn:  # type: ignore[attr-defined]
        conn.execute(query, params)


def settle(ledger: JobStore, path: str, state: str, at: float, n: int) -> int:
    """A version of ``path`` recorded and brought to ``state`` at time ``at``."""
    job = ledger.enqueue(path, Fingerprint(n, n, n), model="m", settings_json="{}", now=at - 2)
    assert job is not None
    if state in ("done", "failed"):
        claimed = ledger.claim("w", now=at - 1)
        assert claimed is not None and claimed.id == job.id
        if state == "done":
            ledger.complete(job.id, outputs=[f"{path}.txt"], audio_seconds=10.0,
                            processing_seconds=2.0, language="en", now=at)  # fmt: skip
        else:
            ledger.fail(job.id, error="bad", transient=False, policy=FOREVER, now=at)
    elif state == "gone":
        ledger.mark_gone(path, now=at)
    return job.id


def test_prune_deletes_old_history_of_missing_files_only(ledger: JobStore) -> None:
    now = 1_000 * DAY
    present = {"kept.wav", "recent.wav"}
    settle(ledger, "kept.wav", "done", now - 100 * DAY, 1)  # old, file still there
    settle(ledger, "deleted.wav", "done", now - 100 * DAY, 2)  # old, file gone: pruned
    settle(ledger, "broken.wav", "failed", now - 100 * DAY, 3)  # old, file gone: pruned
    settle(ledger, "recent.wav", "done", now - 10 * DAY, 4)
    settle(ledger, "recent-deleted.wav", "done", now - 10 * DAY, 5)  # too young
    settle(ledger, "vanished.wav", "gone", now - 100 * DAY, 6)  # gone: by age alone
    settle(ledger, "waiting.wav", "queued", now - 100 * DAY, 7)  # never settled
    asked: list[str] = []

    def exists(rel: str) -> bool:
        asked.append(rel)
        return rel in present

    assert ledger.prune_history(now - 90 * DAY, exists) == 3
    left = {j.path for j in ledger.history()}
    assert left == {"kept.wav", "recent.wav", "recent-deleted.wav", "waiting.wav"}
    assert sorted(asked) == ["broken.wav", "deleted.wav", "kept.wav"]  # once per path
    counts = ledger.counts()
    assert (counts["done"], counts["failed"], counts["gone"]) == (3, 0, 0)
    assert ledger.totals("done") == (30.0, 6.0)  # the counters follow deletions
    assert ledger.prune_history(now - 90 * DAY, exists) == 0


def test_prune_keeps_rows_with_work_recorded_and_stops_when_asked(ledger: JobStore) -> None:
    now = 1_000 * DAY
    job_id = settle(ledger, "moved.wav", "done", now - 100 * DAY, 1)
    raw(ledger, "UPDATE jobs SET source_action = 'move' WHERE id = ?", (job_id,))
    ledger.enqueue_many(
        [(f"d/{n}.wav", Fingerprint(n, n, n)) for n in range(2, 1200)],
        model="m", settings_json="{}", now=now - 101 * DAY,
    )  # fmt: skip
    raw(ledger, "UPDATE jobs SET state = 'gone', finished_at = ? WHERE state = 'queued'",
        (now - 100 * DAY,))  # fmt: skip
    assert ledger.prune_history(now - 90 * DAY, lambda rel: False, stop=lambda: True) == 0
    assert ledger.prune_history(now - 90 * DAY, lambda rel: False) == 1198
    assert [j.path for j in ledger.history()] == ["moved.wav"]


def test_vacuum_only_when_worthwhile(tmp_path: Path) -> None:
    with open_ledger(tmp_path) as ledger:
        assert ledger.vacuum_if_worthwhile() is False  # nothing free
        for n in range(3000):
            settle(ledger, f"x/{n:05d}-{'y' * 200}.wav", "gone", 100.0, n + 1)
        before = os.path.getsize(tmp_path / FILENAME)
        assert ledger.prune_history(200.0, lambda rel: False) == 3000
        assert ledger.vacuum_if_worthwhile(min_bytes=1) is True
        ledger._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert os.path.getsize(tmp_path / FILENAME) < before / 2
        assert ledger.vacuum_if_worthwhile(min_bytes=1) is False


def test_requeue_done_starts_afresh_in_place(ledger: JobStore) -> None:
    job_id = settle(ledger, "a.wav", "done", 100.0, 1)
    settle(ledger, "b.wav", "failed", 100.0, 2)
    [done] = ledger.done_jobs(["a.wav"])
    assert done.id == job_id and ledger.done_jobs(["b.wav"]) == []
    assert ledger.requeue_done([(job_id, "base", '{"model": "base"}')], now=200.0) == [job_id]
    job = ledger.get(job_id)
    assert (job.state, job.model, job.attempts, job.enqueued_at) == ("queued", "base", 0, 200)
    assert job.outputs == ("a.wav.txt",)  # listed until the new ones replace them
    assert ledger.requeue_done([(job_id, "base", "{}")]) == []  # not done any more
    assert ledger.counts()["done"] == 0 and ledger.totals("done") == (0.0, 0.0)


def test_counters_match_a_full_count_after_every_kind_of_change(ledger: JobStore) -> None:
    states = ["done", "failed", "gone", "done"] * 5 + ["queued"] * 3  # queued ones last
    for n, state in enumerate(states):
        settle(ledger, f"{state}/{n}.wav", state, 100.0 + n, n + 1)
    ledger.retry()
    ledger.enqueue("done/0.wav", Fingerprint(99, 99, 99), model="m", settings_json="{}")
    ledger.prune_history(1e12, lambda rel: False)
    job = ledger.claim("w", now=1e9)
    assert job is not None
    ledger.requeue(job.id, reason="stop", now=1e9)
    for _ in range(2):  # and again once PostgreSQL folded its deltas (every reclaim round)
        rows = ledger.history()
        truth: dict[str, int] = {}
        for row in rows:
            truth[row.state] = truth.get(row.state, 0) + 1
        done = [r for r in rows if r.state == "done"]
        assert {s: n for s, n in ledger.counts().items() if n} == truth
        assert ledger.totals("done") == (
            sum(r.audio_seconds or 0.0 for r in done),
            sum(r.processing_seconds or 0.0 for r in done),
        )
        ledger.recover(now=1e9)
    assert ledger._read("SELECT count(*) FROM job_counts")[0][0] <= 8  # type: ignore[attr-defined]


@pytest.mark.parametrize("query", ["counts", "current", "recent_failures", "throughput",
                                   "oldest_queued_at", "queue_depth", "running"])  # fmt: skip
def test_status_queries_never_scan_the_whole_table(tmp_path: Path, query: str) -> None:
    """What status and the page ask must stay fast at a million rows: an index or the
    counters answer, never a full scan of jobs (checked on SQLite's own query plans)."""
    with open_ledger(tmp_path) as ledger:
        settle(ledger, "a.wav", "done", 100.0, 1)
        statements: list[str] = []
        ledger._conn.set_trace_callback(statements.append)
        method = getattr(ledger, query)
        method(1000.0) if query in ("current", "throughput") else method()
        ledger._conn.set_trace_callback(None)
        assert statements
        partial = ("jobs_failed", "jobs_finished", "jobs_settled")  # indexes of a few rows
        for sql in (part for s in statements for part in s.split(" UNION ALL ")):
            plan = " ".join(r[3] for r in ledger._conn.execute("EXPLAIN QUERY PLAN " + sql))
            if "SCAN jobs" in plan:
                assert any(f"INDEX {name}" in plan for name in partial), (sql, plan)
            # every done row (most of a big ledger) under the state index: a scan in disguise
            assert not ("'done'" in sql and "jobs_queue (state=?)" in plan), (sql, plan)


def test_set_outputs_only_while_done_and_every_done_file_listed(ledger: JobStore) -> None:
    a = settle(ledger, "a.wav", "done", 100.0, 1)
    b = settle(ledger, "sub/b.wav", "done", 100.0, 2)
    assert [j.id for j in ledger.done_jobs()] == [a, b]
    assert [j.id for j in ledger.done_jobs(["sub"])] == [b] and ledger.done_jobs([]) == []
    ledger.set_outputs(a, ["a.srt", "a.txt"], now=150.0)
    assert ledger.get(a).outputs == ("a.srt", "a.txt")
    ledger.requeue_done([(a, "m", "{}")], now=160.0)
    ledger.set_outputs(a, ["late.txt"], now=170.0)  # requeued meanwhile: left alone
    assert ledger.get(a).outputs == ("a.srt", "a.txt")
    if ledger.shared:  # autovacuum's work on PostgreSQL
        assert ledger.vacuum_if_worthwhile(min_ratio=0.0, min_bytes=0) is False
