"""Helpers shared by the tests of this folder (split from test_watcher.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from daemon.config import WatchSettings
from daemon.intake import Candidate, Watcher
from daemon.version import Fingerprint

FAST = {
    "poll_interval": 0.05,
    "stable_seconds": 0.2,
    "rescan_interval": 60.0,
    "include": ("*",),  # every name: these tests are about watching, not about media names
}


def wait_for(predicate: Callable[[], object], timeout: float = 5.0, what: str = "") -> None:
    """Poll ``predicate`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.01)


class Recorder:
    """Collects callbacks (from the watcher's thread) with the real time they happened."""

    def __init__(self) -> None:
        self.ready: list[tuple[Candidate, float]] = []
        self.gone: list[str] = []
        self.known_calls: list[tuple[str, Fingerprint]] = []

    def on_ready(self, candidate: Candidate) -> None:
        self.ready.append((candidate, time.monotonic()))

    def on_gone(self, rel: str) -> None:
        self.gone.append(rel)

    def names(self) -> list[str]:
        return [c.rel_path for c, _ in self.ready]

    def count(self, rel: str) -> int:
        return self.names().count(rel)

    def candidate(self, rel: str) -> Candidate:
        return next(c for c, _ in self.ready if c.rel_path == rel)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def write(path: Path, data: bytes = b"some audio bytes") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def stepped(inbox: Path, clock: FakeClock, rec: Recorder, **options: object) -> Watcher:
    """A started watcher driven by hand with the fake clock (no run thread).

    It polls unless told otherwise: with inotify, a writer's close event would make files
    ready at once, and these tests are about the clock they drive.
    """
    watcher = Watcher(
        inbox,
        WatchSettings(**{**FAST, "poll": "always", **options}),  # type: ignore[arg-type]
        on_ready=rec.on_ready,
        on_gone=rec.on_gone,
        clock=clock,
    )
    watcher.start()
    return watcher


def stays_false(predicate: Callable[[], object], seconds: float) -> None:
    """Fail if ``predicate`` becomes true within ``seconds`` (a negative check)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert not predicate(), f"became true within {seconds}s: {predicate}"
        time.sleep(0.01)
