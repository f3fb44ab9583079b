"""The notifier with its threads, real SQLite and real HTTP receivers on 127.0.0.1."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from structlog.testing import capture_logs

from daemon.notify.notifier import Notifier
from daemon.notify.sender import Backoff
from daemon.notify.signing import verify
from daemon.queue import Deliveries, open_ledger
from tests.notify.conftest import FakeJob, load_targets
from tests.notify.server import LocalServer

FAST = Backoff(initial=0.2, maximum=1.0, jitter=0.25)


def wait_until(predicate: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def start(
    running: list[Notifier], targets: list[dict], store: Deliveries, **options: object
) -> Notifier:
    options = {"backoff": FAST, "poll": 0.05, "settle": 0.3, **options}
    notifier = Notifier(load_targets(targets), store, **options)  # type: ignore[arg-type]
    notifier.start()
    running.append(notifier)
    return notifier


def docs(server: LocalServer) -> list[dict]:
    return [json.loads(r.body) for r in server.receiver.accepted()]


def test_fail_then_time_out_then_accept_delivers_one_signed_event(
    server_factory: Callable[..., LocalServer],
    store: Deliveries,
    running: list[Notifier],
) -> None:
    server = server_factory(script=[500, ("sleep", 1.5)])
    hook = {"webhook": server.url, "secret": "s3cret", "timeout": 0.5, "on": ["done"]}
    notifier = start(running, [hook], store)
    job = FakeJob(
        7,
        "clients/acme/a.mp3",
        "done",
        outputs=("clients/acme/a.txt",),
        language="en",
        audio_seconds=12.5,
        processing_seconds=2.25,
    )
    notifier.job_changed(job)
    wait_until(lambda: notifier.pending() == 0)
    requests = server.receiver.requests
    assert [r.behaviour for r in requests] == [500, ("sleep", 1.5), 200]
    # At-least-once: one delivery id throughout, so the receiver can dedup.
    assert {r.headers["X-Whisperd-Delivery"] for r in requests} == {
        json.loads(requests[0].body)["delivery"]
    }
    assert requests[2].accepted
    for request in requests:
        assert verify("s3cret", request.headers["X-Whisperd-Signature"], request.body)
    # Backoff spacing: ≥ 0.75 * 0.2 s after the 500, ≥ 0.75 * 0.4 s after the timeout (0.5 s).
    assert requests[1].at - requests[0].at >= 0.15
    assert requests[2].at - requests[1].at >= 0.5 + 0.3
    doc = json.loads(requests[2].body)
    assert {
        k: doc[k]
        for k in (
            "event",
            "file",
            "folder",
            "state",
            "outputs",
            "language",
            "audio_seconds",
            "processing_seconds",
            "error",
        )
    } == {
        "event": "done",
        "file": "clients/acme/a.mp3",
        "folder": "clients/acme",
        "state": "done",
        "outputs": ["clients/acme/a.txt"],
        "language": "en",
        "audio_seconds": 12.5,
        "processing_seconds": 2.25,
        "error": None,
    }


def test_a_restart_sends_what_was_pending(
    server_factory: Callable[..., LocalServer],
    tmp_path: Path,
    running: list[Notifier],
) -> None:
    server = server_factory(default=503)
    hook = {"webhook": server.url, "name": "hook"}
    ledger = open_ledger(tmp_path / "var")
    store = ledger.deliveries
    first = start(running, [hook], store, backoff=Backoff(initial=0.5, maximum=0.5))
    [delivery_id] = first.event("failed", {"file": "a.mp3", "folder": ".", "error": "corrupt"})
    assert server.receiver.wait_for(lambda reqs: len(reqs) == 1)
    assert first.stop(timeout=5)
    ledger.close()
    assert server.receiver.accepted() == []

    server.receiver.default = 200
    ledger = open_ledger(tmp_path / "var")
    store = ledger.deliveries
    assert store.pending() == 1
    second = start(running, [hook], store)
    try:
        wait_until(lambda: second.pending() == 0)
        [got] = server.receiver.accepted()
        assert got.headers["X-Whisperd-Delivery"] == delivery_id
        assert json.loads(got.body)["error"] == "corrupt"
        assert [r.headers["X-Whisperd-Delivery"] for r in server.receiver.requests] == [
            delivery_id,
            delivery_id,
        ]
    finally:
        second.stop()
        ledger.close()


def test_a_slow_target_does_not_delay_a_fast_one(
    server_factory: Callable[..., LocalServer],
    store: Deliveries,
    running: list[Notifier],
) -> None:
    slow = server_factory(default=("sleep", 1.0))
    fast = server_factory()
    notifier = start(
        running,
        [
            {"webhook": slow.url, "name": "slow", "timeout": 5},
            {"webhook": fast.url, "name": "fast"},
        ],
        store,
    )
    began = time.monotonic()
    for n in range(5):
        notifier.event("failed", {"file": f"{n}.mp3", "folder": "."})
    assert fast.receiver.wait_for(lambda reqs: len([r for r in reqs if r.accepted]) == 5, 10)
    fast_done = time.monotonic() - began
    assert fast_done < 0.8, f"the fast target waited {fast_done:.2f} s"
    assert len(slow.receiver.accepted()) <= 1
    assert [d["file"] for d in docs(fast)] == [f"{n}.mp3" for n in range(5)]


def test_a_worker_never_waits_for_the_network(
    server_factory: Callable[..., LocalServer],
    store: Deliveries,
    running: list[Notifier],
) -> None:
    hung = server_factory(default=("sleep", 5))
    notifier = start(running, [{"webhook": hung.url, "timeout": 5}], store)
    notifier.event("failed", {"file": "0.mp3", "folder": "."})
    assert hung.receiver.wait_for(lambda reqs: len(reqs) == 1)  # the lane is now stuck
    timings = []
    for job in range(1, 21):
        began = time.perf_counter()
        notifier.job_changed(FakeJob(job, f"{job}.mp3", "failed", last_error="x"))
        timings.append(time.perf_counter() - began)
    assert max(timings) < 0.25, f"job_changed took up to {max(timings) * 1000:.0f} ms"
    assert notifier.pending() == 21


def test_folder_idle_fires_once_per_batch(
    server: LocalServer,
    store: Deliveries,
    running: list[Notifier],
) -> None:
    notifier = start(running, [{"webhook": server.url}], store, settle=0.5)
    jobs = {
        1: "clients/acme/a.mp3",
        2: "clients/acme/b.mp3",
        3: "clients/acme/c.mp3",
        4: "clients/other/x.mp3",
    }
    for job, path in jobs.items():
        # A slow copy: each file is queued only after the previous one was transcribed.
        notifier.job_changed(FakeJob(job, path, "queued"))
        notifier.job_changed(FakeJob(job, path, "running"))
        state = "failed" if job == 2 else "done"
        notifier.job_changed(FakeJob(job, path, state, last_error="corrupt" if job == 2 else None))
        time.sleep(0.05)  # shorter than the settle time
    assert server.receiver.wait_for(lambda reqs: len([r for r in reqs if r.accepted]) == 6)
    time.sleep(0.7)  # longer than the settle time: nothing more may come
    events = [(d["event"], d.get("folder")) for d in docs(server)]
    assert sorted(e for e in events if e[0] == "folder_idle") == [
        ("folder_idle", "clients/acme"),
        ("folder_idle", "clients/other"),
    ]
    assert len(events) == 6
    acme = next(
        d for d in docs(server) if d["event"] == "folder_idle" and d["folder"] == "clients/acme"
    )
    assert (acme["files"], acme["done"], acme["failed"]) == (3, 2, 1)
    assert acme["failures"] == [{"file": "clients/acme/b.mp3", "error": "corrupt"}]

    notifier.job_changed(FakeJob(5, "clients/acme/d.mp3", "queued"))  # a new batch
    notifier.job_changed(FakeJob(5, "clients/acme/d.mp3", "done"))
    assert server.receiver.wait_for(lambda reqs: len([r for r in reqs if r.accepted]) == 8)
    last = docs(server)[-1] if docs(server)[-1]["event"] == "folder_idle" else docs(server)[-2]
    assert (last["event"], last["files"], last["done"]) == ("folder_idle", 1, 1)


def test_targets_get_only_their_events_and_folders(
    server_factory: Callable[..., LocalServer],
    store: Deliveries,
    running: list[Notifier],
) -> None:
    people, machines = server_factory(), server_factory()
    notifier = start(
        running,
        [
            {"apprise": f"json://127.0.0.1:{people.port}/", "folders": ["clients/*"]},
            {"webhook": machines.url, "on": ["done"]},
        ],
        store,
    )
    for job, path in enumerate(["clients/acme/a.mp3", "internal/b.mp3"]):
        notifier.job_changed(FakeJob(job, path, "queued"))
        notifier.job_changed(FakeJob(job, path, "failed", last_error="bad"))
    notifier.job_changed(FakeJob(9, "internal/c.mp3", "done"))
    assert people.receiver.wait_for(lambda reqs: len(reqs) == 2)
    assert machines.receiver.wait_for(lambda reqs: len(reqs) == 1)
    wait_until(lambda: notifier.pending() == 0)
    titles = sorted(json.loads(r.body)["title"] for r in people.receiver.requests)
    assert titles == [
        "Transcription failed: clients/acme/a.mp3",
        "clients/acme: 1 file finished, 1 failed",
    ]
    assert [d["file"] for d in docs(machines)] == ["internal/c.mp3"]


def test_stop_keeps_a_settling_summary_for_the_next_start(
    server_factory: Callable[..., LocalServer],
    store: Deliveries,
    running: list[Notifier],
) -> None:
    server = server_factory()
    notifier = start(running, [{"webhook": server.url, "on": ["folder_idle"]}], store, settle=60)
    notifier.job_changed(FakeJob(1, "in/a.mp3", "queued"))
    notifier.job_changed(FakeJob(1, "in/a.mp3", "done"))
    assert notifier.stop(timeout=5)
    assert server.receiver.requests == []
    [pending] = store.due(time.time() + 1)
    assert json.loads(pending.body)["event"] == "folder_idle"


def test_deliveries_of_a_removed_target_are_dropped_with_one_line(
    server: LocalServer,
    store: Deliveries,
    running: list[Notifier],
) -> None:
    old = Notifier(load_targets([{"webhook": server.url, "name": "old"}]), store)
    for n in range(3):
        old.event("done", {"file": f"{n}.mp3", "folder": "."})
    with capture_logs() as logs:
        start(running, [{"webhook": server.url, "name": "new"}], store)
    assert store.pending() == 0 and store.counts() == {"pending": 0, "sent": 0, "given_up": 3}
    assert [(e["event"], e["count"]) for e in logs] == [("notifications_dropped", 3)]


def test_a_broken_store_never_reaches_the_worker(tmp_path: Path) -> None:
    ledger = open_ledger(tmp_path / "var")
    notifier = Notifier(load_targets([{"webhook": "http://127.0.0.1:9/h"}]), ledger.deliveries)
    ledger.close()
    with capture_logs() as logs:
        notifier.job_changed(FakeJob(1, "a.mp3", "done"))  # must not raise
    assert [e["event"] for e in logs] == ["notification_not_stored"]


def test_stop_does_not_wait_for_a_hung_receiver_and_the_delivery_stays_pending(
    server_factory: Callable[..., LocalServer],
    tmp_path: Path,
    running: list[Notifier],
) -> None:
    hung = server_factory(default=("sleep", 30))
    ledger = open_ledger(tmp_path / "var")
    notifier = start(running, [{"webhook": hung.url, "timeout": 20}], ledger.deliveries)
    [delivery_id] = notifier.event("done", {"file": "a.mp3", "folder": "."})
    assert hung.receiver.wait_for(lambda reqs: len(reqs) == 1)
    began = time.monotonic()
    assert notifier.stop(timeout=0.3) is False
    assert time.monotonic() - began < 1
    ledger.close()  # the service closes the ledger next; the lane's late result is dropped
    with open_ledger(tmp_path / "var") as reopened:
        found = reopened.deliveries.get(delivery_id)
        assert found is not None and found.state == "pending", "it is sent again after a start"


def test_a_silently_superseded_job_does_not_hold_the_folder_open(
    server: LocalServer, store: Deliveries, running: list[Notifier]
) -> None:
    ledger_active: set[int] = {1}
    notifier = start(
        running, [{"webhook": server.url, "on": ["folder_idle"]}], store,
        settle=0.1, active_jobs=lambda: set(ledger_active), reconcile_every=0.1,
    )  # fmt: skip
    notifier.job_changed(FakeJob(1, "in/a.mp3", "queued"))
    # The file is rewritten: the ledger supersedes job 1 and queues job 2 in one transaction.
    ledger_active.clear()
    notifier.job_changed(FakeJob(2, "in/a.mp3", "queued"))
    notifier.job_changed(FakeJob(2, "in/a.mp3", "done"))
    assert server.receiver.wait_for(lambda reqs: any(r.accepted for r in reqs), 5)
    [doc] = docs(server)
    assert (doc["folder"], doc["done"], doc["skipped"]) == ("in", 1, 1)
