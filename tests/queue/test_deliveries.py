"""The notification queue in the ledger: durable, ordered, migrated into older ledgers (the
`store` tests run on SQLite and on PostgreSQL)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.errors import LedgerError
from daemon.queue import FILENAME, SCHEMA_VERSION, Deliveries, Delivery, JobStore, open_ledger
from daemon.version import Fingerprint


@pytest.fixture
def store(ledger: JobStore) -> Iterator[Deliveries]:
    """The notification queue of the ledger, on both backends."""
    yield ledger.deliveries  # type: ignore[misc]


def test_a_delivery_survives_reopening(tmp_path: Path) -> None:
    with open_ledger(tmp_path) as ledger:
        ledger.deliveries.enqueue([Delivery.new("hook", "done", b'{"a":1}', now=100.0, id="d1")])
    with open_ledger(tmp_path, readonly=True) as ledger:
        [found] = ledger.deliveries.due(100.0)
    assert (found.id, found.target, found.event, found.body) == ("d1", "hook", "done", b'{"a":1}')
    assert (found.state, found.attempts, found.next_at) == ("pending", 0, 100.0)


def test_the_life_of_a_delivery(store: Deliveries) -> None:
    store.enqueue([Delivery.new("hook", "done", b"{}", now=10.0, id="d1")])
    store.mark_retry("d1", next_at=40.0, error="HTTP 500", now=11.0)
    assert store.due(39.9) == []
    assert store.next_due() == 40.0
    [again] = store.due(40.0)
    assert (again.attempts, again.last_error) == (1, "HTTP 500")
    store.mark_sent("d1", now=41.0)
    found = store.get("d1")
    assert found is not None and (found.state, found.attempts) == ("sent", 2)
    assert store.pending() == 0 and store.next_due() is None
    store.mark_retry("d1", next_at=99.0, error="late", now=42.0)  # no effect once finished
    assert store.get("d1").state == "sent"  # type: ignore[union-attr]


def test_giving_up_keeps_the_reason(store: Deliveries) -> None:
    store.enqueue([Delivery.new("hook", "done", b"{}", now=10.0, id="d1")])
    store.mark_given_up("d1", "HTTP 404: the receiver refused the request", now=11.0)
    found = store.get("d1")
    assert found is not None
    assert (found.state, found.attempts, found.last_error) == (
        "given_up",
        1,
        "HTTP 404: the receiver refused the request",
    )
    assert store.counts() == {"pending": 0, "sent": 0, "given_up": 1}


def test_due_is_per_target_oldest_first(store: Deliveries) -> None:
    store.enqueue(
        [
            Delivery.new("a", "done", b"1", now=5.0, id="a1"),
            Delivery.new("b", "done", b"2", now=5.0, id="b1"),
            Delivery.new("a", "done", b"3", now=5.0, id="a2"),
            Delivery.new("a", "done", b"4", now=1.0, id="a0"),
        ]
    )
    assert [d.id for d in store.due(10.0, target="a")] == ["a0", "a1", "a2"]
    assert [d.id for d in store.due(10.0, target="a", limit=1)] == ["a0"]
    assert store.pending_targets() == {"a": 3, "b": 1}
    assert store.pending(target="b") == 1


def test_enqueue_is_all_or_nothing(store: Deliveries) -> None:
    store.enqueue([Delivery.new("a", "done", b"1", now=1.0, id="x")])
    with pytest.raises(LedgerError, match="store a notification failed"):
        store.enqueue(
            [
                Delivery.new("b", "done", b"2", now=1.0, id="y"),
                Delivery.new("b", "done", b"3", now=1.0, id="x"),
            ]
        )
    assert store.get("y") is None and store.pending() == 1


def test_prune_removes_only_old_finished_rows(store: Deliveries) -> None:
    store.enqueue([Delivery.new("a", "done", b"1", now=1.0, id=i) for i in ("old", "new", "wait")])
    store.mark_sent("old", now=10.0)
    store.mark_sent("new", now=100.0)
    assert store.prune(before=50.0) == 1
    assert store.get("old") is None
    assert store.get("new") is not None and store.get("wait") is not None


def test_a_version_2_ledger_gains_the_table_and_keeps_its_jobs(tmp_path: Path) -> None:
    """Migration 3 adds the notification queue to a ledger written by an older whisperd."""
    with open_ledger(tmp_path) as ledger:
        ledger.enqueue("a.wav", Fingerprint(1, 2, 3), model="tiny", settings_json="{}", now=1.0)
    conn = sqlite3.connect(tmp_path / FILENAME, isolation_level=None)
    for statement in (
        "DROP INDEX jobs_settled", "DROP INDEX jobs_failed", "DROP TABLE deliveries",
        "DROP TRIGGER jobs_count_insert", "DROP TRIGGER jobs_count_update",
        "DROP TRIGGER jobs_count_delete", "DROP TABLE job_counts", "PRAGMA user_version = 2",
    ):  # fmt: skip
        conn.execute(statement)
    conn.close()
    with open_ledger(tmp_path) as ledger:
        assert ledger.counts()["queued"] == 1 and ledger.deliveries.pending() == 0  # counted
        ledger.deliveries.enqueue([Delivery.new("a", "done", b"1", now=1.0, id="x")])
    conn = sqlite3.connect(tmp_path / FILENAME)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    assert conn.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 1
    conn.close()


def test_a_read_only_ledger_cannot_store(tmp_path: Path) -> None:
    open_ledger(tmp_path).close()
    with (
        open_ledger(tmp_path, readonly=True) as ledger,
        pytest.raises(LedgerError, match="read-only"),
    ):
        ledger.deliveries.enqueue([Delivery.new("a", "done", b"1", now=1.0)])


def test_every_node_sees_the_deliveries_of_the_others(ledger: JobStore, request) -> None:
    """On a shared ledger every node stores notifications and the intake leader sends."""
    if not ledger.shared:
        pytest.skip("one node on SQLite")
    from daemon.queue.postgres import PgLedger

    ledger.deliveries.enqueue([Delivery.new("hook", "done", b"{}", now=1.0, id="n1")])
    ledger.deliveries.enqueue([Delivery.new("hook", "done", b"{}", now=1.0, id="n2")])
    with PgLedger(request.getfixturevalue("pg_dsn"), node="other") as other:
        assert other.lead()  # the node that leads intake sends, the others wait
        assert ledger.deliveries.due(2.0) == [] and ledger.deliveries.next_due() is None
        assert ledger.deliveries.pending_targets() == {} and ledger.deliveries.pending() == 2
        [due, _] = other.deliveries.due(2.0)
        other.deliveries.mark_sent(due.id, now=3.0)
    assert ledger.deliveries.counts() == {"pending": 1, "sent": 1, "given_up": 0}
    assert [d.id for d in ledger.deliveries.due(4.0)] == ["n2"]  # the leader left: this one
