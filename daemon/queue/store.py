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
  :mod:`daemon.queue.policy`.

Concurrency: one connection per :class:`Ledger`, opened with ``check_same_thread=False``
and used under one ``threading.Lock`` (worker threads share it). Writes are ``BEGIN
IMMEDIATE`` transactions, so writers in other processes (``whisperd retry``) queue behind
``busy_timeout``; WAL lets readers (``whisperd status``, ``readonly=True``) read while the
service writes.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog

from daemon.errors import LedgerError
from daemon.queue.job import Job, inode_from_db, path_filter, version_key
from daemon.queue.policy import INTERRUPTED, RetryPolicy
from daemon.queue.reports import Reports
from daemon.queue.scheduling import next_job
from daemon.queue.schema import CORRUPT_HINT, FILENAME, connect
from daemon.queue.versions import enqueue_one
from daemon.version import Fingerprint

log = structlog.get_logger(__name__)


def _now(now: float | None) -> float:
    return time.time() if now is None else now


class Ledger(Reports):
    """The durable job queue in ``<state_dir>/ledger.sqlite3`` (pass the file's path)."""

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
    ) -> Job | None:
        """Queue a version; None when it is already known (queued/running/done/failed).

        Older queued or failed versions of the path become superseded; a running one is
        left to finish and this version waits for it.
        """
        now = _now(now)
        with self._write("enqueue") as conn:
            job_id = enqueue_one(conn, path, fp, model, settings_json, now)
            job = None if job_id is None else self._job(conn, job_id)
        if job is not None:
            log.info("job_enqueued", job=job.id, path=path, model=model)
        return job

    def enqueue_many(
        self,
        versions: Iterable[tuple[str, Fingerprint]],
        *,
        model: str,
        settings_json: str,
        now: float | None = None,
    ) -> int:
        """:meth:`enqueue` for many versions in one transaction (one fsync, for a first scan).

        Returns how many were queued.
        """
        now = _now(now)
        with self._write("enqueue") as conn:
            count = sum(
                enqueue_one(conn, path, fp, model, settings_json, now) is not None
                for path, fp in versions
            )
        log.info("jobs_enqueued", count=count, model=model)
        return count

    def is_known(self, path: str, fp: Fingerprint) -> bool:
        """True when this version is queued, running, done or failed (one indexed lookup)."""
        rows = self._read(
            "SELECT 1 FROM jobs WHERE path = ? AND size = ? AND mtime_ns = ? AND inode IS ? "
            "AND state IN ('queued', 'running', 'done', 'failed')",
            version_key(path, fp),
        )
        return bool(rows)

    def known_versions(self, under: str = "") -> set[tuple[str, Fingerprint]]:
        """Every known ``(path, fingerprint)``, optionally only in folder ``under``.

        For a start-up scan: one query, then set lookups.
        """
        where, params = path_filter(under)
        rows = self._read(
            f"SELECT path, size, mtime_ns, inode FROM jobs WHERE {where} "
            "AND state IN ('queued', 'running', 'done', 'failed')",
            params,
        )
        return {(os.fsdecode(p), Fingerprint(s, m, inode_from_db(i))) for p, s, m, i in rows}

    def mark_gone(self, path: str, now: float | None = None) -> int:
        """The file vanished: its queued versions become gone. Returns how many."""
        now = _now(now)
        with self._write("mark gone") as conn:
            count = conn.execute(
                "UPDATE jobs SET state = 'gone', updated_at = ?, finished_at = ? "
                "WHERE path = ? AND state = 'queued'",
                (now, now, os.fsencode(path)),
            ).rowcount
        if count:
            log.info("job_gone", path=path, count=count)
        return count

    # --- the worker's side ---

    def recover(self, now: float | None = None, *, crash_limit: int | None = None) -> int:
        """At start-up: running rows are a crash's leftovers → queued, attempts + 1.

        With ``crash_limit``, a job whose attempts reach it fails instead (a file that
        takes the service down every time). Returns how many rows were recovered.
        """
        now = _now(now)
        with self._write("recover") as conn:
            failed = 0
            if crash_limit is not None:
                failed = conn.execute(
                    "UPDATE jobs SET state = 'failed', attempts = attempts + 1, finished_at = ?, "
                    "updated_at = ?, worker = NULL, last_error = ?, error_kind = 'permanent' "
                    "WHERE state = 'running' AND attempts + 1 >= ?",
                    (now, now, f"{INTERRUPTED} (given up after {crash_limit} times)",
                     crash_limit),
                ).rowcount  # fmt: skip
            count = (
                failed
                + conn.execute(
                    "UPDATE jobs SET state = 'queued', attempts = attempts + 1, not_before = ?, "
                    "updated_at = ?, worker = NULL, progress = 0, last_error = ?, "
                    "error_kind = 'transient' WHERE state = 'running'",
                    (now, now, INTERRUPTED),
                ).rowcount
            )
        if count:
            log.warning("jobs_recovered", count=count, failed=failed, reason=INTERRUPTED)
        return count

    def claim(
        self,
        worker: str,
        *,
        loaded_models: Collection[str] = (),
        now: float | None = None,
        affinity_seconds: float = 0.0,
    ) -> Job | None:
        """Take the next job (see the module's scheduling rule), or None when none is ready."""
        now = _now(now)
        with self._write("claim") as conn:
            chosen = next_job(conn, now, loaded_models, affinity_seconds)
            if chosen is None:
                return None
            conn.execute(
                "UPDATE jobs SET state = 'running', started_at = ?, updated_at = ?, "
                "worker = ?, progress = 0 WHERE id = ?",
                (now, now, worker, chosen),
            )
            job = self._job(conn, chosen)
        log.info("job_claimed", job=job.id, path=job.path, worker=worker, model=job.model)
        return job

    def set_progress(self, job_id: int, fraction: float, now: float | None = None) -> bool:
        """Record progress (clamped to 0..1) of a running job; False if it is not running."""
        now = _now(now)
        fraction = min(1.0, max(0.0, fraction))
        with self._write("set progress") as conn:
            return (
                conn.execute(
                    "UPDATE jobs SET progress = ?, updated_at = ? "
                    "WHERE id = ? AND state = 'running'",
                    (fraction, now, job_id),
                ).rowcount
                == 1
            )

    def complete(
        self,
        job_id: int,
        *,
        outputs: Sequence[str],
        audio_seconds: float,
        processing_seconds: float,
        language: str | None,
        now: float | None = None,
    ) -> Job:
        """A running job succeeded → done."""
        now = _now(now)
        with self._write("complete") as conn:
            self._running(conn, job_id, "complete")
            conn.execute(
                "UPDATE jobs SET state = 'done', finished_at = ?, updated_at = ?, outputs = ?, "
                "audio_seconds = ?, processing_seconds = ?, language = ?, progress = 1, "
                "last_error = NULL, error_kind = NULL WHERE id = ?",
                (now, now, json.dumps(list(outputs)), audio_seconds, processing_seconds,
                 language, job_id),
            )  # fmt: skip
            return self._job(conn, job_id)

    def fail(
        self,
        job_id: int,
        *,
        error: str,
        transient: bool,
        policy: RetryPolicy,
        now: float | None = None,
    ) -> str:
        """A running job failed: 'queued' again after a backoff, or 'failed' for good."""
        now = _now(now)
        kind = "transient" if transient else "permanent"
        with self._write("record failure") as conn:
            attempts = self._running(conn, job_id, "fail").attempts + 1
            decision = policy.after_failure(attempts, transient)
            finished = now if decision.state == "failed" else None
            conn.execute(
                "UPDATE jobs SET state = ?, attempts = ?, not_before = ?, finished_at = ?, "
                "updated_at = ?, worker = NULL, last_error = ?, error_kind = ? WHERE id = ?",
                (decision.state, attempts, now + decision.delay, finished, now, error, kind,
                 job_id),
            )  # fmt: skip
        log.warning(
            "job_failed", job=job_id, state=decision.state, attempts=attempts,
            limit=decision.limit, error_kind=kind, error=error, retry_in=decision.delay,
        )  # fmt: skip
        return decision.state

    def requeue(self, job_id: int, *, reason: str, now: float | None = None) -> None:
        """Put a running job back in the queue without counting an attempt (shutdown)."""
        now = _now(now)
        with self._write("requeue") as conn:
            self._running(conn, job_id, "requeue")
            conn.execute(
                "UPDATE jobs SET state = 'queued', not_before = ?, updated_at = ?, "
                "worker = NULL, progress = 0, last_error = ?, error_kind = NULL WHERE id = ?",
                (now, now, reason, job_id),
            )
        log.info("job_requeued", job=job_id, reason=reason)

    def abandon(self, job_id: int, *, state: str, reason: str, now: float | None = None) -> None:
        """A running job whose source vanished ('gone') or changed ('superseded') before it ran."""
        if state not in ("gone", "superseded"):
            raise ValueError(f"abandon: state must be gone or superseded, not {state!r}")
        now = _now(now)
        with self._write("abandon") as conn:
            self._running(conn, job_id, "abandon")
            conn.execute(
                "UPDATE jobs SET state = ?, finished_at = ?, updated_at = ?, worker = NULL, "
                "last_error = ? WHERE id = ?",
                (state, now, now, reason, job_id),
            )
        log.info("job_abandoned", job=job_id, state=state, reason=reason)

    def retry(self, paths: Sequence[str] | None = None, *, now: float | None = None) -> int:
        """Failed versions (all, or of these paths / below these folders) → queued afresh."""
        now = _now(now)
        if paths is None:
            where, params = "1", []
        else:
            parts = [path_filter(p) for p in paths]
            where = " OR ".join(w for w, _ in parts) or "0"
            params = [x for _, ps in parts for x in ps]
        with self._write("retry") as conn:
            count = conn.execute(
                "UPDATE jobs SET state = 'queued', attempts = 0, not_before = ?, "
                "updated_at = ?, finished_at = NULL, worker = NULL "
                f"WHERE state = 'failed' AND ({where})",
                (now, now, *params),
            ).rowcount
        log.info("jobs_retried", count=count)
        return count


def open_ledger(state_dir: Path, *, readonly: bool = False) -> Ledger:
    """The ledger of a state_dir: ``<state_dir>/ledger.sqlite3``."""
    return Ledger(Path(state_dir) / FILENAME, readonly=readonly)
