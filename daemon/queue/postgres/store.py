"""The job ledger in PostgreSQL, shared by several whisperd services (nodes).

The same rules as the SQLite ledger (:mod:`daemon.queue.store`: one row per version,
supersede and revive, one running row per path, oldest first with model affinity, the
retry policy of :mod:`daemon.queue.policy`, the crash limit, the two-phase commit), and
what several servers need on top:

* **Claims are leases.** :meth:`PgTransitions.claim` takes the next job in one transaction
  (``FOR UPDATE SKIP LOCKED``) and gives it a lease of ``ledger.lease_seconds`` by the
  database's clock and a fencing token (the claim's id). The node renews its leases
  (:meth:`PgNodes.renew`, a thread of the service); every later write about the job
  carries the token and is refused once the lease ran out or another node claimed the job
  (:class:`~daemon.errors.LeaseLostError`).
* **Reclaims.** :meth:`PgUpkeep.recover`, run by every node every few seconds, puts
  jobs whose lease ran out back in the queue (a crash counted, the crash limit applied)
  and also, at once, the jobs this node's previous run left behind.
* **Intake.** Enqueueing is idempotent and serialised (:mod:`.intake`); one node at a
  time scans the inbox (:meth:`PgNodes.lead`, an advisory lock).

The token of each claim this process holds lives in ``self._held`` (job id → token), so
the worker's calls keep the interface of :class:`~daemon.queue.interface.JobStore`.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any

import structlog

from daemon.errors import LedgerError
from daemon.queue.job import KNOWN_STATES, Job, inode_from_db, version_key
from daemon.queue.postgres import intake
from daemon.queue.postgres.connection import Link, Row, sql
from daemon.queue.postgres.deliveries import SharedDeliveries
from daemon.queue.postgres.housekeeping import PgHousekeeping
from daemon.queue.postgres.nodes import PgNodes
from daemon.queue.postgres.transitions import PgTransitions
from daemon.queue.postgres.upkeep import PgUpkeep
from daemon.queue.reports import Reports
from daemon.queue.versions import NewVersion
from daemon.version import Fingerprint

log = structlog.get_logger(__name__)

KNOWN_SQL = "(" + ", ".join(f"'{s}'" for s in KNOWN_STATES) + ")"


def _now(now: float | None) -> float:
    return time.time() if now is None else now


class PgLedger(PgTransitions, PgUpkeep, PgHousekeeping, PgNodes, Reports):
    """The ledger in the PostgreSQL database at ``dsn``, as node ``node``."""

    shared = True

    def __init__(
        self,
        dsn: str,
        *,
        node: str | None = None,
        lease_seconds: float = 60.0,
        readonly: bool = False,
    ) -> None:
        self.node = node or socket.gethostname()
        self.lease_seconds = float(lease_seconds)
        self.readonly = readonly
        self._held: dict[int, int] = {}  # job id -> fencing token of this process's claims
        self._lost: dict[int, int] = {}  # claims found lost by renew(), until next touched
        self._held_lock = threading.Lock()
        self._joined: dict[str, Any] | None = None
        self._leading_generation = -1
        self.link = Link(dsn, application_name=f"whisperd {self.node}"[:63],
                         migrate_schema=not readonly,
                         idle_in_transaction=self.lease_seconds)  # fmt: skip
        self.link.on_connect = self._on_connect
        self.deliveries = SharedDeliveries(self, self.lead)  # stored by all, sent by one

    @property
    def path(self) -> str:
        """Where the ledger is, for messages (never the password)."""
        return f"postgresql {self.link.where}"

    # --- plumbing ---

    def close(self) -> None:
        """Leave the cluster (if joined) and close the connection (idempotent)."""
        try:
            self.leave()
        except LedgerError as err:
            log.warning("ledger_leave_failed", error=str(err))
        self.link.close()

    def __enter__(self) -> PgLedger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _write(self, op: str) -> Any:
        if self.readonly:
            raise LedgerError(f"{self.path}: opened read-only, cannot {op}")
        return self.link.transaction(op)

    def _read(self, query: str, params: Sequence[Any] = ()) -> list[Row]:
        return self.link.read(query, params)

    def _index(self, name: str) -> str:
        """No index hints on PostgreSQL (the planner has statistics; see Reports)."""
        return ""

    @staticmethod
    def _job(conn: Any, job_id: int) -> Job:
        row = conn.execute("SELECT * FROM jobs WHERE id = %s", (job_id,)).fetchone()
        if row is None:
            raise LedgerError(f"no job {job_id} in the ledger")
        return Job.from_row(row)

    # --- intake ---

    def enqueue(
        self,
        path: str,
        fp: Fingerprint,
        *,
        model: str,
        settings_json: str,
        now: float | None = None,
        state: str = "queued",
        reason: str | None = None,
    ) -> Job | None:
        """Record a version; None when it is already known (see :mod:`.intake`)."""
        jobs = self.enqueue_batch(
            [NewVersion(path, fp, model, settings_json, state, reason)], now=now
        )
        return jobs[0] if jobs else None

    def enqueue_batch(
        self, versions: Sequence[NewVersion], *, now: float | None = None
    ) -> list[Job]:
        """Record many versions in one transaction: the jobs that were new."""
        now = _now(now)
        with self._write("enqueue") as conn:
            intake.lock_intake(conn)
            ids = [intake.enqueue_one(conn, new, now) for new in versions]
            jobs = [self._job(conn, job_id) for job_id in ids if job_id is not None]
        for job in jobs:
            log.info("job_enqueued", job=job.id, path=job.path, model=job.model, state=job.state)
        return jobs

    def enqueue_many(
        self,
        versions: Iterable[tuple[str, Fingerprint]],
        *,
        model: str,
        settings_json: str,
        now: float | None = None,
    ) -> int:
        """Queue many versions with the same settings in one transaction; how many were new."""
        now = _now(now)
        with self._write("enqueue") as conn:
            intake.lock_intake(conn)
            count = sum(
                intake.enqueue_one(conn, NewVersion(path, fp, model, settings_json), now)
                is not None
                for path, fp in versions
            )
        log.info("jobs_enqueued", count=count, model=model)
        return count

    def is_known(self, path: str, fp: Fingerprint) -> bool:
        """True when this version is recorded in a state that keeps it from being queued."""
        rows = self._read(
            f"SELECT 1 FROM jobs WHERE {intake.same_version_sql()} AND state IN {KNOWN_SQL}",
            version_key(path, fp),
        )
        return bool(rows)

    def known_versions(self, under: str = "") -> set[tuple[str, Fingerprint]]:
        """Every known ``(path, fingerprint)``, optionally only in folder ``under``."""
        where, params = intake.path_filter(under)
        rows = self._read(
            f"SELECT path, size, mtime_ns, inode FROM jobs WHERE {where} AND state IN {KNOWN_SQL}",
            params,
        )
        return {(os.fsdecode(p), Fingerprint(s, m, inode_from_db(i))) for p, s, m, i in rows}

    def mark_gone(self, path: str, now: float | None = None) -> list[Job]:
        """The file vanished: its waiting, incomplete and failed versions become gone.

        Returns the versions that had failed (their ``.error.txt`` is stale now).
        """
        now = _now(now)
        with self._write("mark gone") as conn:
            rows = conn.execute(
                sql("SELECT * FROM jobs WHERE path = ? AND state IN "
                    "('queued', 'incomplete', 'failed', 'skipped') FOR UPDATE"),
                (os.fsencode(path),),
            ).fetchall()  # fmt: skip
            conn.execute(
                sql("UPDATE jobs SET state = 'gone', updated_at = ?, finished_at = ? "
                    "WHERE id = ANY(?)"),
                (now, now, [r["id"] for r in rows]),
            )  # fmt: skip
        if rows:
            log.info("job_gone", path=path, count=len(rows))
        return [Job.from_row(r) for r in rows if r["state"] == "failed"]

    # --- what the services remember and show ---

    def get_meta(self, key: str) -> str | None:
        """A value of the key-value table, or None."""
        rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str, now: float | None = None) -> None:
        """Set a value of the key-value table."""
        now = _now(now)
        with self._write("set meta") as conn:
            conn.execute(
                sql("INSERT INTO meta (key, value, updated_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
                    "updated_at = excluded.updated_at"),
                (key, value, now),
            )  # fmt: skip
