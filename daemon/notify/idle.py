"""The folder_idle state machine: one summary when a folder's batch of files is finished.

Pure: fed with job state changes and the time, it keeps no clock and starts no thread.

* **Folder** of a file: its parent folder relative to the inbox (``clients/acme`` for
  ``clients/acme/a.mp3``, ``.`` for a file in the inbox itself), the same ``folder`` the
  worker binds in its logs and the outbox mirrors. With ``depth=N`` the folder is cut to its
  first N names, so a whole tree dropped into ``clients/acme`` (``depth=2``) is one batch
  instead of one batch per subfolder finishing at different times.
* **Batch**: the jobs of a folder that became active (queued or running) since the folder
  was last idle, plus any outcome reported meanwhile.
* **Idle**: no job of the folder queued or running for ``settle`` seconds. The settle time
  absorbs the gap between two files of a slow copy (the next file is queued only once the
  watcher finds it complete); a file queued during the settle time joins the batch.
* **Missed transitions** (a queued version superseded inside ``Ledger.enqueue``, a change
  made by another process): :meth:`FolderIdleTracker.reconcile` takes the ledger's set of
  queued/running job ids; a tracked job missing from two snapshots in a row is dropped as
  skipped (two, so that an outcome committed just before a snapshot but reported just
  after it is not miscounted).
* A job that fails and is retried later goes back to ``queued``: still active, the batch
  waits for it. Outcomes: ``done``, ``failed``, and ``superseded``/``gone`` (counted as
  *skipped*). A batch with only skipped files (say, files deleted before they ran) is
  dropped without a summary.

::

    (no batch) ──active──▶ busy ──last job finishes──▶ settling ──settle elapsed──▶ summary
                             ▲                            │
                             └──────────active────────────┘
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import PurePosixPath

ACTIVE = ("queued", "running")
OUTCOMES = {
    "done": "done",
    "failed": "failed",
    "superseded": "skipped",
    "gone": "skipped",
    "skipped": "skipped",
}
OUTCOME_NAMES = ("done", "failed", "skipped")
MAX_LISTED_FAILURES = 20


def folder_of(path: str, depth: int | None = None) -> str:
    """The folder a file counts in: its inbox-relative parent, cut to ``depth`` names."""
    parts = [p for p in PurePosixPath(path).parent.parts if p not in ("", ".", "/")]
    if depth is not None:
        parts = parts[:depth]
    return "/".join(parts) or "."


@dataclass(frozen=True)
class BatchSummary:
    """What one finished batch amounted to (the folder_idle event)."""

    folder: str
    started_at: float
    finished_at: float
    done: int
    failed: int
    skipped: int
    failures: tuple[tuple[str, str], ...]  # (file, error), at most MAX_LISTED_FAILURES
    failures_omitted: int

    @property
    def files(self) -> int:
        """Files with an outcome in this batch."""
        return self.done + self.failed + self.skipped


@dataclass
class _Batch:
    started_at: float
    active: set[int] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOME_NAMES, 0))
    failures: list[tuple[str, str]] = field(default_factory=list)
    idle_since: float | None = None


class FolderIdleTracker:
    """Turns job state changes into one :class:`BatchSummary` per folder batch.

    Not thread-safe: the caller serialises :meth:`update` and :meth:`due` (one lock).
    """

    def __init__(self, settle: float = 10.0) -> None:
        if settle < 0:
            raise ValueError(f"settle must be ≥ 0 seconds, got {settle}")
        self.settle = settle
        self._batches: dict[str, _Batch] = {}
        self._folder_of_job: dict[int, str] = {}
        self._active_since: dict[int, float] = {}
        self._suspects: set[int] = set()

    def update(
        self,
        job_id: int,
        folder: str,
        state: str,
        now: float,
        *,
        path: str = "",
        error: str | None = None,
    ) -> None:
        """Record that job ``job_id`` (a file in ``folder``) is now in ``state``.

        ``path`` and ``error`` are listed in the summary for a failed job. Unknown states
        are ignored, so the caller may pass every ledger transition.
        """
        if state in ACTIVE:
            batch = self._batches.setdefault(folder, _Batch(started_at=now))
            batch.active.add(job_id)
            batch.idle_since = None
            self._folder_of_job[job_id] = folder
            self._active_since.setdefault(job_id, now)
        elif state in OUTCOMES:
            self._finish(job_id, folder, OUTCOMES[state], now, path, error)

    def reconcile(self, active_ids: Collection[int], taken_at: float, now: float) -> int:
        """Compare with the ledger's queued/running job ids, read at ``taken_at``.

        A job tracked as active since before ``taken_at`` but missing from this snapshot and
        the previous one is finished as skipped. Returns how many were dropped.
        """
        active = set(active_ids)
        missing = {
            job
            for job, since in self._active_since.items()
            if since < taken_at and job not in active
        }
        stale, self._suspects = missing & self._suspects, missing - self._suspects
        for job in stale:
            self._finish(job, self._folder_of_job[job], "skipped", now, "", None)
        return len(stale)

    def _finish(
        self, job_id: int, folder: str, outcome: str, now: float, path: str, error: str | None
    ) -> None:
        folder = self._folder_of_job.pop(job_id, folder)
        self._active_since.pop(job_id, None)
        self._suspects.discard(job_id)
        batch = self._batches.setdefault(folder, _Batch(started_at=now))
        batch.active.discard(job_id)
        batch.counts[outcome] += 1
        if outcome == "failed":
            batch.failures.append((path, error or ""))
        if not batch.active:
            batch.idle_since = now

    def due(self, now: float) -> list[BatchSummary]:
        """The batches idle for ``settle`` seconds at ``now``; they are forgotten here."""
        ready = [
            folder
            for folder, b in self._batches.items()
            if b.idle_since is not None and now >= b.idle_since + self.settle
        ]
        return [s for s in map(self._close, ready) if s is not None]

    def flush(self) -> list[BatchSummary]:
        """Close every batch with no active job now, without waiting (at shutdown)."""
        ready = [f for f, b in self._batches.items() if b.idle_since is not None]
        return [s for s in map(self._close, ready) if s is not None]

    def next_deadline(self) -> float | None:
        """When the next settling batch becomes due; None when none is settling."""
        times = [
            b.idle_since + self.settle for b in self._batches.values() if b.idle_since is not None
        ]
        return min(times, default=None)

    def active(self) -> dict[str, int]:
        """Queued or running jobs per folder with an open batch."""
        return {folder: len(b.active) for folder, b in self._batches.items()}

    def _close(self, folder: str) -> BatchSummary | None:
        batch = self._batches.pop(folder)
        assert batch.idle_since is not None
        if not batch.counts["done"] and not batch.counts["failed"]:
            return None  # nothing was transcribed or failed: nobody waits for this
        listed = batch.failures[:MAX_LISTED_FAILURES]
        return BatchSummary(
            folder=folder,
            started_at=batch.started_at,
            finished_at=batch.idle_since,
            done=batch.counts["done"],
            failed=batch.counts["failed"],
            skipped=batch.counts["skipped"],
            failures=tuple(listed),
            failures_omitted=len(batch.failures) - len(listed),
        )
