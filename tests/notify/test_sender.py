"""Retries, backoff and giving up, driven step by step with a fake clock and a real server."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from structlog.testing import capture_logs

from daemon.notify.sender import Backoff, Lane
from daemon.notify.targets import WebhookSender
from daemon.queue import Deliveries, Delivery
from tests.notify.conftest import FakeClock, load_targets
from tests.notify.server import LocalServer

SHORT = Backoff(10, 600)


def lane_for(
    server: LocalServer,
    store: Deliveries,
    clock: FakeClock,
    *,
    rnd: float = 0.0,
    give_up_after: float = 3600,
    backoff: Backoff = SHORT,
) -> Lane:
    [config] = load_targets(
        [{"webhook": server.url, "name": "hook", "give_up_after": give_up_after}]
    )
    return Lane(WebhookSender(config), store, backoff, clock=clock, rng=lambda: rnd)  # type: ignore[arg-type]


def attempt_times(server: LocalServer, start: float) -> list[float]:
    """When each request was made, from its timestamp header, relative to ``start``."""
    return [int(r.headers["X-Whisperd-Timestamp"]) - start for r in server.receiver.requests]


def run_until(lane: Lane, clock: FakeClock, end: float, tick: float = 1.0) -> None:
    while clock.now < end:
        lane.step(clock.now)
        clock.advance(tick)


def test_backoff_doubles_then_gives_up_at_the_deadline_with_one_line(
    server_factory: Callable[..., LocalServer], store: Deliveries, clock: FakeClock
) -> None:
    server = server_factory(default=500)
    start = clock.now
    lane = lane_for(server, store, clock, give_up_after=100)
    store.enqueue([Delivery.new("hook", "done", b"{}", now=start, id="d1")])
    with capture_logs() as logs:
        run_until(lane, clock, start + 300)
    # 10, 20, 40 s apart, then the last try at the deadline (start + 100), then nothing.
    assert attempt_times(server, start) == [0, 10, 30, 70, 100]
    assert store.get("d1").state == "given_up"  # type: ignore[union-attr]
    given_up = [e for e in logs if e["event"] == "notification_given_up"]
    assert len(given_up) == 1
    assert given_up[0]["log_level"] == "warning"
    assert given_up[0]["delivery"] == "d1" and given_up[0]["attempts"] == 5
    assert given_up[0]["error"] == "HTTP 500"


def test_jitter_only_shortens_a_delay_by_its_fraction() -> None:
    backoff = Backoff(initial=10, maximum=100, jitter=0.25)
    assert [backoff.delay(n, 0.0) for n in (1, 2, 3, 4, 5, 50)] == [10, 20, 40, 80, 100, 100]
    assert backoff.delay(2, 0.999999) == pytest.approx(15.0, abs=1e-4)
    with pytest.raises(ValueError):
        Backoff(initial=0)


def test_a_dead_endpoint_is_probed_once_per_backoff_not_once_per_delivery(
    server_factory: Callable[..., LocalServer], store: Deliveries, clock: FakeClock
) -> None:
    server = server_factory(default=503)
    start = clock.now
    lane = lane_for(server, store, clock)
    store.enqueue([Delivery.new("hook", "done", b"{}", now=start, id=f"d{n}") for n in range(50)])
    run_until(lane, clock, start + 75)
    # 0, 10, 30, 70: the lane's backoff grows though each probe uses another delivery.
    assert attempt_times(server, start) == [0, 10, 30, 70]
    server.receiver.default = 200
    run_until(lane, clock, start + 300)
    assert store.pending() == 0
    ids = [r.headers["X-Whisperd-Delivery"] for r in server.receiver.accepted()]
    assert sorted(ids) == sorted(f"d{n}" for n in range(50)) and len(ids) == 50


def test_retry_after_is_honoured(
    server_factory: Callable[..., LocalServer], store: Deliveries, clock: FakeClock
) -> None:
    server = server_factory(script=[(503, {"Retry-After": "120"})])
    start = clock.now
    lane = lane_for(server, store, clock)
    store.enqueue([Delivery.new("hook", "done", b"{}", now=start, id="d1")])
    lane.step(clock.now)
    assert store.get("d1").next_at == start + 120  # type: ignore[union-attr]
    run_until(lane, clock, start + 200)
    assert attempt_times(server, start) == [0, 120]
    assert store.get("d1").state == "sent"  # type: ignore[union-attr]


def test_a_rejection_gives_up_at_once_and_does_not_hold_back_the_rest(
    server_factory: Callable[..., LocalServer], store: Deliveries, clock: FakeClock
) -> None:
    server = server_factory(script=[422])
    lane = lane_for(server, store, clock)
    store.enqueue([Delivery.new("hook", "done", b"{}", now=clock.now, id=i) for i in ("a", "b")])
    with capture_logs() as logs:
        assert lane.step(clock.now) and lane.step(clock.now)
    assert store.get("a").state == "given_up" and store.get("b").state == "sent"  # type: ignore[union-attr]
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["notification_given_up"]
    assert len(server.receiver.requests) == 2


def test_an_outage_logs_one_warning_and_one_recovery(
    server_factory: Callable[..., LocalServer], store: Deliveries, clock: FakeClock
) -> None:
    server = server_factory(script=[500, 500, 500])
    lane = lane_for(server, store, clock)
    store.enqueue([Delivery.new("hook", "done", b"{}", now=clock.now, id="d1")])
    with capture_logs() as logs:
        run_until(lane, clock, clock.now + 200)
    assert [e["event"] for e in logs if e["log_level"] in ("warning", "info")] == [
        "notification_target_failing",
        "notification_target_recovered",
    ]
    assert store.get("d1").attempts == 4  # type: ignore[union-attr]


def test_a_delivery_older_than_the_limit_after_downtime_gets_one_last_try(
    server_factory: Callable[..., LocalServer], store: Deliveries, clock: FakeClock
) -> None:
    """The service was down for longer than give_up_after: try once, then give up."""
    server = server_factory(default=500)
    store.enqueue([Delivery.new("hook", "done", b"{}", now=clock.now - 7200, id="old")])
    lane = lane_for(server, store, clock, give_up_after=3600)
    lane.step(clock.now)
    assert len(server.receiver.requests) == 1
    assert store.get("old").state == "given_up"  # type: ignore[union-attr]
