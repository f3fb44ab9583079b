"""The folder_idle state machine, driven with explicit times."""

from __future__ import annotations

import pytest

from daemon.notify.idle import MAX_LISTED_FAILURES, FolderIdleTracker, folder_of


def run(tracker: FolderIdleTracker, events: list[tuple[float, int, str, str]]) -> list:
    """Feed (time, job, folder, state) and collect summaries as the ticker would, each second."""
    summaries = []
    last = 0.0
    for at, job, folder, state in events:
        while last < at:  # the ticker runs between events
            summaries += tracker.due(last)
            last += 1.0
        tracker.update(job, folder, state, at, path=f"{folder}/{job}.mp3", error=f"e{job}")
    for second in range(int(last), int(last) + 60):
        summaries += tracker.due(float(second))
    return summaries


def test_one_summary_per_batch_not_per_file() -> None:
    tracker = FolderIdleTracker(settle=10)
    events = [(0, n, "clients/acme", "queued") for n in range(1, 4)]
    events += [
        (1, 1, "clients/acme", "running"),
        (5, 1, "clients/acme", "done"),
        (5, 2, "clients/acme", "running"),
        (9, 2, "clients/acme", "failed"),
        (9, 3, "clients/acme", "running"),
        (14, 3, "clients/acme", "done"),
    ]
    [summary] = run(tracker, events)
    assert (summary.folder, summary.done, summary.failed, summary.files) == (
        "clients/acme",
        2,
        1,
        3,
    )
    assert summary.failures == (("clients/acme/2.mp3", "e2"),)
    assert (summary.started_at, summary.finished_at) == (0, 14)


def test_the_summary_waits_for_the_settle_time() -> None:
    tracker = FolderIdleTracker(settle=10)
    tracker.update(1, "a", "queued", 0)
    tracker.update(1, "a", "done", 3)
    assert tracker.next_deadline() == 13
    assert tracker.due(12.9) == []
    assert [s.done for s in tracker.due(13)] == [1]
    assert tracker.due(100) == [], "a batch is summarised once"


def test_a_file_queued_within_the_settle_time_joins_the_batch() -> None:
    """A slow copy: the next file is queued a few seconds after the previous one finished."""
    tracker = FolderIdleTracker(settle=10)
    summaries = run(
        tracker,
        [
            (0, 1, "in", "queued"),
            (4, 1, "in", "done"),
            (12, 2, "in", "queued"),
            (20, 2, "in", "done"),
        ],
    )
    assert [(s.done, s.started_at, s.finished_at) for s in summaries] == [(2, 0, 20)]


def test_a_file_queued_after_the_folder_went_idle_starts_a_new_batch() -> None:
    tracker = FolderIdleTracker(settle=10)
    summaries = run(
        tracker,
        [
            (0, 1, "in", "queued"),
            (4, 1, "in", "done"),
            (15, 2, "in", "queued"),
            (20, 2, "in", "failed"),
        ],
    )
    assert [(s.done, s.failed) for s in summaries] == [(1, 0), (0, 1)]


def test_a_retried_job_keeps_the_batch_open() -> None:
    """fail with attempts left puts the job back to queued: the folder is not idle."""
    tracker = FolderIdleTracker(settle=10)
    tracker.update(1, "in", "queued", 0)
    tracker.update(1, "in", "running", 1)
    tracker.update(1, "in", "queued", 2)  # failed once, retried after a backoff
    assert tracker.due(100) == []
    tracker.update(1, "in", "running", 200)
    tracker.update(1, "in", "done", 201)
    assert [s.done for s in tracker.due(211)] == [1]


def test_folders_are_independent() -> None:
    tracker = FolderIdleTracker(settle=10)
    tracker.update(1, "a", "queued", 0)
    tracker.update(2, "b", "queued", 0)
    tracker.update(1, "a", "done", 1)
    assert [s.folder for s in tracker.due(11)] == ["a"]
    assert tracker.active() == {"b": 1}
    tracker.update(2, "b", "done", 30)
    assert [s.folder for s in tracker.due(40)] == ["b"]


def test_a_batch_of_only_skipped_files_sends_nothing() -> None:
    tracker = FolderIdleTracker(settle=10)
    tracker.update(1, "a", "queued", 0)
    tracker.update(1, "a", "gone", 1)
    assert tracker.due(100) == []
    assert tracker.active() == {}


