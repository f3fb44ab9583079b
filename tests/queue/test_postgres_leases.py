"""The PostgreSQL ledger's cluster rules on a real server: leases, fencing, reclaims, nodes,
intake leadership, concurrent claims and enqueues, the versioned schema."""

from __future__ import annotations

import threading

import psycopg
import pytest

from daemon.errors import LeaseLostError, LedgerError
from daemon.queue import SCHEMA_VERSION, NodeInfo, RetryPolicy, crash_message
from daemon.queue.postgres import PgLedger
from daemon.queue.postgres import schema as pg_schema
from daemon.version import Fingerprint
from tests.e2e.service_harness import wait_for
from tests.queue.support import FP1, add

LEASE = 0.6  # seconds: runs out within a test


def node(dsn: str, name: str, lease: float = LEASE) -> PgLedger:
    ledger = PgLedger(dsn, node=name, lease_seconds=lease)
    ledger.join(NodeInfo(name, ("cpu",)))
    return ledger


def claim_outcomes(dsn: str, job_id: int) -> list[tuple[str, str | None]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT node, outcome FROM claims WHERE job_id = %s ORDER BY id",
                            (job_id,)).fetchall()  # fmt: skip


def expired(dsn: str, *job_ids: int) -> bool:
    """Every one of these leases ran out, by the database's clock."""
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT bool_and(lease_until < extract(epoch from clock_timestamp())) FROM jobs "
            "WHERE id = ANY(%s)", (list(job_ids),)).fetchone()[0]  # fmt: skip


def reclaimed(ledger: PgLedger, **kw):
    return wait_for(lambda: len(r := ledger.recover(**kw)) and r, timeout=10, interval=0.05)


def test_a_lost_lease_is_reclaimed_and_the_late_node_is_refused(pg_dsn: str) -> None:
    a, b = node(pg_dsn, "a"), node(pg_dsn, "b")
    try:
        job = add(a, "x.wav", now=1)
        assert a.claim("a/0", now=2).id == job.id and a.holds(job.id)
        assert len(b.recover(crash_limit=3)) == 0  # a valid lease of another node: untouched
        back = reclaimed(b, crash_limit=3).requeued[0]
        assert (back.state, back.attempts, back.crashes) == ("queued", 1, 1)
        assert "node a stopped renewing its lease" in back.last_error
        assert not a.holds(job.id)
        with pytest.raises(LeaseLostError, match="no longer holds it"):
            a.stage(job.id, {"files": []})
        again = b.claim("b/0")
        with pytest.raises(LeaseLostError):
            a.complete(job.id, outputs=["late.txt"], audio_seconds=1, processing_seconds=1,
                       language="en")  # fmt: skip
        done = b.complete(again.id, outputs=["x.txt"], audio_seconds=1, processing_seconds=1,
                          language="en")  # fmt: skip
        assert (done.state, done.outputs) == ("done", ("x.txt",))
        assert claim_outcomes(pg_dsn, job.id) == [("a", "expired"), ("b", "done")]
    finally:
        a.close()
        b.close()


def test_an_expired_lease_refuses_writes_even_before_anyone_reclaims(pg_dsn: str) -> None:
    with node(pg_dsn, "a") as a:
        job = add(a, "x.wav", now=1)
        a.claim("a/0", now=2)
        wait_for(lambda: expired(pg_dsn, job.id), timeout=10)
        assert not a.holds(job.id)
        with pytest.raises(LeaseLostError, match="lease ran out"):
            a.complete(job.id, outputs=[], audio_seconds=1, processing_seconds=1, language=None)
        assert a.get(job.id).state == "running"  # until a node reclaims it


def test_renewals_keep_a_lease_and_report_lost_ones(pg_dsn: str) -> None:
    with node(pg_dsn, "a") as a, node(pg_dsn, "b") as b:
        kept, dropped = add(a, "kept.wav", now=1), add(a, "dropped.wav", now=1)
        a.claim("a/0", now=2)
        a.claim("a/1", now=2)
        stop = threading.Event()
        assert a.renew([kept.id, dropped.id]) == set()

        def renew_kept() -> None:
            while not stop.wait(LEASE / 4):
                a.renew([kept.id])

        renewer = threading.Thread(target=renew_kept)
        renewer.start()
        try:
            reclaimed(b)  # the one not renewed
            assert a.holds(kept.id) and not a.holds(dropped.id)
        finally:
            stop.set()
            renewer.join()
        assert a.renew([kept.id, dropped.id]) == {dropped.id}  # b took it back: lost
        assert b.get(kept.id).state == "running" and b.get(dropped.id).state == "queued"
        wait_for(lambda: expired(pg_dsn, kept.id), timeout=10)  # no more renewals
        assert a.renew([kept.id]) == {kept.id}


def test_a_restarted_node_takes_back_its_own_leftovers_at_once(pg_dsn: str) -> None:
    first = node(pg_dsn, "a", lease=60)
    job = add(first, "x.wav", now=1)
    first.claim("a/0", now=2)
    first.link.drop()  # killed: no leave, no outcome (the session ends with the process)
    with node(pg_dsn, "b", lease=60) as other:
        assert len(other.recover()) == 0  # a's lease is still valid for another node
    with node(pg_dsn, "a", lease=60) as again:
        recovery = again.recover(crash_limit=2)
        assert [j.id for j in recovery.requeued] == [job.id]
        assert recovery.requeued[0].last_error.startswith("interrupted: the service stopped")
        again.claim("a/0")
        assert len(again.recover(crash_limit=2)) == 0  # its own live claim: untouched


