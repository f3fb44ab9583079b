"""Read-only questions about the ledger, for ``whisperd status``, health and the tests.

A mixin of both backends (:class:`~daemon.queue.store.Ledger`,
:class:`~daemon.queue.postgres.store.PgLedger`): every query goes through the host's
``_read`` (one lock, errors as LedgerError), so it works on a read-only SQLite connection
while the service writes (WAL). The queries are portable SQL with ``?`` placeholders, which
the PostgreSQL backend translates; its tests run them there too.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from daemon.errors import LedgerError
from daemon.queue.job import STATES, Job


class Reports:
    """Queries over the jobs table; the host class supplies ``_read``."""

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        raise NotImplementedError

    def _index(self, name: str) -> str:
        """SQLite's index hint (the planner picks badly on a skewed ``state``); none elsewhere."""
        return f" INDEXED BY {name}"

    def get(self, job_id: int) -> Job:
        """One job by id; LedgerError when there is none."""
        rows = self._read("SELECT * FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            raise LedgerError(f"no job {job_id} in the ledger")
        return Job.from_row(rows[0])

    def counts(self) -> dict[str, int]:
        """Rows per state, every state present (0 when none)."""
        counts = dict.fromkeys(STATES, 0)
        for state, n in self._read("SELECT state, n FROM job_counts"):  # kept by triggers
            counts[state] = n
        return counts

    def totals(self, state: str = "done") -> tuple[float, float]:
        """Audio and processing seconds of every row in ``state`` (kept by triggers)."""
        rows = self._read(
            "SELECT audio_seconds, processing_seconds FROM job_counts WHERE state = ?", (state,)
        )
        return (float(rows[0][0]), float(rows[0][1])) if rows else (0.0, 0.0)

    def in_state(self, state: str, limit: int = 20) -> list[Job]:
        """Jobs in ``state``, most recently changed first."""
        rows = self._read(
            "SELECT * FROM jobs WHERE state = ? ORDER BY updated_at DESC, id DESC LIMIT ?",
            (state, limit),
        )
        return [Job.from_row(r) for r in rows]

    def unsettled_paths(self) -> set[str]:
        """Paths with a version queued, incomplete, failed or skipped (not running)."""
        rows = self._read(
            "SELECT DISTINCT path FROM jobs WHERE state IN "
            "('queued', 'incomplete', 'failed', 'skipped')"
        )
        return {os.fsdecode(p) for (p,) in rows}

    def running(self) -> list[Job]:
        """Jobs running now, oldest start first."""
        rows = self._read("SELECT * FROM jobs WHERE state = 'running' ORDER BY started_at, id")
        return [Job.from_row(r) for r in rows]

    def recent_failures(self, limit: int = 20) -> list[Job]:
        """Failed jobs, most recent first."""
        rows = self._read(
            "SELECT * FROM jobs" + self._index("jobs_failed") + " WHERE state = 'failed' "
            "ORDER BY finished_at DESC, id DESC LIMIT ?",
            (limit,),
        )
        return [Job.from_row(r) for r in rows]

    def history(self, path: str | None = None) -> list[Job]:
        """Every version (of one path, or of all), oldest first."""
        if path is None:
            rows = self._read("SELECT * FROM jobs ORDER BY id")
        else:
            rows = self._read("SELECT * FROM jobs WHERE path = ? ORDER BY id", (os.fsencode(path),))
        return [Job.from_row(r) for r in rows]

    def latest_per_path(self) -> list[Job]:
        """Each path's newest version (by enqueued_at, id): every file's final state."""
        rows = self._read(
            "SELECT * FROM (SELECT *, row_number() OVER "
            "(PARTITION BY path ORDER BY enqueued_at DESC, id DESC) AS rn FROM jobs) AS latest "
            "WHERE rn = 1 ORDER BY path"
        )
        return [Job.from_row(r) for r in rows]

    def throughput(self, window_seconds: float, now: float | None = None) -> float:
        """Audio seconds transcribed per wall second over jobs done in the last window."""
        now = time.time() if now is None else now
        (total,) = self._read(
            f"SELECT coalesce(sum(audio_seconds), 0.0) FROM jobs{self._index('jobs_finished')} "
            "WHERE state = 'done' AND finished_at > ? AND finished_at <= ?",
            (now - window_seconds, now),
        )[0]
        return total / window_seconds if window_seconds > 0 else 0.0

    def queue_depth(self, now: float | None = None) -> int:
        """Queued jobs ready to run now (``counts()['queued']`` includes those backing off)."""
        now = time.time() if now is None else now
        return self._read(
            "SELECT count(*) FROM jobs WHERE state = 'queued' AND not_before <= ?", (now,)
        )[0][0]
