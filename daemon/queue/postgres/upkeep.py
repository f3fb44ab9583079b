"""The PostgreSQL ledger's upkeep: reclaims after a lost lease, start-up, housekeeping.

A mixin of :class:`~daemon.queue.postgres.store.PgLedger`. :meth:`PgUpkeep.recover` is run
by every node every few seconds (and at start-up): it takes back the jobs whose lease ran
out by the database's clock, and at once the jobs this node's previous run left behind
(the node name is this service's alone while it lives: :mod:`.nodes`). The rest are the
same questions and operator actions as the SQLite ledger's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import structlog

from daemon.queue.job import Job
from daemon.queue.postgres.connection import Row, sql
from daemon.queue.postgres.intake import path_filter
from daemon.queue.postgres.schema import DB_NOW, fold_counts
from daemon.queue.transitions import INTERRUPTED, Recovery, crash_message

log = structlog.get_logger(__name__)


def _now(now: float | None) -> float:
    return time.time() if now is None else now


def lease_message(node: str | None) -> str:
    """The error recorded on a job taken back from a node whose lease ran out."""
    return (f"interrupted: node {node or '?'} stopped renewing its lease on this job (it died, "
            "was paused or lost the database)")  # fmt: skip


class PgUpkeep:
    """Reclaims and housekeeping; the host class supplies the plumbing and the node."""

    node: str
    lease_seconds: float
    _held: dict[int, int]
    _joined: dict[str, Any] | None

    def _write(self, op: str) -> Any:
        raise NotImplementedError

    def _read(self, query: str, params: Sequence[Any] = ()) -> list[Row]:
        raise NotImplementedError

    def _job(self, conn: Any, job_id: int) -> Job:
        raise NotImplementedError

    # --- reclaims and start-up ---

    def recover(self, now: float | None = None, *, crash_limit: int | None = None) -> Recovery:
        """Jobs whose lease ran out, and this node's own leftovers: back to the queue.

        A job whose outputs were staged goes back with them (no crash counted): whoever
        claims it finishes the commit. Any other counts an attempt and a crash; at
        ``crash_limit`` crashes it fails. Another node's running job is never touched
        while its lease is valid.
        """
        now = _now(now)
        own = self._joined is not None
        with self._write("recover") as conn:  # _held is read under the lock claims hold
            rows = conn.execute(
                sql(f"SELECT * FROM jobs WHERE state = 'running' AND (lease_until <= {DB_NOW} "
                    "OR lease_until IS NULL OR (? AND node = ? AND NOT fence = ANY(?))) "
                    "ORDER BY id FOR UPDATE SKIP LOCKED"),
                (own, self.node, list(self._held.values())),
            ).fetchall()  # fmt: skip
            requeued, failed = [], []
            for row in rows:
                target = failed if self._reclaim(conn, row, now, crash_limit) else requeued
                target.append(self._job(conn, row["id"]))
            fold_counts(conn)  # every few seconds on every node: the counters stay short
        if rows:
            log.warning("jobs_reclaimed", requeued=[j.path for j in requeued],
                        failed=[j.path for j in failed], nodes=sorted({r["node"] or "?"
                                                                      for r in rows}))  # fmt: skip
        return Recovery(requeued, failed)

    def _reclaim(self, conn: Any, row: Row, now: float, crash_limit: int | None) -> bool:
        """One running row back to the queue (False) or failed over the crash limit (True)."""
        job_id, message = row["id"], lease_message(row["node"])
        if row["node"] is None or (row["node"] == self.node and self._joined is not None):
            message = INTERRUPTED  # this node's own leftover, or one copied from SQLite
        conn.execute(
            sql(f"UPDATE claims SET ended_at = {DB_NOW}, outcome = 'expired', lease_until = ? "
                "WHERE id = ?"),
            (row["lease_until"], row["fence"]),
        )  # fmt: skip
        # The token is void: the node that held it is told its claim was lost, whatever
        # becomes of the row (queued, failed, claimed again).
        conn.execute("UPDATE jobs SET fence = NULL WHERE id = %s", (job_id,))
        if row["staged"] is not None:
            conn.execute(
                sql("UPDATE jobs SET state = 'queued', not_before = ?, updated_at = ?, "
                    "worker = NULL, last_error = ? WHERE id = ?"),
                (now, now, f"{message}; its outputs were written: the next claim publishes them",
                 job_id),
            )  # fmt: skip
            return False
        crashes = row["crashes"] + 1
        if crash_limit is not None and crashes >= crash_limit:
            conn.execute(
                sql("UPDATE jobs SET state = 'failed', attempts = attempts + 1, crashes = ?, "
                    "finished_at = ?, updated_at = ?, worker = NULL, last_error = ?, "
                    "error_kind = 'permanent' WHERE id = ?"),
                (crashes, now, now, crash_message(crashes), job_id),
            )  # fmt: skip
            return True
        conn.execute(
            sql("UPDATE jobs SET state = 'queued', attempts = attempts + 1, crashes = ?, "
                "not_before = ?, updated_at = ?, worker = NULL, progress = 0, last_error = ?, "
                "error_kind = 'transient' WHERE id = ?"),
            (crashes, now, now, message, job_id),
        )  # fmt: skip
        return False

    def staged_jobs(self) -> list[Job]:
        """Jobs whose outputs were staged and not yet published (running or reclaimed)."""
        rows = self._read(
            "SELECT * FROM jobs WHERE staged IS NOT NULL AND state IN ('running', 'queued') "
            "ORDER BY id"
        )
        return [Job.from_row(r) for r in rows]

    def pending_source_actions(self) -> list[Job]:
        """Done jobs whose on_success action is still to do, of this node or of dead ones."""
        rows = self._read(
            "SELECT * FROM jobs WHERE source_action IS NOT NULL AND (node IS NULL OR node = ? "
            "OR node NOT IN (SELECT name FROM nodes WHERE heartbeat_at > "
            f"{DB_NOW} - ?)) ORDER BY id",
            (self.node, self.lease_seconds),
        )
        return [Job.from_row(r) for r in rows]

    # --- the operator's and the service's housekeeping ---

    def retry(self, paths: Sequence[str] | None = None, *, now: float | None = None) -> int:
        """Failed versions (all, or of these paths / below these folders) → queued afresh;
        skipped ones too when paths are named (looked at again when their job starts)."""
        now = _now(now)
        parts = [path_filter(p) for p in paths] if paths is not None else [("TRUE", [])]
        where = " OR ".join(w for w, _ in parts) or "FALSE"
        params = [x for _, ps in parts for x in ps]
        with self._write("retry") as conn:
            count = conn.execute(
                sql("UPDATE jobs SET state = 'queued', attempts = 0, not_before = ?, "
                    f"updated_at = ?, finished_at = NULL, worker = NULL "
                    f"WHERE (state = 'failed' OR (state = 'skipped' AND ?)) AND ({where})"),
                (now, now, paths is not None, *params),
            ).rowcount  # fmt: skip
        log.info("jobs_retried", count=count)
        return count

    def fail_incomplete(self, older_than: float, now: float | None = None) -> list[Job]:
        """Incomplete versions unchanged since ``older_than`` fail: the copy never finished."""
        now = _now(now)
        with self._write("fail stale incomplete files") as conn:
            rows = conn.execute(
                sql("UPDATE jobs SET state = 'failed', finished_at = ?, updated_at = ?, "
                    "last_error = 'still incomplete after waiting: ' || coalesce(last_error, ''),"
                    " error_kind = 'permanent' WHERE state = 'incomplete' AND updated_at <= ? "
                    "RETURNING *"),
                (now, now, older_than),
            ).fetchall()  # fmt: skip
        jobs = sorted((Job.from_row(r) for r in rows), key=lambda j: j.id)
        if jobs:
            log.warning("incomplete_files_failed", count=len(jobs))
        return jobs

    def previous_done(self, path: str, before_id: int) -> Job | None:
        """The newest done version of ``path`` older than job ``before_id``."""
        rows = self._read(
            "SELECT * FROM jobs WHERE path = ? AND state = 'done' AND id != ? "
            "ORDER BY finished_at DESC, id DESC LIMIT 1",
            (os.fsencode(path), before_id),
        )
        return Job.from_row(rows[0]) if rows else None

    def active_in_folder(self, folder: str) -> int:
        """Versions waiting or running directly in ``folder`` (inbox-relative, '' = inbox)."""
        prefix = os.fsencode(folder.rstrip("/") + "/") if folder not in ("", ".") else b""
        rows = self._read(
            "SELECT path FROM jobs WHERE state IN ('queued', 'running', 'incomplete') "
            "AND path >= ? AND path < ?",
            (prefix, prefix + b"\xff"),
        )
        return sum(1 for (p,) in rows if b"/" not in bytes(p)[len(prefix) :])
