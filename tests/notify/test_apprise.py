"""Apprise targets, through apprise's json:// plugin to a real local HTTP server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

from apprise.decorators import notify as apprise_notify

from daemon.notify.documents import encode
from daemon.notify.targets import AppriseSender, SendResult
from daemon.queue import Delivery
from tests.notify.conftest import load_targets
from tests.notify.server import LocalServer

NOW = 1_700_000_000.0
SUMMARY = {
    "event": "folder_idle",
    "folder": "clients/acme",
    "files": 3,
    "done": 2,
    "failed": 1,
    "skipped": 0,
    "failures": [{"file": "clients/acme/c.mp3", "error": "corrupt"}],
    "failures_omitted": 0,
}


def apprise_target(server: LocalServer, timeout: float = 5) -> AppriseSender:
    url = f"json://127.0.0.1:{server.port}/notify"
    [config] = load_targets([{"apprise": url, "timeout": timeout}])
    return AppriseSender(config)  # type: ignore[arg-type]


def delivery(doc: dict = SUMMARY, id: str = "d1") -> Delivery:
    return Delivery.new("chat", doc["event"], encode(doc), now=NOW, id=id)


def test_a_summary_arrives_as_title_and_message(server: LocalServer) -> None:
    result = apprise_target(server).send(delivery(), NOW)
    assert result.outcome == "sent"
    [got] = server.receiver.requests
    posted = json.loads(got.body)
    assert got.path == "/notify"
    assert posted["title"] == "clients/acme: 3 files finished, 1 failed"
    assert posted["message"] == (
        "Your 3 files in clients/acme are finished: 2 done, 1 failed.\n"
        "- clients/acme/c.mp3: corrupt"
    )
    assert posted["type"] == "warning"


def test_a_failed_notify_is_retried_with_apprise_s_reason(
    server_factory: Callable[..., LocalServer],
) -> None:
    server = server_factory(default=500)
    result = apprise_target(server).send(delivery(), NOW)
    assert result.outcome == "retry"
    assert result.error.startswith("Apprise: ") and "500" in result.error


def test_a_slow_service_is_cut_off_by_apprise_s_call_timeout(
    server_factory: Callable[..., LocalServer],
) -> None:
    server = server_factory(script=[("sleep", 30)])
    started = time.monotonic()
    result = apprise_target(server, timeout=0.5).send(delivery(), NOW)
    assert result.outcome == "retry" and time.monotonic() - started < 3
    assert "did not finish" in result.error


def test_a_hanging_plugin_cannot_wedge_the_sender() -> None:
    """Without Apprise's own call timeout (Apprise < 2), the guard thread still returns."""
    release = threading.Event()

    @apprise_notify(on="hangtest")
    def hang(body: str, title: str, notify_type: str, *args: object, **kwargs: object) -> bool:
        return release.wait(30)

    [config] = load_targets([{"apprise": "hangtest://anything", "timeout": 0.3}])
    target = AppriseSender(config)  # type: ignore[arg-type]
    target.use_apprise_timeout, target.grace = False, 0.2
    started = time.monotonic()
    first = target.send(delivery(id="d1"), NOW)
    assert first == SendResult("retry", "Apprise did not return within 0.3 s")
    assert time.monotonic() - started < 2
    # While that call still hangs, no second thread is started.
    second = target.send(delivery(id="d2"), NOW)
    assert second == SendResult("retry", "the previous Apprise call has not returned yet")
    release.set()
    deadline = time.monotonic() + 10
    while (third := target.send(delivery(id="d3"), NOW)).outcome != "sent":
        assert time.monotonic() < deadline, third.error
        time.sleep(0.02)
