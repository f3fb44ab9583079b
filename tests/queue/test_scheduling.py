"""Which job a worker claims next: oldest first, backoff, model affinity."""

from __future__ import annotations

import pytest

from daemon.queue import Ledger, RetryPolicy
from tests.queue.support import add

# --- scheduling --------------------------------------------------------------------------


def test_claim_oldest_first_and_respects_not_before(ledger: Ledger) -> None:
    c = add(ledger, "c.wav", now=3)
    a = add(ledger, "a.wav", now=1)
    b = add(ledger, "b.wav", now=2)
    ledger.fail(
        ledger.claim("w", now=4).id,
        error="x",
        transient=False,
        policy=RetryPolicy(max_attempts=3, backoff=100, backoff_max=100),
        now=5,
    )
    assert ledger.get(a.id).not_before == 105
    assert ledger.queue_depth(now=6) == 2
    assert [ledger.claim("w", now=6).id, ledger.claim("w", now=6).id] == [b.id, c.id]
    assert ledger.claim("w", now=104.9) is None
    job = ledger.claim("w", now=105)
    assert (job.id, job.state, job.worker, job.started_at, job.progress) == (
        a.id,
        "running",
        "w",
        105,
        0,
    )


@pytest.mark.parametrize(("gap", "expected"), [(60.0, "loaded.wav"), (60.5, "oldest.wav")])
def test_claim_affinity_window(ledger: Ledger, gap: float, expected: str) -> None:
    add(ledger, "oldest.wav", model="large", now=1000.0)
    add(ledger, "other.wav", model="medium", now=1000.0 + gap / 2)
    add(ledger, "loaded.wav", model="small", now=1000.0 + gap)
    job = ledger.claim("w", loaded_models={"small"}, now=2000, affinity_seconds=60)
    assert job.path == expected


def test_claim_affinity_prefers_oldest_loaded_and_ignores_empty(ledger: Ledger) -> None:
    add(ledger, "a.wav", model="large", now=1)
    add(ledger, "b.wav", model="small", now=2)
    add(ledger, "c.wav", model="small", now=3)
    assert ledger.claim("w", loaded_models=(), now=10, affinity_seconds=60).path == "a.wav"
    add(ledger, "d.wav", model="large", now=4)
    assert ledger.claim("w", loaded_models=["small"], now=10, affinity_seconds=60).path == "b.wav"
    assert ledger.claim("w", loaded_models=["large"], now=10, affinity_seconds=60).path == "d.wav"


def test_newest_order_takes_the_file_modified_last(ledger: Ledger) -> None:
    """jobs.order newest: in a library found by one scan, new episodes before old films."""
    from daemon.version import Fingerprint

    old = add(ledger, "old.mkv", Fingerprint(1, 1_000, 1), now=5)  # queued last, oldest file
    new = add(ledger, "new.mkv", Fingerprint(1, 9_000, 2), now=1)
    mid = add(ledger, "mid.mkv", Fingerprint(1, 5_000, 3), now=1)
    claimed = [ledger.claim("w", now=10, order="newest").id for _ in range(3)]
    assert claimed == [new.id, mid.id, old.id]


def test_oldest_order_stays_first_queued(ledger: Ledger) -> None:
    from daemon.version import Fingerprint

    a = add(ledger, "a.mkv", Fingerprint(1, 9_000, 1), now=1)
    b = add(ledger, "b.mkv", Fingerprint(1, 1_000, 2), now=2)
    assert [ledger.claim("w", now=10, order="oldest").id for _ in range(2)] == [a.id, b.id]


def test_a_job_found_subtitled_at_its_start_is_skipped_and_can_be_looked_at_again(
    ledger: Ledger,
) -> None:
    job = add(ledger, "Film.mkv", now=1)
    ledger.abandon(ledger.claim("w", now=2).id, state="skipped", reason="has Film.en.srt", now=3)
    skipped = ledger.get(job.id)
    assert (skipped.state, skipped.last_error, skipped.finished_at) == (
        "skipped", "has Film.en.srt", 3)  # fmt: skip
    assert ledger.retry(now=4) == 0  # --failed leaves skipped files alone
    assert ledger.retry(["Film.mkv"], now=5) == 1  # naming the file looks at it again
    assert ledger.get(job.id).state == "queued"
