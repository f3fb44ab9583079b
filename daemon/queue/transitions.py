"""The worker's side of the ledger: claim, progress, the two-phase commit, outcomes, recovery.

A mixin of :class:`~daemon.queue.store.Ledger` (which supplies ``_write``, ``_read``,
``_job`` and ``_running``). Every transition is one ``BEGIN IMMEDIATE`` transaction.

A job's outputs are committed in two phases, so that a kill at any moment neither loses
them nor runs the engine again: the worker writes them to temp files, records them here
(:meth:`Transitions.stage`), renames them into place, then records the job done
(:meth:`Transitions.complete`). At start-up the service finishes what was staged
(:meth:`Transitions.staged_jobs`) before anything else. The on_success action is recorded
with ``done`` and cleared once carried out (:meth:`Transitions.source_done`), so a crash in
between is finished at the next start too.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Collection, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import structlog

from daemon.queue.job import Job, path_filter
from daemon.queue.policy import INTERRUPTED, RetryPolicy
from daemon.queue.scheduling import next_job

log = structlog.get_logger(__name__)


def _now(now: float | None) -> float:
    return time.time() if now is None else now


@dataclass(frozen=True)
class Recovery:
    """What :meth:`Transitions.recover` did with the jobs a stopped service left running."""

    requeued: list[Job]
    failed: list[Job]  # over the crash limit: the caller writes their .error.txt

    def __len__(self) -> int:
        return len(self.requeued) + len(self.failed)


def crash_message(times: int) -> str:
    """The error of a job given up because the service kept stopping while it ran."""
    return (
        f"the service stopped while transcribing this file {times} times (out of memory, a "
        "crash or a hang in the decoder or the engine?); it is not tried again by itself"
    )


class Transitions:
    """Worker-side transitions; the host class supplies the plumbing."""

    def _write(self, op: str) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        raise NotImplementedError

    def _job(self, conn: sqlite3.Connection, job_id: int) -> Job:
        raise NotImplementedError

    def _running(self, conn: sqlite3.Connection, job_id: int, op: str) -> Job:
        raise NotImplementedError

    # --- start-up ---

    def recover(self, now: float | None = None, *, crash_limit: int | None = None) -> Recovery:
        """Running rows are a stopped service's leftovers: back to the queue, or failed.

        Each counts an attempt and a crash; with ``crash_limit``, a job that has now been
        interrupted that many times fails (a file that takes the service down every time).
        """
        now = _now(now)
        with self._write("recover") as conn:
            rows = conn.execute("SELECT * FROM jobs WHERE state = 'running'").fetchall()
            requeued, failed = [], []
            for row in rows:
                crashes = row["crashes"] + 1
                if crash_limit is not None and crashes >= crash_limit:
                    conn.execute(
                        "UPDATE jobs SET state = 'failed', attempts = attempts + 1, crashes = ?, "
                        "finished_at = ?, updated_at = ?, worker = NULL, staged = NULL, "
                        "last_error = ?, error_kind = 'permanent' WHERE id = ?",
                        (crashes, now, now, crash_message(crashes), row["id"]),
                    )
                    failed.append(self._job(conn, row["id"]))
                else:
                    conn.execute(
                        "UPDATE jobs SET state = 'queued', attempts = attempts + 1, crashes = ?, "
                        "not_before = ?, updated_at = ?, worker = NULL, progress = 0, "
                        "staged = NULL, last_error = ?, error_kind = 'transient' WHERE id = ?",
                        (crashes, now, now, INTERRUPTED, row["id"]),
                    )
                    requeued.append(self._job(conn, row["id"]))
        if rows:
            log.warning("jobs_recovered", requeued=len(requeued), failed=len(failed),
                        reason=INTERRUPTED)  # fmt: skip
        return Recovery(requeued, failed)

    def staged_jobs(self) -> list[Job]:
        """Running jobs whose outputs were staged: the commit to finish at start-up."""
        rows = self._read("SELECT * FROM jobs WHERE state = 'running' AND staged IS NOT NULL")
        return [Job.from_row(r) for r in rows]

    def pending_source_actions(self) -> list[Job]:
        """Done jobs whose on_success action was not carried out yet."""
        rows = self._read("SELECT * FROM jobs WHERE source_action IS NOT NULL ORDER BY id")
        return [Job.from_row(r) for r in rows]

    # --- one job ---

    def claim(
        self,
        worker: str,
        *,
        loaded_models: Collection[str] = (),
        now: float | None = None,
        affinity_seconds: float = 0.0,
        order: str = "oldest",
        serves: Collection[str] = (),
    ) -> Job | None:
        """Take the next job (see the module's scheduling rule), or None when none is ready."""
        now = _now(now)
        with self._write("claim") as conn:
            chosen = next_job(conn, now, loaded_models, affinity_seconds, order, serves)
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

    def stage(self, job_id: int, record: dict[str, Any], now: float | None = None) -> None:
        """Record the outputs written to temp files, before they are renamed into place."""
        now = _now(now)
        with self._write("stage outputs") as conn:
            self._running(conn, job_id, "stage outputs for")
            conn.execute(
                "UPDATE jobs SET staged = ?, updated_at = ? WHERE id = ?",
                (json.dumps(record), now, job_id),
            )

    def complete(
        self,
        job_id: int,
        *,
        outputs: Sequence[str],
        audio_seconds: float,
        processing_seconds: float,
        language: str | None,
        source_action: str | None = None,
        now: float | None = None,
    ) -> Job:
        """A running job succeeded → done (with the on_success action still to do, if any)."""
        now = _now(now)
        with self._write("complete") as conn:
            self._running(conn, job_id, "complete")
            conn.execute(
                "UPDATE jobs SET state = 'done', finished_at = ?, updated_at = ?, outputs = ?, "
                "audio_seconds = ?, processing_seconds = ?, language = ?, progress = 1, "
                "last_error = NULL, error_kind = NULL, staged = NULL, source_action = ? "
                "WHERE id = ?",
                (now, now, json.dumps(list(outputs)), audio_seconds, processing_seconds,
                 language, source_action, job_id),
            )  # fmt: skip
            return self._job(conn, job_id)

    def source_done(self, job_id: int, now: float | None = None) -> None:
        """The on_success action was carried out (or is moot): forget it."""
        now = _now(now)
        with self._write("clear the source action") as conn:
            conn.execute(
                "UPDATE jobs SET source_action = NULL, updated_at = ? WHERE id = ?",
                (now, job_id),
            )

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
                "updated_at = ?, worker = NULL, staged = NULL, last_error = ?, error_kind = ? "
                "WHERE id = ?",
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
                "worker = NULL, progress = 0, staged = NULL, last_error = ?, error_kind = NULL "
                "WHERE id = ?",
                (now, now, reason, job_id),
            )
        log.info("job_requeued", job=job_id, reason=reason)

    def abandon(self, job_id: int, *, state: str, reason: str, now: float | None = None) -> None:
        """A running job whose source vanished ('gone') or changed ('superseded') before it
        ran, or that needs no transcript ('skipped': the video has subtitles already)."""
        if state not in ("gone", "superseded", "skipped"):
            raise ValueError(f"abandon: state must be gone, superseded or skipped, not {state!r}")
        now = _now(now)
        with self._write("abandon") as conn:
            self._running(conn, job_id, "abandon")
            conn.execute(
                "UPDATE jobs SET state = ?, finished_at = ?, updated_at = ?, worker = NULL, "
                "last_error = ? WHERE id = ?",
                (state, now, now, reason, job_id),
            )
        log.info("job_abandoned", job=job_id, state=state, reason=reason)

    # --- the operator's and the service's housekeeping ---

    def retry(self, paths: Sequence[str] | None = None, *, now: float | None = None) -> int:
        """Failed versions (all, or of these paths / below these folders) → queued afresh;
        skipped ones too when paths are named (they are looked at again when their job
        starts: still subtitled, they are skipped again)."""
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
                f"WHERE (state = 'failed' OR (state = 'skipped' AND ?)) AND ({where})",
                (now, now, paths is not None, *params),
            ).rowcount
        log.info("jobs_retried", count=count)
        return count

    def fail_incomplete(self, older_than: float, now: float | None = None) -> list[Job]:
        """Incomplete versions unchanged since ``older_than`` fail: the copy never finished."""
        now = _now(now)
        with self._write("fail stale incomplete files") as conn:
            rows = conn.execute(
                "SELECT id, last_error FROM jobs WHERE state = 'incomplete' AND updated_at <= ?",
                (older_than,),
            ).fetchall()
            for row in rows:
                conn.execute(
                    "UPDATE jobs SET state = 'failed', finished_at = ?, updated_at = ?, "
                    "last_error = ?, error_kind = 'permanent' WHERE id = ?",
                    (now, now, f"still incomplete after waiting: {row['last_error']}", row["id"]),
                )
            jobs = [self._job(conn, row["id"]) for row in rows]
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
        return sum(1 for (p,) in rows if b"/" not in p[len(prefix) :])
