"""Read-only questions about the ledger, for ``whisperd status``, health and the tests.

A mixin of both backends (:class:`~daemon.queue.store.Ledger`,
:class:`~daemon.queue.postgres.store.PgLedger`): every query goes through the host's
``_read`` (one lock, errors as LedgerError), so it works on a read-only SQLite connection
while the service writes (WAL). The queries are portable SQL with ``?`` placeholders, which
the PostgreSQL backend translates; its tests run them there too. ``job_counts`` holds one
row per state on SQLite and deltas to add up on PostgreSQL
(:mod:`daemon.queue.postgres.schema`, step 3): the same ``sum`` reads both.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from daemon.errors import LedgerError
from daemon.queue.job import STATES, Brief, Job, path_filter

_BRIEF = (
    "id, path, state, enqueued_at, started_at, finished_at, audio_seconds, "
    "processing_seconds, model"
)


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
        for state, n in self._read("SELECT state, sum(n) FROM job_counts GROUP BY state"):
            counts[state] = int(n)  # kept by triggers
        return counts

    def totals(self, state: str = "done") -> tuple[float, float]:
        """Audio and processing seconds of every row in ``state`` (kept by triggers)."""
        rows = self._read(
            "SELECT sum(audio_seconds), sum(processing_seconds) FROM job_counts WHERE state = ?",
            (state,),
        )
        audio, processing = rows[0] if rows else (None, None)
        return (float(audio or 0.0), float(processing or 0.0))

    def in_state(self, state: str, limit: int = 20) -> list[Job]:
        """Jobs in ``state``, most recently changed first (a negative ``limit``: all)."""
        rows = self._read(
            "SELECT * FROM jobs WHERE state = ? ORDER BY updated_at DESC, id DESC"
            + (" LIMIT ?" if limit >= 0 else ""),
            (state, limit) if limit >= 0 else (state,),
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

    def oldest_queued_at(self) -> float | None:
        """When the oldest queued job was queued (epoch seconds); None when none is."""
        return self._read("SELECT min(enqueued_at) FROM jobs WHERE state = 'queued'")[0][0]

    def active_ids(self) -> set[int]:
        """Ids of the queued and running jobs."""
        return {
            r[0] for r in self._read("SELECT id FROM jobs WHERE state IN ('queued', 'running')")
        }

    def current(self, since: float) -> list[Brief]:
        """What a person looks at, in brief: rows waiting, running, incomplete or failed, and
        rows done since ``since``; read through indexes, never the whole table, and without
        the wide columns (:meth:`jobs` gets those for the few rows listed)."""
        rows = self._read(
            f"SELECT {_BRIEF} FROM jobs WHERE state IN ('queued', 'running', 'incomplete', "
            f"'failed') UNION ALL SELECT {_BRIEF} FROM jobs{self._index('jobs_finished')} "
            "WHERE state = 'done' AND finished_at >= ?",
            (since,),
        )
        return [Brief(r[0], bytes(r[1]).decode("utf-8", "surrogateescape"), *r[2:]) for r in rows]

    def jobs(self, ids: Sequence[int]) -> list[Job]:
        """The jobs with these ids (in any order; missing ones left out)."""
        found: list[Job] = []
        ids = list(ids)
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            rows = self._read(f"SELECT * FROM jobs WHERE id IN ({', '.join('?' * len(part))})",
                              part)  # fmt: skip
            found += [Job.from_row(r) for r in rows]
        return found

    def done_jobs(self, under: Sequence[str] | None = None) -> list[Job]:
        """Each path's newest done version (of every path, or of these files or folders)."""
        if under is None:
            where, params = "1 = 1", []
        else:
            parts = [path_filter(p) for p in under]
            where = " OR ".join(w for w, _ in parts) or "1 = 0"
            params = [x for _, ps in parts for x in ps]
        rows = self._read(
            "SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY path "
            "ORDER BY finished_at DESC, id DESC) AS rn FROM jobs "
            f"WHERE state = 'done' AND ({where})) AS newest WHERE rn = 1 ORDER BY path",
            params,
        )
        return [Job.from_row(r) for r in rows]
