"""The ledger over months: pruning settled history, vacuuming, transcribing done files again.

A mixin of :class:`~daemon.queue.store.Ledger` (which supplies ``_write`` and ``_read``).

* :meth:`Housekeeping.prune_history`: rows settled before a cutoff go. ``superseded`` and
  ``gone`` rows (older versions, vanished files: nothing was transcribed from them) go by
  age alone; ``done``, ``failed`` and ``skipped`` rows only when their file is no longer in
  the inbox, because such a row is what keeps a file from being transcribed again. Rows
  with work still recorded on them (staged outputs, an on_success action) stay. Deleted in
  small transactions, so workers and intake interleave.
* :meth:`Housekeeping.vacuum_if_worthwhile`: ``VACUUM`` when free pages are a good share of
  the file (after a large prune), not every day.
* :meth:`Housekeeping.requeue_done`: a done version becomes a fresh queued job (the current
  settings and model, attempts and crashes reset; the row is reused, as a version has one
  row); its outputs stay on disk until the new ones are renamed over them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import structlog

log = structlog.get_logger(__name__)

PRUNE_BATCH = 500  # rows deleted per transaction
VACUUM_MIN_RATIO = 0.25  # free pages / all pages
VACUUM_MIN_BYTES = 16 * 2**20
_BY_AGE = ("superseded", "gone")
_IF_MISSING = ("done", "failed", "skipped")
_SETTLED = "'done', 'failed', 'superseded', 'gone', 'skipped'"  # as in the jobs_settled index


def _now(now: float | None) -> float:
    return time.time() if now is None else now


def prunable(rows: Iterable[Sequence[Any]], exists: Callable[[str], bool]) -> list[int]:
    """Of settled ``(id, path, state)`` rows old enough, the ids that may go (module
    docstring); ``exists`` is asked once per path. Shared with the PostgreSQL ledger."""
    missing: dict[bytes, bool] = {}
    doomed: list[int] = []
    for job_id, raw, state in rows:
        if state not in _BY_AGE:
            raw = bytes(raw)
            if raw not in missing:
                missing[raw] = not exists(os.fsdecode(raw))
            if not missing[raw]:
                continue
        doomed.append(job_id)
    return doomed


class Housekeeping:
    """Long-term upkeep of the jobs table; the host class supplies the plumbing."""

    def _write(self, op: str) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        raise NotImplementedError

    def prune_history(
        self, before: float, exists: Callable[[str], bool], *, stop: Callable[[], bool] = bool
    ) -> int:
        """Delete rows settled before ``before`` (see the module docstring); the count.

        ``exists(path)`` says whether an inbox-relative path is still there; it is asked once
        per path, outside any transaction. ``stop()`` true ends the work between batches.
        """
        states = _SETTLED  # word for word the index's condition, or SQLite cannot use it
        rows = self._read(
            f"SELECT id, path, state FROM jobs INDEXED BY jobs_settled WHERE state IN ({states}) "
            "AND finished_at < ? "
            "AND staged IS NULL AND source_action IS NULL",
            (before,),
        )
        doomed = prunable(rows, exists)
        deleted = 0
        for start in range(0, len(doomed), PRUNE_BATCH):
            if stop():
                break
            batch = doomed[start : start + PRUNE_BATCH]
            marks = ", ".join("?" * len(batch))
            with self._write("prune history") as conn:
                # Checked again inside the transaction: a row revived meanwhile stays.
                deleted += conn.execute(
                    f"DELETE FROM jobs WHERE id IN ({marks}) AND state IN ({states}) "
                    "AND finished_at < ? AND staged IS NULL AND source_action IS NULL",
                    (*batch, before),
                ).rowcount
        if deleted:
            log.info("ledger_pruned", rows=deleted, before=before)
        return deleted

    def vacuum_if_worthwhile(
        self, min_ratio: float = VACUUM_MIN_RATIO, min_bytes: int = VACUUM_MIN_BYTES
    ) -> bool:
        """``VACUUM`` when the free pages are at least ``min_ratio`` of the file and
        ``min_bytes``; True when it ran."""
        pages = self._read("PRAGMA page_count")[0][0]
        free = self._read("PRAGMA freelist_count")[0][0]
        size = self._read("PRAGMA page_size")[0][0]
        if not pages or free / pages < min_ratio or free * size < min_bytes:
            return False
        started = time.monotonic()
        with self._vacuum() as conn:
            conn.execute("VACUUM")
        log.info("ledger_vacuumed", freed_bytes=free * size,
                 seconds=round(time.monotonic() - started, 2))  # fmt: skip
        return True

    def _vacuum(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def requeue_done(
        self, jobs: Sequence[tuple[int, str, str]], *, now: float | None = None
    ) -> list[int]:
        """``(job id, model, settings JSON)`` of done jobs → queued afresh; the ids requeued."""
        now = _now(now)
        requeued = []
        with self._write("requeue done files") as conn:
            for job_id, model, settings in jobs:
                changed = conn.execute(
                    "UPDATE jobs SET state = 'queued', attempts = 0, crashes = 0, not_before = ?, "
                    "enqueued_at = ?, started_at = NULL, finished_at = NULL, updated_at = ?, "
                    "worker = NULL, model = ?, settings = ?, progress = 0, staged = NULL, "
                    "last_error = NULL, error_kind = NULL WHERE id = ? AND state = 'done' "
                    "AND source_action IS NULL",
                    (now, now, now, model, settings, job_id),
                ).rowcount
                if changed:
                    requeued.append(job_id)
        log.info("jobs_requeued", count=len(requeued))
        return requeued

    def set_outputs(self, job_id: int, outputs: Sequence[str], now: float | None = None) -> None:
        """Record the outputs of a done job after they were rendered again."""
        now = _now(now)
        with self._write("record outputs") as conn:
            conn.execute(
                "UPDATE jobs SET outputs = ?, updated_at = ? WHERE id = ? AND state = 'done'",
                (json.dumps(list(outputs)), now, job_id),
            )
