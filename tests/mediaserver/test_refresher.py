"""The Refresher against a real HTTP server on 127.0.0.1: batching per folder and across
folders, rate limit, retries with backoff, refused tokens, never blocking, clean close.

Timing rules are tested by driving :meth:`Refresher.step` with an explicit clock
(``start=False``); the threaded behaviour with short windows and waits with timeouts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import structlog

from daemon.config import MediaServerSettings
from daemon.mediaserver import Refresher, make_client
from tests.e2e.service_harness import wait_for
from tests.mediaserver.httpserver import RecordingServer

UPDATED = ("POST", "/Library/Media/Updated")


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    srv = RecordingServer(hang_seconds=0.6).start()
    yield srv
    srv.stop()


def jellyfin(server: RecordingServer, token: str = "good", timeout: float = 0.3):
    settings = MediaServerSettings(kind="jellyfin", url=server.url, token=token, timeout=timeout)
    return make_client(settings, {})


def paths(call: object) -> list[str]:
    return [u["Path"] for u in call.json()["Updates"]]  # type: ignore[attr-defined]


def test_a_burst_in_one_folder_is_one_refresh(server: RecordingServer) -> None:
    refresher = Refresher(jellyfin(server), window=0.3, min_interval=0.0)
    try:
        for i in range(5):
            refresher.submit(f"/lib/Show/Season 01/Show - S01E0{i}.mkv")
        wait_for(lambda: refresher.counters["refreshed"] == 1)
        time.sleep(0.4)  # a second request would come within one more window
    finally:
        refresher.close()
    (call,) = server.calls_to(*UPDATED)
    assert paths(call) == [f"/lib/Show/Season 01/Show - S01E0{i}.mkv" for i in range(5)]
    assert refresher.counters["submitted"] == 5 and refresher.counters["batches"] == 1


def test_folders_due_together_share_one_request(server: RecordingServer) -> None:
    refresher = Refresher(jellyfin(server), window=10, min_interval=0, start=False)
    refresher.submit("/lib/A/a.mkv")
    refresher.submit("/lib/B/b.mkv")
    assert refresher.step(now=0.0) == pytest.approx(10.0)  # both due at 10 s, nothing sent
    refresher.submit("/lib/A/a2.mkv")
    refresher.step(now=9.99)
    assert server.calls == []
    assert refresher.step(now=10.0) is None  # sent; nothing left
    (call,) = server.calls
    assert paths(call) == ["/lib/A/a.mkv", "/lib/A/a2.mkv", "/lib/B/b.mkv"]


def test_one_refresh_per_folder_per_window(server: RecordingServer) -> None:
    refresher = Refresher(jellyfin(server), window=10, min_interval=0, start=False)
    refresher.submit("/lib/A/a.mkv")
    refresher.step(now=0.0)
    refresher.step(now=10.0)
    refresher.submit("/lib/A/b.mkv")  # written just after the refresh
    refresher.step(now=10.5)
    refresher.step(now=20.0)
    assert len(server.calls) == 1
    refresher.step(now=20.5)
    assert len(server.calls) == 2 and paths(server.calls[1]) == ["/lib/A/b.mkv"]


def test_plex_batches_list_sections_once_and_scan_each_folder(server: RecordingServer) -> None:
    sections = (
        b'<MediaContainer><Directory key="4"><Location path="/lib"/></Directory></MediaContainer>'
    )
    server.route("GET", "/library/sections", (200, "text/xml", sections))
    client = make_client(MediaServerSettings(kind="plex", url=server.url, token="good"), {})
    refresher = Refresher(client, window=1, min_interval=0, start=False)
    for video in ("/lib/A/1.mkv", "/lib/A/2.mkv", "/lib/B/1.mkv"):
        refresher.submit(video)
    refresher.step(now=0.0)
    refresher.step(now=1.0)
    assert [c.query.get("path") for c in server.calls] == [None, ["/lib/A"], ["/lib/B"]]
    assert refresher.counters["refreshed"] == 2 and refresher.counters["batches"] == 1


def test_batches_are_rate_limited(server: RecordingServer) -> None:
    refresher = Refresher(jellyfin(server), window=1, min_interval=5, start=False)
    refresher.submit("/lib/A/a.mkv")
    refresher.step(now=0.0)
    refresher.step(now=1.0)  # A sent
    refresher.submit("/lib/B/b.mkv")
    refresher.step(now=1.1)
    assert refresher.step(now=2.1) == pytest.approx(3.9)  # B is due but must wait until 6.0
    assert len(server.calls) == 1
    refresher.step(now=6.0)
    assert len(server.calls) == 2


def test_a_failing_server_is_retried_with_backoff_then_recovers(server: RecordingServer) -> None:
    server.script(*UPDATED, [500, "hang", 204])
    refresher = Refresher(jellyfin(server), window=1, min_interval=0, backoff=4, start=False)
    refresher.submit("/lib/A/a.mkv")
    with structlog.testing.capture_logs() as logs:
        refresher.step(now=0.0)
        assert refresher.step(now=1.0) == pytest.approx(4.0)  # 500: retry in 4 s
        refresher.step(now=4.9)
        assert len(server.calls) == 1
        assert refresher.step(now=5.0) == pytest.approx(8.0)  # timeout: retry in 8 s
        refresher.step(now=13.0)  # 204
    assert len(server.calls) == 3 and refresher.pending_count == 0
    counters = refresher.counters
    assert (counters["failed"], counters["retries"], counters["refreshed"]) == (2, 2, 1)
    retries = [e for e in logs if e["event"] == "mediaserver.retry"]
    assert [(e["attempt"], e["delay"]) for e in retries] == [(1, 4), (2, 8)]
    assert "HTTP 500" in retries[0]["error"] and retries[0]["log_level"] == "warning"
    assert any(e["event"] == "mediaserver.refreshed" for e in logs)


def test_attempts_run_out_and_the_folder_is_dropped(server: RecordingServer) -> None:
    server.route(*UPDATED, 503)
    refresher = Refresher(
        jellyfin(server), window=0, min_interval=0, backoff=1, max_attempts=3, start=False
    )
    refresher.submit("/lib/A/a.mkv")
    with structlog.testing.capture_logs() as logs:
        for now in (0.0, 1.0, 3.0, 100.0):
            refresher.step(now=now)
    assert len(server.calls) == 3
    assert refresher.counters["dropped"] == 1 and refresher.pending_count == 0
    (gave_up,) = [e for e in logs if e["event"] == "mediaserver.refresh_failed"]
    assert gave_up["log_level"] == "error" and "after 3 attempts" in gave_up["error"]


def test_a_refused_token_is_logged_counted_and_not_retried(server: RecordingServer) -> None:
    server.script(*UPDATED, [401])
    refresher = Refresher(jellyfin(server, token="wrong"), window=0.05, min_interval=0)
    try:
        with structlog.testing.capture_logs() as logs:
            refresher.submit("/lib/A/a.mkv")
            wait_for(lambda: refresher.counters["dropped"] == 1)
            refresher.submit("/lib/B/b.mkv")  # the thread is still alive and working
            wait_for(lambda: refresher.counters["refreshed"] == 1)
    finally:
        refresher.close()
    assert refresher.counters["auth_failures"] == 1 and refresher.counters["retries"] == 0
    assert len(server.calls) == 2
    (failure,) = [e for e in logs if e["event"] == "mediaserver.refresh_failed"]
    assert "HTTP 401" in failure["error"] and "wrong" not in failure["error"]


def test_submit_never_blocks_even_when_the_server_hangs(server: RecordingServer) -> None:
    server.route(*UPDATED, "hang")
    refresher = Refresher(jellyfin(server, timeout=2.0), window=0, min_interval=0)
    try:
        refresher.submit("/lib/first/a.mkv")
        wait_for(lambda: len(server.calls) == 1)  # the thread is now stuck in a request
        started = time.perf_counter()
        for i in range(2000):
            refresher.submit(f"/lib/F{i % 50}/{i}.mkv")
        elapsed = time.perf_counter() - started
    finally:
        refresher.close(flush=False)
    assert elapsed < 0.2, f"2000 submits took {elapsed:.3f} s"


def test_close_flushes_what_is_pending_and_stops(server: RecordingServer) -> None:
    refresher = Refresher(jellyfin(server), window=60, min_interval=60)
    refresher.submit("/lib/A/a.mkv")
    refresher.submit("/lib/B/b.mkv")
    wait_for(lambda: refresher.pending_count == 2)
    started = time.monotonic()
    refresher.close(timeout=5)
    assert time.monotonic() - started < 2
    (call,) = server.calls
    assert paths(call) == ["/lib/A/a.mkv", "/lib/B/b.mkv"]
    refresher.submit("/lib/C/c.mkv")  # ignored after close
    assert refresher.counters["submitted"] == 2 and refresher.counters["refreshed"] == 2


def test_close_against_a_dead_server_is_bounded_and_counts_the_loss(
    server: RecordingServer,
) -> None:
    server.route(*UPDATED, "hang")
    refresher = Refresher(jellyfin(server, timeout=0.2), window=60)
    refresher.submit("/lib/A/a.mkv")
    wait_for(lambda: refresher.pending_count == 1)
    started = time.monotonic()
    refresher.close(timeout=5)
    assert time.monotonic() - started < 1.5
    assert refresher.counters["dropped"] == 1 and refresher.counters["refreshed"] == 0