def test_skipped_files_are_counted_with_the_others() -> None:
    tracker = FolderIdleTracker(settle=0)
    for job in (1, 2):
        tracker.update(job, "a", "queued", 0)
    tracker.update(1, "a", "superseded", 1)
    tracker.update(2, "a", "done", 2)
    [summary] = tracker.due(2)
    assert (summary.done, summary.skipped, summary.files) == (1, 1, 2)


def test_an_outcome_for_a_job_never_seen_is_counted() -> None:
    """A job queued before the tracker existed (e.g. before a restart) still counts."""
    tracker = FolderIdleTracker(settle=10)
    tracker.update(7, "a", "done", 5)
    [summary] = tracker.due(15)
    assert summary.done == 1


def test_failures_listed_are_capped() -> None:
    tracker = FolderIdleTracker(settle=0)
    count = MAX_LISTED_FAILURES + 5
    for job in range(count):
        tracker.update(job, "a", "queued", 0)
    for job in range(count):
        tracker.update(job, "a", "failed", 1, path=f"a/{job}.mp3", error="bad")
    [summary] = tracker.due(1)
    assert summary.failed == count
    assert len(summary.failures) == MAX_LISTED_FAILURES
    assert summary.failures_omitted == 5


def test_flush_closes_settling_batches_only() -> None:
    tracker = FolderIdleTracker(settle=10)
    tracker.update(1, "a", "queued", 0)
    tracker.update(1, "a", "done", 1)
    tracker.update(2, "b", "queued", 0)
    assert [s.folder for s in tracker.flush()] == ["a"]
    assert tracker.active() == {"b": 1}


@pytest.mark.parametrize(
    ("path", "depth", "folder"),
    [
        ("clients/acme/a.mp3", None, "clients/acme"),
        ("a.mp3", None, "."),
        ("clients/acme/day1/a.mp3", 2, "clients/acme"),
        ("clients/a.mp3", 2, "clients"),
        ("clients/acme/a.mp3", 1, "clients"),
        ("x/a.mp3", 0, "."),
    ],
)
def test_folder_of(path: str, depth: int | None, folder: str) -> None:
    assert folder_of(path, depth) == folder


def test_a_job_the_ledger_no_longer_has_active_is_dropped_after_two_snapshots() -> None:
    """Ledger.enqueue supersedes an older queued version without reporting it."""
    tracker = FolderIdleTracker(settle=10)
    tracker.update(1, "a", "queued", 0)  # superseded later, silently
    tracker.update(2, "a", "queued", 5)  # the new version
    tracker.update(2, "a", "done", 8)
    assert tracker.due(100) == [], "job 1 still looks queued"
    assert tracker.reconcile({3}, taken_at=30, now=30) == 0, "one snapshot is not enough"
    assert tracker.reconcile({3}, taken_at=60, now=60) == 1
    [summary] = tracker.due(70)
    assert (summary.done, summary.skipped, summary.finished_at) == (1, 1, 60)


def test_reconcile_spares_jobs_queued_after_the_snapshot_and_jobs_that_came_back() -> None:
    tracker = FolderIdleTracker(settle=10)
    tracker.update(1, "a", "queued", 0)
    assert tracker.reconcile(set(), taken_at=10, now=10) == 0  # suspect
    assert tracker.reconcile({1}, taken_at=20, now=20) == 0  # seen again: no longer suspect
    assert tracker.reconcile(set(), taken_at=30, now=30) == 0  # suspect anew
    tracker.update(2, "a", "queued", 35)  # queued after the next snapshot was read
    assert tracker.reconcile({1}, taken_at=34, now=36) == 0
    assert tracker.active() == {"a": 2}


def test_an_outcome_reported_just_after_a_snapshot_is_counted_once() -> None:
    tracker = FolderIdleTracker(settle=0)
    tracker.update(1, "a", "queued", 0)
    tracker.update(1, "a", "running", 1)
    assert tracker.reconcile(set(), taken_at=10, now=10) == 0  # done committed, not reported
    tracker.update(1, "a", "done", 10.001)
    assert tracker.reconcile(set(), taken_at=40, now=40) == 0
    [summary] = tracker.due(40)
    assert (summary.done, summary.skipped) == (1, 0)
