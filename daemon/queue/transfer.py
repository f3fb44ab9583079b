"""``whisperd ledger migrate``: copy a SQLite ledger into an empty PostgreSQL one.

A site that grows from one server to several keeps everything its ledger knows: every
version of every file with its state, attempts, outputs and errors (so nothing done is
transcribed again, and failures stay failed), and the version identity policy. Job ids are
kept. A job the stopped service left running is copied without a lease, so the first node
takes it back at once (a crash counted, as a restart would); one whose outputs were staged
is finished by the node that claims it. The copy is one transaction: a failure leaves the
database empty. The SQLite ledger is not changed (beyond its own schema upgrade).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import structlog

from daemon.errors import LedgerError
from daemon.queue.store import Ledger

log = structlog.get_logger(__name__)

BATCH = 5000  # rows read from SQLite at a time
#: What the service must remember across the move (its status record is not copied).
META_KEYS = ("version_identity",)
_COLUMNS = (
    "id", "path", "size", "mtime_ns", "inode", "state", "attempts", "not_before",
    "enqueued_at", "started_at", "finished_at", "updated_at", "worker", "model", "settings",
    "outputs", "audio_seconds", "processing_seconds", "language", "progress", "last_error",
    "error_kind", "crashes", "staged", "source_action",
)  # fmt: skip
_DELIVERY_COLUMNS = (
    "id", "target", "event", "body", "state", "attempts", "created_at", "next_at",
    "updated_at", "last_error",
)  # fmt: skip


def _rows(source: Ledger) -> Iterator[tuple]:
    last = 0
    while True:
        rows = source._read(
            f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE id > ? ORDER BY id LIMIT ?",
            (last, BATCH),
        )
        if not rows:
            return
        yield from (tuple(r) for r in rows)
        last = rows[-1]["id"]


def _copy_deliveries(source: Ledger, conn: Any) -> None:
    """The notification queue, in its order: what was pending is sent by the new ledger."""
    rows = source._read(f"SELECT {', '.join(_DELIVERY_COLUMNS)} FROM deliveries ORDER BY seq")
    with conn.cursor().copy(f"COPY deliveries ({', '.join(_DELIVERY_COLUMNS)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(tuple(row))


def copy_to_postgresql(source: Ledger, dsn: str) -> dict[str, int]:
    """Copy ``source`` into the empty ledger database ``dsn``; the jobs copied per state."""
    from daemon.queue.postgres import PgLedger

    with (
        PgLedger(dsn, node="ledger-migrate") as target,
        target.link.transaction("copy the ledger") as conn,
    ):
        existing = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
        if existing:
            raise LedgerError(
                f"the ledger database {target.link.where} already holds {existing} jobs",
                "migrate into an empty database (drop and create it, or use another)",
            )
        with conn.cursor().copy(f"COPY jobs ({', '.join(_COLUMNS)}) FROM STDIN") as copy:
            for row in _rows(source):
                copy.write_row(row)
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('jobs', 'id'), "
            "coalesce((SELECT max(id) FROM jobs), 0) + 1, false)"
        )
        _copy_deliveries(source, conn)
        for key in META_KEYS:
            value = source.get_meta(key)
            if value is not None:
                conn.execute(
                    "INSERT INTO meta (key, value, updated_at) VALUES (%s, %s, "
                    "extract(epoch from now()))",
                    (key, value),
                )
        counts = dict(conn.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
    log.info("ledger_copied", jobs=sum(counts.values()), target=target.link.where)
    return counts