def test_staged_outputs_go_back_with_the_job_and_crashes_fail_it(pg_dsn: str) -> None:
    with node(pg_dsn, "a") as a, node(pg_dsn, "b") as b:
        staged, crashing = add(a, "s.wav", now=1), add(a, "c.wav", now=1)
        a.claim("a/0", now=2)
        a.stage(staged.id, {"files": [{"path": "s.txt", "temp": ".s.txt.1.whisperd-tmp"}]})
        a.claim("a/1", now=2)
        wait_for(lambda: expired(pg_dsn, staged.id, crashing.id), timeout=10)
        assert len(b.recover(crash_limit=2).requeued) == 2
        back = b.get(staged.id)
        assert (back.state, back.crashes, back.attempts) == ("queued", 0, 0)
        assert "the next claim publishes them" in back.last_error and back.staged
        assert [j.id for j in b.staged_jobs()] == [staged.id]
        assert b.claim("b/0").staged == back.staged  # the claimer finishes the commit
        b.claim("b/1")  # c.wav, crashed once
        b.link.drop()  # b dies too: a second crash for c.wav
    with node(pg_dsn, "b") as b:
        failed = b.recover(crash_limit=2).failed
        assert [(j.path, j.state, j.crashes) for j in failed] == [("c.wav", "failed", 2)]
        assert failed[0].last_error == crash_message(2)


def test_a_node_name_belongs_to_one_live_service(pg_dsn: str) -> None:
    with node(pg_dsn, "gpu1"):
        with pytest.raises(LedgerError, match="'gpu1' is in use by another running whisperd "
                                              r"service \(host .*, pid \d+"):  # fmt: skip
            node(pg_dsn, "gpu1")
        assert [n.name for n in PgLedger(pg_dsn, node="reader").nodes()] == ["gpu1"]
    with node(pg_dsn, "gpu1") as again:  # the first left: the name is free
        status = again.nodes()[0]
        assert (status.name, status.alive, status.running, status.workers) == (
            "gpu1", True, 0, ("cpu",))  # fmt: skip


def test_one_node_scans_and_a_dead_or_silent_leader_is_replaced(pg_dsn: str) -> None:
    a, b = node(pg_dsn, "a"), node(pg_dsn, "b")
    try:
        assert a.lead() and not b.lead()
        assert [n.leader for n in b.nodes()] == [True, False]
        a.link.drop()  # its session ends (a killed process): the lock goes with it ...
        wait_for(lambda: b.lead(), timeout=10, interval=0.05)  # ... once the server noticed
        # b stops beating (a paused VM) while its TCP session lives on: a ends the session.
        a.renew([])
        wait_for(lambda: a.lead(), timeout=10, interval=0.1)
        a.renew([])  # a beats (else b, in its turn, would find a silent and end a's session)
        with pytest.raises(LedgerError, match="lost the ledger database"):
            b.lead()  # b finds its session gone ...
        assert not b.lead()  # ... reconnects, and follows
        assert [n.leader for n in a.nodes()] == [True, False]
    finally:
        a.close()
        b.close()


def test_nodes_claiming_and_enqueueing_at_once_never_share_a_job(pg_dsn: str) -> None:
    ledgers = [node(pg_dsn, f"n{i}", lease=60) for i in range(4)]
    versions = [(f"d/{i}.wav", Fingerprint(i, i, i)) for i in range(300)]
    claimed: list[list[int]] = [[] for _ in ledgers]

    def work(i: int) -> None:
        led = ledgers[i]
        led.enqueue_many(versions, model="m", settings_json="{}", now=1)  # every node, at once
        while (job := led.claim(f"n{i}/0", now=2)) is not None:
            claimed[i].append(job.id)
            led.complete(job.id, outputs=[], audio_seconds=1, processing_seconds=1,
                         language=None)  # fmt: skip

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        ids = [i for ids in claimed for i in ids]
        assert len(ids) == len(set(ids)) == 300
        assert ledgers[0].counts()["done"] == 300 and len(ledgers[0].history()) == 300
        assert sum(1 for ids in claimed if ids) >= 2
    finally:
        for led in ledgers:
            led.close()


def test_the_schema_is_versioned_like_the_sqlite_one(pg_dsn: str) -> None:
    with pytest.raises(LedgerError, match="no ledger yet"):
        PgLedger(pg_dsn, readonly=True)
    with PgLedger(pg_dsn) as ledger:
        add(ledger, "x.wav", FP1)
    # The numbering follows SQLite's: a SQLite step without its PostgreSQL twin fails here.
    assert pg_schema.SCHEMA_VERSION == SCHEMA_VERSION
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert conn.execute("SELECT max(version) FROM whisperd_schema").fetchone()[0] == (
            SCHEMA_VERSION
        )
        conn.execute("INSERT INTO whisperd_schema VALUES (99)")
    with pytest.raises(LedgerError, match="schema 99, newer than this whisperd"):
        PgLedger(pg_dsn)
    with pytest.raises(LedgerError, match=r"cannot reach the ledger database 127\.0\.0\.1:1/"):
        PgLedger("host=127.0.0.1 port=1 dbname=nowhere connect_timeout=2 password=secret")


def test_failures_follow_the_same_policy(pg_dsn: str) -> None:
    with node(pg_dsn, "a", lease=60) as a:
        job = add(a, "x.wav", now=0)
        policy = RetryPolicy(max_attempts=2, backoff=10, backoff_max=10)
        assert a.fail(a.claim("a/0", now=0).id, error="e", transient=False, policy=policy,
                      now=1) == "queued"  # fmt: skip
        assert a.claim("a/0", now=5) is None  # backing off
        assert a.fail(a.claim("a/0", now=11).id, error="e", transient=False, policy=policy,
                      now=12) == "failed"  # fmt: skip
        assert claim_outcomes(pg_dsn, job.id) == [("a", "queued"), ("a", "failed")]
