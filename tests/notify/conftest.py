"""Shared fixtures: local HTTP receivers, the delivery store of a real ledger, a settable clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from daemon.config.operate import NotifyTarget, validate_targets
from daemon.notify import Notifier
from daemon.queue import Deliveries, open_ledger
from tests.notify.server import Behaviour, LocalServer


def load_targets(raw: Any) -> tuple[NotifyTarget, ...]:
    """Validated targets from a ``notify:`` list (the test fails on any problem)."""
    targets, problems = validate_targets(raw)
    assert not problems, problems
    return targets


@pytest.fixture
def running() -> Iterator[list[Notifier]]:
    """Notifiers a test started, stopped at its end even when it fails (after the servers
    have closed and released any request they held)."""
    started: list[Notifier] = []
    yield started
    for notifier in started:
        notifier.stop(timeout=5)


@pytest.fixture
def server_factory(running: list[Notifier]) -> Iterator[Callable[..., LocalServer]]:
    """Start local receivers: ``server_factory(script=[500, ("sleep", 1)], default=200)``."""
    started: list[LocalServer] = []

    def make(script: list[Behaviour] | None = None, default: Behaviour = 200) -> LocalServer:
        server = LocalServer(script, default)
        started.append(server)
        return server

    yield make
    for server in started:
        server.close()


@pytest.fixture
def server(server_factory: Callable[..., LocalServer]) -> LocalServer:
    """One receiver that accepts everything (set ``.receiver.script`` to change that)."""
    return server_factory()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Deliveries]:
    """The delivery store of a real ledger (schema 3) in a temporary state_dir."""
    ledger = open_ledger(tmp_path / "var")
    yield ledger.deliveries
    ledger.close()


@dataclass
class FakeClock:
    """A clock the test moves by hand."""

    now: float = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@dataclass(frozen=True)
class FakeJob:
    """The fields of a ledger Job that notifications read."""

    id: int
    path: str
    state: str
    outputs: tuple[str, ...] = ()
    language: str | None = None
    audio_seconds: float | None = None
    processing_seconds: float | None = None
    last_error: str | None = None
