"""The PostgreSQL ledger over months: pruning settled history, transcribing done files again.

A mixin of :class:`~daemon.queue.postgres.store.PgLedger`, with the rules of the SQLite
ledger's :mod:`daemon.queue.housekeeping`: the same rows are pruned (:func:`prunable`), in
small transactions, each checking the rows again (a row revived meanwhile stays); the
claims of the pruned jobs go with them. No ``VACUUM``: autovacuum reuses the space of
deleted rows and keeps the planner's statistics (:meth:`vacuum_if_worthwhile` says so by
returning False). The service prunes only on the node that leads intake
(:mod:`daemon.service.housekeeping`).

Leases: a done job holds none, so :meth:`requeue_done` and :meth:`set_outputs` need no
fencing token; both act only on rows still ``done`` when they are locked, so a job
requeued, or claimed again by any node meanwhile, is left alone. A requeued row loses its
last claim's node, token and lease.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import structlog

from daemon.queue.housekeeping import PRUNE_BATCH, VACUUM_MIN_BYTES, VACUUM_MIN_RATIO, prunable
from daemon.queue.postgres.connection import Row, sql

log = structlog.get_logger(__name__)

_SETTLED = "state IN ('done', 'failed', 'superseded', 'gone', 'skipped')"  # jobs_settled's
_PRUNABLE = f"{_SETTLED} AND finished_at < ? AND staged IS NULL AND source_action IS NULL"


def _now(now: float | None) -> float:
    return time.time() if now is None else now


class PgHousekeeping:
    """Long-term upkeep of the jobs table; the host class supplies the plumbing."""

    def _write(self, op: str) -> Any:
        raise NotImplementedError

    def _read(self, query: str, params: Sequence[Any] = ()) -> list[Row]:
        raise NotImplementedError

    def prune_history(
        self, before: float, exists: Callable[[str], bool], *, stop: Callable[[], bool] = bool
    ) -> int:
        """Delete rows settled before ``before`` (see the module docstring); the count.

        ``exists(path)`` is asked once per path, outside any transaction; ``stop()`` true
        ends the work between batches.
        """
        rows = self._read(f"SELECT id, path, state FROM jobs WHERE {_PRUNABLE}", (before,))
        doomed = prunable(rows, exists)
        deleted = 0
        for start in range(0, len(doomed), PRUNE_BATCH):
            if stop():
                break
            with self._write("prune history") as conn:
                gone = conn.execute(
                    sql(f"DELETE FROM jobs WHERE id = ANY(?) AND {_PRUNABLE} RETURNING id"),
                    (doomed[start : start + PRUNE_BATCH], before),
                ).fetchall()
                ids = [r[0] for r in gone]
                conn.execute("DELETE FROM claims WHERE job_id = ANY(%s)", (ids,))
            deleted += len(ids)
        if deleted:
            log.info("ledger_pruned", rows=deleted, before=before)
        return deleted

    def vacuum_if_worthwhile(
        self, min_ratio: float = VACUUM_MIN_RATIO, min_bytes: int = VACUUM_MIN_BYTES
    ) -> bool:
        """Never needed on PostgreSQL (autovacuum): False."""
        return False

    def requeue_done(
        self, jobs: Sequence[tuple[int, str, str]], *, now: float | None = None
    ) -> list[int]:
        """``(job id, model, settings JSON)`` of done jobs → queued afresh; the ids requeued."""
        now = _now(now)
        requeued = []
        with self._write("requeue done files") as conn:
            for job_id, model, settings in jobs:
                changed = conn.execute(
                    sql("UPDATE jobs SET state = 'queued', attempts = 0, crashes = 0, "
                        "not_before = ?, enqueued_at = ?, started_at = NULL, finished_at = NULL, "
                        "updated_at = ?, worker = NULL, model = ?, settings = ?, progress = 0, "
                        "staged = NULL, last_error = NULL, error_kind = NULL, node = NULL, "
                        "fence = NULL, lease_until = NULL WHERE id = ? AND state = 'done' "
                        "AND source_action IS NULL"),
                    (now, now, now, model, settings, job_id),
                ).rowcount  # fmt: skip
                if changed:
                    requeued.append(job_id)
        log.info("jobs_requeued", count=len(requeued))
        return requeued

    def set_outputs(self, job_id: int, outputs: Sequence[str], now: float | None = None) -> None:
        """Record the outputs of a done job after they were rendered again."""
        now = _now(now)
        with self._write("record outputs") as conn:
            conn.execute(
                "UPDATE jobs SET outputs = %s, updated_at = %s WHERE id = %s AND state = 'done'",
                (json.dumps(list(outputs)), now, job_id),
            )
