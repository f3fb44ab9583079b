"""Fixtures shared by the tests of this folder."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from daemon.config import WatchSettings
from daemon.intake import Watcher
from daemon.version import Fingerprint
from tests.intake.support import FAST, Recorder


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    return path


@pytest.fixture
def running() -> Iterator[Callable[..., tuple[Watcher, Recorder]]]:
    """Start a watcher on the real clock in its own thread, as the service does."""
    started: list[tuple[Watcher, threading.Event, threading.Thread]] = []

    def start(
        inbox: Path,
        is_known: Callable[[str, Fingerprint], bool] | None = None,
        **options: object,
    ) -> tuple[Watcher, Recorder]:
        rec = Recorder()
        watcher = Watcher(
            inbox,
            WatchSettings(**{**FAST, **options}),  # type: ignore[arg-type]
            on_ready=rec.on_ready,
            on_gone=rec.on_gone,
            is_known=is_known or (lambda r, f: False),
        )
        watcher.start()
        stop = threading.Event()
        thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
        thread.start()
        started.append((watcher, stop, thread))
        return watcher, rec

    yield start
    for watcher, stop, thread in started:
        stop.set()
        thread.join(timeout=5)
        assert not thread.is_alive(), "run() did not notice the stop request"
        watcher.stop()
