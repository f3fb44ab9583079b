"""The PostgreSQL ledger's schema step 3 (SQLite's schema 3): a database of step 2 gains the
notification queue and the counters with its jobs counted; a SQLite ledger copied into an
empty database brings its notifications and counts along."""

from __future__ import annotations

from pathlib import Path

import psycopg

from daemon.queue import Delivery, Ledger
from daemon.queue.postgres import PgLedger
from daemon.queue.postgres import schema as pg_schema
from daemon.queue.transfer import copy_to_postgresql
from daemon.version import Fingerprint


def test_a_step_2_database_gains_the_queue_and_counts_its_jobs(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as conn:  # what the previous whisperd made; commits at exit
        for statement in pg_schema.MIGRATIONS[2]:
            conn.execute(statement)
        conn.execute("CREATE TABLE whisperd_schema (version integer NOT NULL)")
        conn.execute("INSERT INTO whisperd_schema VALUES (2)")
        conn.execute(
            "INSERT INTO jobs (path, size, mtime_ns, state, enqueued_at, updated_at, model, "
            "audio_seconds, processing_seconds) VALUES ('\\x612e776176', 1, 1, 'done', 1, 1, "
            "'m', 10, 2), ('\\x622e776176', 1, 1, 'queued', 1, 1, 'm', NULL, NULL)"
        )
    with PgLedger(pg_dsn, node="n") as ledger:
        assert ledger.counts()["done"] == 1 and ledger.counts()["queued"] == 1
        assert ledger.totals() == (10.0, 2.0)
        ledger.deliveries.enqueue([Delivery.new("hook", "done", b"{}", now=1.0, id="d")])
        assert ledger.deliveries.pending() == 1
        assert [j.path for j in ledger.done_jobs()] == ["a.wav"]


def test_the_copy_brings_notifications_and_counts(tmp_path: Path, pg_dsn: str) -> None:
    with Ledger(tmp_path / "ledger.sqlite3") as source:
        job = source.enqueue("a.wav", Fingerprint(1, 2, 3), model="m", settings_json="{}", now=1)
        assert job is not None
        source.claim("w", now=2)
        source.complete(job.id, outputs=["a.txt"], audio_seconds=4.0, processing_seconds=1.0,
                        language="en", now=3)  # fmt: skip
        source.deliveries.enqueue([Delivery.new("hook", "done", b'{"a":1}', now=3.0, id=i)
                                   for i in ("first", "second")])  # fmt: skip
        source.deliveries.mark_sent("first", now=4.0)
        assert copy_to_postgresql(source, pg_dsn) == {"done": 1}
    with PgLedger(pg_dsn, node="n") as ledger:
        assert ledger.counts()["done"] == 1 and ledger.totals() == (4.0, 1.0)
        assert ledger.deliveries.counts() == {"pending": 1, "sent": 1, "given_up": 0}
        [due] = ledger.deliveries.due(5.0)
        assert (due.id, due.body) == ("second", b'{"a":1}')
