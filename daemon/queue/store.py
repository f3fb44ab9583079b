"""The job ledger: a durable queue of transcription jobs in SQLite.

One row per *version* of a source file (:mod:`daemon.version`). States::

    queued ──claim──▶ running ──complete──▶ done
      ▲  ▲              │ │ └──fail (attempts left)──▶ queued (not_before = now + backoff)
      │  └──requeue─────┘ └────fail (no attempts left)─▶ failed ──retry──▶ queued
      └──recover (a crash: attempts + 1)
    queued/failed ──a newer version of the path──▶ superseded
    queued ──mark_gone──▶ gone;  running ──abandon──▶ gone | superseded (source vanished or changed)

Rules:

* **A version is transcribed once.** :meth:`Ledger.enqueue` returns None for a version in
  state queued, running, done or failed. A *superseded* or *gone* version that shows up
  again (a file moved out and back, a reverted file) is revived as a fresh queued job,
  because nothing was ever transcribed from it; :meth:`Ledger.is_known` is False for them.
* **One running job per path**, enforced by a partial unique index; a new version waits
  until the older running version finishes (claim skips paths with a running row).
* **Scheduling**: :mod:`daemon.queue.scheduling`. **Failures and crashes**:
  :mod:`daemon.queue.policy`. The worker's transitions are :mod:`daemon.queue.transitions`.

Concurrency: one connection per :class:`Ledger`, opened with ``check_same_thread=False``
and used under one ``threading.Lock`` (worker threads share it). Writes are ``BEGIN
IMMEDIATE`` transactions, so writers in other processes (``whisperd retry``) queue behind
``busy_timeout``; WAL lets readers (``whisperd status``, ``readonly=True``) read while the
service writes.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog

from daemon.errors import LedgerError
from daemon.queue.deliveries import Deliveries
from daemon.queue.housekeeping import Housekeeping
from daemon.queue.job import KNOWN_STATES, Job, inode_from_db, path_filter, version_key
from daemon.queue.nodes import NodeInfo, NodeStatus
from daemon.queue.reports import Reports
from daemon.queue.schema import CORRUPT_HINT, FILENAME, connect
from daemon.queue.transitions import Transitions
from daemon.queue.versions import NewVersion, enqueue_one
from daemon.version import Fingerprint

log = structlog.get_logger(__name__)

KNOWN_SQL = "(" + ", ".join(f"'{s}'" for s in KNOWN_STATES) + ")"


def _now(now: float | None) -> float:
    return time.time() if now is None else now


class Ledger(Transitions, Reports, Housekeeping):
    """The durable job queue in ``<state_dir>/ledger.sqlite3`` (pass the file's path).

    One node: the state_dir lock makes this service the only one, so its claims are never
    lost (leases are always valid), it always scans the inbox, and ``recover`` at start-up
    takes back every running row.
    """

    shared = False

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._lock = threading.Lock()
        try:
            self._conn = connect(self.path, readonly=readonly)
        except sqlite3.OperationalError as exc:  # cannot open, locked, I/O: not corruption
            raise LedgerError(
                f"{self.path}: cannot open the ledger ({exc})",
                "check that state_dir is writable by the service user and on a local disk",
            ) from exc
        except sqlite3.DatabaseError as exc:
            raise LedgerError(
                f"{self.path}: not a usable whisperd ledger ({exc})", CORRUPT_HINT
            ) from exc
        self.deliveries = Deliveries(self)  # the notification queue, on this connection

    # --- plumbing ---

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _write(self, op: str) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction under the lock; sqlite errors → LedgerError."""
        if self.readonly:
            raise LedgerError(f"{self.path}: opened read-only, cannot {op}")
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise LedgerError(f"{self.path}: {op} failed: {exc}") from exc

    @contextmanager
    def _vacuum(self) -> Iterator[sqlite3.Connection]:
        """The connection under the lock, outside any transaction (for ``VACUUM``)."""
        if self.readonly:
            raise LedgerError(f"{self.path}: opened read-only, cannot vacuum")
        with self._lock:
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise LedgerError(f"{self.path}: vacuum failed: {exc}") from exc

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise LedgerError(f"{self.path}: query failed: {exc}") from exc

    @staticmethod
    def _job(conn: sqlite3.Connection, job_id: int) -> Job:
        row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise LedgerError(f"no job {job_id} in the ledger")
        return Job.from_row(row)

    def _running(self, conn: sqlite3.Connection, job_id: int, op: str) -> Job:
        job = self._job(conn, job_id)
        if job.state != "running":
            raise LedgerError(f"cannot {op} job {job_id}: it is {job.state}, not running")
        return job

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
        """Record a version; None when it is already known.

        Older queued, failed, incomplete or skipped versions of the path become superseded;
        a running one is left to finish and this version waits for it. ``state`` may also
        be ``incomplete``, ``failed`` or ``skipped``, with a ``reason``.
        """
        jobs = self.enqueue_batch(
            [NewVersion(path, fp, model, settings_json, state, reason)], now=now
        )
        return jobs[0] if jobs else None

    def enqueue_batch(
        self, versions: Sequence[NewVersion], *, now: float | None = None
    ) -> list[Job]:
        """Record many versions in one transaction (one fsync): the jobs that were new."""
        now = _now(now)
        with self._write("enqueue") as conn:
            ids = [enqueue_one(conn, new, now) for new in versions]
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
            count = sum(
                enqueue_one(conn, NewVersion(path, fp, model, settings_json), now) is not None
                for path, fp in versions
            )
        log.info("jobs_enqueued", count=count, model=model)
        return count

    def is_known(self, path: str, fp: Fingerprint) -> bool:
        """True when this version is recorded in a state that keeps it from being queued."""
        rows = self._read(
            "SELECT 1 FROM jobs WHERE path = ? AND size = ? AND mtime_ns = ? AND inode IS ? "
            f"AND state IN {KNOWN_SQL}",
            version_key(path, fp),
        )
        return bool(rows)

    def known_versions(self, under: str = "") -> set[tuple[str, Fingerprint]]:
        """Every known ``(path, fingerprint)``, optionally only in folder ``under``.

        For a full scan: one query, then set lookups.
        """
        where, params = path_filter(under)
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
                "SELECT * FROM jobs WHERE path = ? AND state IN "
                "('queued', 'incomplete', 'failed', 'skipped')",
                (os.fsencode(path),),
            ).fetchall()
            conn.execute(
                "UPDATE jobs SET state = 'gone', updated_at = ?, finished_at = ? "
                "WHERE path = ? AND state IN ('queued', 'incomplete', 'failed', 'skipped')",
                (now, now, os.fsencode(path)),
            )
        if rows:
            log.info("job_gone", path=path, count=len(rows))
        return [Job.from_row(r) for r in rows if r["state"] == "failed"]

    # --- one node: nothing to share ---

    def join(self, info: NodeInfo) -> None:
        """Nothing to register: the state_dir lock already makes this service the only one."""

    def leave(self) -> None:
        """Nothing to unregister."""

    def renew(self, job_ids: Iterable[int], now: float | None = None) -> set[int]:
        """Leases never run out on one node: nothing is lost."""
        return set()

    def holds(self, job_id: int) -> bool:
        """A claim on one node is held until its outcome is recorded."""
        return True

    def lead(self) -> bool:
        """The only node scans the inbox."""
        return True

    def nodes(self) -> list[NodeStatus]:
        """No node list on SQLite (``whisperd status`` shows the service's own state)."""
        return []

    # --- what the service remembers and shows ---

    def get_meta(self, key: str) -> str | None:
        """A value of the service's key-value table, or None."""
        rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str, now: float | None = None) -> None:
        """Set a value of the service's key-value table."""
        now = _now(now)
        with self._write("set meta") as conn:
            conn.execute(
                "INSERT INTO meta (key, value, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
                "updated_at = excluded.updated_at",
                (key, value, now),
            )


def open_sqlite(state_dir: Path, *, readonly: bool = False) -> Ledger:
    """The SQLite ledger of a state_dir: ``<state_dir>/ledger.sqlite3``."""
    return Ledger(Path(state_dir) / FILENAME, readonly=readonly)
