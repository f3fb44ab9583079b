"""Checks before decoding: too long, and more memory than this machine has left."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.config import JobsSettings
from daemon.jobs import guards
from tests.synth import make_audio


def test_within_the_limits_the_declared_duration_is_returned(tmp_path: Path) -> None:
    path = make_audio(tmp_path / "a.flac", seconds=2.0)
    assert guards.check(path, JobsSettings()) == pytest.approx(2.0, abs=0.05)


def test_longer_than_max_duration(tmp_path: Path) -> None:
    path = make_audio(tmp_path / "a.flac", seconds=2.0)
    with pytest.raises(guards.TooLongError, match=r"longer than jobs\.max_duration") as info:
        guards.check(path, JobsSettings(max_duration=1.5))
    assert not info.value.transient


def test_not_enough_memory_is_transient(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 1000 kB\nMemAvailable:      100 kB\n")  # 100 kB left
    monkeypatch.setattr(guards, "MEMINFO", meminfo)
    path = make_audio(tmp_path / "a.flac", seconds=2.0)  # needs about 230 kB
    with pytest.raises(guards.NotEnoughMemoryError, match="needs about") as info:
        guards.check(path, JobsSettings())
    assert info.value.transient
    assert guards.check(path, JobsSettings(memory_check=False)) is not None


def test_the_decoded_length_is_checked_when_no_duration_is_declared(tmp_path: Path) -> None:
    path = tmp_path / "x.raw"
    path.write_bytes(b"\0" * 100)  # not media: nothing declared, decode will tell
    assert guards.check(path, JobsSettings(max_duration=1.0)) is None
    with pytest.raises(guards.TooLongError):
        guards.check(path, JobsSettings(max_duration=1.0), seconds=5.0)
