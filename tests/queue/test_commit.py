"""The ledger's newer transitions: entry states, the two-phase commit, source actions, meta."""

from __future__ import annotations

import json

import pytest

from daemon.errors import LedgerError
from daemon.queue import Ledger, NewVersion, RetryPolicy
from daemon.version import Fingerprint
from tests.queue.support import FP1, FP2, add

ONCE = RetryPolicy(max_attempts=1, backoff=1, backoff_max=1)


def test_an_incomplete_version_waits_and_is_superseded_by_the_next(ledger: Ledger) -> None:
    cut = ledger.enqueue("a.mp4", FP1, model="m", settings_json="{}", now=1, state="incomplete",
                         reason="MP4: no moov")  # fmt: skip
    assert (cut.state, cut.last_error) == ("incomplete", "MP4: no moov")
    assert ledger.is_known("a.mp4", FP1)  # not taken again until the file changes
    assert ledger.claim("w", now=2) is None  # never claimed
    whole = add(ledger, "a.mp4", FP2, now=3)
    assert ledger.get(cut.id).state == "superseded"
    assert ledger.claim("w", now=4).id == whole.id


def test_failed_and_skipped_entries_are_final_with_their_reason(ledger: Ledger) -> None:
    jobs = ledger.enqueue_batch(
        [NewVersion("bad/x.wav", FP1, "?", "{}", "failed", "no valid settings"),
         NewVersion("lib/y.mkv", FP1, "m", "{}", "skipped", "already has subtitles"),
         NewVersion("z.wav", FP1, "m", "{}")],
        now=5,
    )  # fmt: skip
    assert [(j.path, j.state, j.last_error) for j in jobs] == [
        ("bad/x.wav", "failed", "no valid settings"),
        ("lib/y.mkv", "skipped", "already has subtitles"),
        ("z.wav", "queued", None),
    ]
    assert jobs[0].finished_at == jobs[1].finished_at == 5 and jobs[2].finished_at is None
    assert [ledger.claim("w", now=6).path, ledger.claim("w", now=6)] == ["z.wav", None]
    with pytest.raises(ValueError, match="cannot start as 'running'"):
        ledger.enqueue("q.wav", FP2, model="m", settings_json="{}", now=7, state="running")


def test_stage_then_complete_records_outputs_and_the_pending_action(ledger: Ledger) -> None:
    add(ledger, "a.wav", now=1)
    job = ledger.claim("w", now=2)
    record = {"audio_seconds": 3.0, "processing_seconds": 1.0, "language": "en",
              "files": [{"path": "/out/a.srt", "temp": "/out/.a.srt.1.whisperd-tmp",
                         "sha256": "ab"}]}  # fmt: skip
    ledger.stage(job.id, record, now=3)
    assert [j.id for j in ledger.staged_jobs()] == [job.id]
    assert json.loads(ledger.get(job.id).staged) == record
    done = ledger.complete(job.id, outputs=["a.srt"], audio_seconds=3.0, processing_seconds=1,
                           language="en", source_action="delete", now=4)  # fmt: skip
    assert (done.state, done.staged, done.source_action) == ("done", None, "delete")
    assert ledger.staged_jobs() == []
    assert [j.id for j in ledger.pending_source_actions()] == [job.id]
    ledger.source_done(job.id, now=5)
    assert ledger.pending_source_actions() == []


def test_a_failure_or_a_requeue_forgets_what_was_staged(ledger: Ledger) -> None:
    add(ledger, "a.wav", now=1)
    job = ledger.claim("w", now=2)
    ledger.stage(job.id, {"files": []}, now=3)
    ledger.requeue(job.id, reason="stopping", now=4)
    assert ledger.get(job.id).staged is None
    job = ledger.claim("w", now=5)
    ledger.stage(job.id, {"files": []}, now=6)
    assert ledger.fail(job.id, error="x", transient=False, policy=ONCE, now=7) == "failed"
    assert ledger.get(job.id).staged is None
    with pytest.raises(LedgerError, match="not running"):
        ledger.stage(job.id, {}, now=8)


def test_stale_incomplete_files_fail(ledger: Ledger) -> None:
    old = ledger.enqueue("old.mp4", FP1, model="m", settings_json="{}", now=10,
                         state="incomplete", reason="MP4: no moov")  # fmt: skip
    new = ledger.enqueue("new.mp4", FP1, model="m", settings_json="{}", now=100,
                         state="incomplete", reason="MP4: no moov")  # fmt: skip
    failed = ledger.fail_incomplete(older_than=50, now=200)
    assert [j.id for j in failed] == [old.id]
    assert failed[0].last_error == "still incomplete after waiting: MP4: no moov"
    assert ledger.get(new.id).state == "incomplete"


def test_gone_returns_the_failed_versions_whose_error_file_is_stale(ledger: Ledger) -> None:
    add(ledger, "a.wav", now=1)
    ledger.fail(ledger.claim("w", now=2).id, error="x", transient=False, policy=ONCE, now=3)
    gone = ledger.mark_gone("a.wav", now=4)
    assert [(j.path, j.state) for j in gone] == [("a.wav", "failed")]  # as it was
    assert ledger.history("a.wav")[0].state == "gone"


def test_previous_done_and_active_in_folder(ledger: Ledger) -> None:
    first = add(ledger, "f/a.wav", FP1, now=1)
    ledger.claim("w", now=2)
    ledger.complete(first.id, outputs=["f/a.srt"], audio_seconds=1, processing_seconds=1,
                    language="en", now=3)  # fmt: skip
    second = add(ledger, "f/a.wav", FP2, now=4)
    add(ledger, "f/sub/b.wav", now=5)
    assert ledger.previous_done("f/a.wav", second.id).id == first.id
    assert ledger.previous_done("f/a.wav", first.id) is None
    assert ledger.active_in_folder("f") == 1  # f/a.wav v2; f/sub is another folder
    assert ledger.active_in_folder("f/sub") == 1
    assert ledger.active_in_folder("") == 0


def test_meta_values(ledger: Ledger) -> None:
    assert ledger.get_meta("k") is None
    ledger.set_meta("k", "v1", now=1)
    ledger.set_meta("k", "v2", now=2)
    assert ledger.get_meta("k") == "v2"


def test_recover_counts_crashes_separately_from_attempts(ledger: Ledger) -> None:
    job = add(ledger, "a.wav", Fingerprint(1, 1, 1), now=1)
    ledger.claim("w", now=2)
    assert ledger.fail(job.id, error="x", transient=True, policy=RetryPolicy(), now=3) == "queued"
    ledger.claim("w", now=10_000)
    back = ledger.recover(now=10_001, crash_limit=2).requeued[0]
    assert (back.attempts, back.crashes) == (2, 1)
