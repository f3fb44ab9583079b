"""From intake to the queue: batching, known versions, visible failures (real SQLite)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from daemon.config import Resolver, load_config
from daemon.intake import Candidate
from daemon.queue import Ledger
from daemon.service.bridge import IntakeBridge
from daemon.version import Fingerprint, VersionPolicy


class CountingLedger(Ledger):
    """A real ledger that counts its write transactions."""

    transactions = 0

    def _write(self, op: str):  # type: ignore[override]
        CountingLedger.transactions += 1
        return super()._write(op)


@pytest.fixture
def setup(tmp_path: Path):
    cfg_path = tmp_path / "whisperd.yaml"
    cfg_path.write_text(
        f"inbox: {tmp_path / 'in'}\noutbox: {tmp_path / 'out'}\nstate_dir: {tmp_path / 'var'}\n"
        "defaults: {model: tiny}\n"
        "folders:\n  'a*': {model: tiny.en}\n  '*b': {language: es}\n"
    )
    rules = Resolver(load_config(cfg_path))
    ledger = CountingLedger(tmp_path / "var" / "ledger.sqlite3")
    queued: list[int] = []
    bridge = IntakeBridge(
        ledger, lambda: rules, VersionPolicy(), on_queued=lambda: queued.append(1)
    )
    yield bridge, ledger, rules, queued
    ledger.close()


def candidate(rel: str, size: int = 10) -> Candidate:
    return Candidate(rel, Path("/nowhere") / rel, Fingerprint(size, 1, 1))


def test_a_burst_is_one_transaction(setup) -> None:
    bridge, ledger, _, queued = setup
    CountingLedger.transactions = 0
    for i in range(2000):
        bridge.on_ready(candidate(f"burst/{i:04}.wav"))
    started = time.monotonic()
    jobs = bridge.flush()
    elapsed = time.monotonic() - started
    assert len(jobs) == 2000 and CountingLedger.transactions == 1
    assert queued == [1]  # the workers are woken once
    assert ledger.counts()["queued"] == 2000
    print(f"\n2000 files queued in one transaction: {elapsed:.2f} s")


def test_a_folder_without_valid_settings_fails_visibly(setup, tmp_path: Path) -> None:
    bridge, _, _, _ = setup
    bridge.on_ready(candidate("ab/x.wav"))
    bridge.on_ready(candidate("c/y.wav"))
    jobs = {j.path: j for j in bridge.flush()}
    assert jobs["c/y.wav"].state == "queued"
    assert jobs["ab/x.wav"].state == "failed"
    assert "cannot transcribe language 'es'" in jobs["ab/x.wav"].last_error
    error = (tmp_path / "out" / "ab" / "x.error.txt").read_text()
    assert "no valid settings for its folder" in error


def test_known_versions_come_from_a_snapshot_during_a_scan_only(setup) -> None:
    bridge, ledger, _, _ = setup
    bridge.on_ready(candidate("a.wav"))
    bridge.flush()
    fp = Fingerprint(10, 1, 1)
    bridge.before_scan()
    assert bridge.is_known("a.wav", fp)
    ledger.mark_gone("a.wav")
    assert bridge.is_known("a.wav", fp)  # the snapshot, for the scan's duration
    bridge.flush()  # the step ends
    assert not bridge.is_known("a.wav", fp)  # the ledger itself: gone, may come back


def test_a_scan_that_misses_a_waiting_file_marks_it_gone(setup) -> None:
    bridge, ledger, _, _ = setup
    for rel in ("keep.wav", "lost.wav"):
        bridge.on_ready(candidate(rel))
    bridge.flush()
    bridge.after_scan({"keep.wav"})
    assert {j.path: j.state for j in ledger.latest_per_path()} == {
        "keep.wav": "queued", "lost.wav": "gone"}  # fmt: skip


def test_incomplete_versions_are_recorded_with_their_reason(setup) -> None:
    bridge, _, _, queued = setup
    bridge.on_incomplete(candidate("cut.mp4"), "MP4: no moov")
    jobs = bridge.flush()
    assert [(j.state, j.last_error) for j in jobs] == [("incomplete", "MP4: no moov")]
    assert queued == []  # nothing for the workers


def test_names_that_are_not_utf8_pass_through(setup) -> None:
    bridge, _, _, _ = setup
    name = os.fsdecode(b"caf\xe9.wav")
    bridge.on_ready(candidate(name))
    assert [j.path for j in bridge.flush()] == [name]
