"""Per-folder summary of the ledger, for the people who drop files.

Owns :func:`folder_summary` (waiting / running / done today / failed per inbox folder, with
an estimated end for running jobs), :func:`throughput_last_hour` and :func:`retry_command`
(a shell line an operator can paste, exact for any name). Input is the ledger's
:meth:`~daemon.queue.interface.JobStore.current` rows, in brief (a hundred thousand of them
cost a fraction of a second), and a ``details(ids)`` callable that fetches the full jobs for
the few rows listed (at most :data:`LIST_LIMIT` per kind and folder); output is plain data
with every name shown escaped (:func:`daemon.text.display`). The clock comes in as ``now``.
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

from daemon.queue import Brief, Job
from daemon.text import display

Details = Callable[[Sequence[int]], list[Job]]

WINDOW = 3600.0  # seconds: "the last hour"
LIST_LIMIT = 20  # names listed per folder and kind; the rest is counted
RECENT_DONE = 5  # finished files listed per folder
MIN_PROGRESS = 0.03  # below this, progress says too little to extrapolate an end time
MIN_ELAPSED = 5.0  # seconds: model load and decoding dominate the first seconds


def shell_arg(path: str) -> str:
    """``path`` quoted for a POSIX shell; names with undecodable bytes or control characters
    use bash's ``$'...'`` form so the exact bytes survive copy and paste."""
    prefix = "-- " if path.startswith("-") else ""
    if path.isprintable():
        return prefix + shlex.quote(path)
    raw = path.encode("utf-8", "surrogateescape")
    body = "".join(chr(b) if 0x20 <= b < 0x7F and b not in b"'\\" else f"\\x{b:02x}" for b in raw)
    return f"{prefix}$'{body}'"


def retry_command(path: str) -> str:
    """The command an operator runs to transcribe ``path`` (inbox-relative) again."""
    return f"whisperd retry {shell_arg(path)}"


def iso(seconds: float | None) -> str | None:
    """Epoch seconds as ISO-8601 UTC (as everywhere in the status report), or None."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def midnight(now: float, tz: tzinfo | None = None) -> float:
    """The start of the local day of ``now`` (``tz``, default the machine's zone)."""
    local = datetime.fromtimestamp(now, tz) if tz else datetime.fromtimestamp(now).astimezone()
    return local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def realtime_factors(jobs: Iterable[Brief | Job]) -> dict[str | None, float]:
    """Audio seconds per processing second of done jobs, per model and overall (None)."""
    sums: dict[str | None, list[float]] = {}
    for job in jobs:
        if job.state != "done" or not job.audio_seconds or not job.processing_seconds:
            continue
        for key in (job.model, None):
            acc = sums.setdefault(key, [0.0, 0.0])
            acc[0] += job.audio_seconds
            acc[1] += job.processing_seconds
    return {k: a / b for k, (a, b) in sums.items() if b > 0}


def estimate_end(
    job: Job, now: float, factors: dict[str | None, float]
) -> tuple[float | None, str | None]:
    """When a running job should end (epoch seconds) and on what basis: its own progress
    rate once that says enough, else its audio length over the recent realtime factor."""
    if job.started_at is None:
        return None, None
    elapsed = max(0.0, now - job.started_at)
    if job.progress >= 1.0:
        return now, "progress"
    if job.progress >= MIN_PROGRESS and elapsed >= MIN_ELAPSED:
        return now + elapsed * (1.0 - job.progress) / job.progress, "progress"
    factor = factors.get(job.model, factors.get(None))
    if job.audio_seconds and factor:
        return max(now, job.started_at + job.audio_seconds / factor), "realtime_factor"
    return None, None


def _name(path: str) -> str:
    return display(posixpath.basename(path) or path)


def _running(job: Job, now: float, factors: dict[str | None, float]) -> dict[str, Any]:
    ends, basis = estimate_end(job, now, factors)
    return {
        "path": display(job.path),
        "name": _name(job.path),
        "progress": round(job.progress, 4),
        "worker": job.worker,
        "model": job.model,
        "started_at": iso(job.started_at),
        "elapsed_seconds": round(now - job.started_at, 1) if job.started_at else None,
        "ends_at": iso(ends),
        "ends_in_seconds": round(ends - now, 1) if ends is not None else None,
        "estimate_basis": basis,
    }


def _waiting(job: Job) -> dict[str, Any]:
    entry: dict[str, Any] = {"path": display(job.path), "name": _name(job.path),
                             "state": job.state, "attempts": job.attempts}  # fmt: skip
    if job.last_error:  # a transient failure backing off, or why a file is incomplete
        entry["error"] = display(job.last_error)
    return entry


def _failed(job: Job) -> dict[str, Any]:
    return {
        "path": display(job.path),
        "name": _name(job.path),
        "error": display(job.last_error or "unknown error"),
        "error_kind": job.error_kind,
        "attempts": job.attempts,
        "finished_at": iso(job.finished_at),
        "retry_command": retry_command(job.path),
    }


def _done(job: Job) -> dict[str, Any]:
    return {
        "path": display(job.path),
        "name": _name(job.path),
        "finished_at": iso(job.finished_at),
        "outputs": [display(o) for o in job.outputs],
    }


def _new_folder(name: str) -> dict[str, Any]:
    return {
        "folder": display(name),
        "waiting": 0,
        "running": 0,
        "done_today": 0,
        "failed": 0,
        "done_last_hour": 0,
        "audio_seconds_last_hour": 0.0,
        "waiting_files": [],
        "running_jobs": [],
        "failed_files": [],
        "recent_done": [],
    }


class _Folder:
    """What one folder counts, and the ids it lists (queue order; newest failures and
    completions first)."""

    def __init__(self) -> None:
        self.counts = _new_folder("")
        self.waiting: list[int] = []
        self.running: list[int] = []
        self.failed: list[tuple[float, int]] = []
        self.done: list[tuple[float, int]] = []

    def add(self, row: Brief, now: float, today: float) -> None:
        counts = self.counts
        if row.state in ("queued", "incomplete"):
            counts["waiting"] += 1
            if len(self.waiting) < LIST_LIMIT:
                self.waiting.append(row.id)
        elif row.state == "running":
            counts["running"] += 1
            self.running.append(row.id)
        elif row.state == "failed":
            counts["failed"] += 1
            self.failed.append((row.finished_at or 0.0, row.id))
        elif row.state == "done" and row.finished_at is not None:
            if row.finished_at >= today:
                counts["done_today"] += 1
                self.done.append((row.finished_at, row.id))
            if now - WINDOW < row.finished_at <= now:
                counts["done_last_hour"] += 1
                counts["audio_seconds_last_hour"] += row.audio_seconds or 0.0

    def listed(self) -> list[int]:
        """Cut the lists to their limits; the ids to fetch."""
        self.failed = sorted(self.failed, reverse=True)[:LIST_LIMIT]
        self.done = sorted(self.done, reverse=True)[:RECENT_DONE]
        return [*self.waiting, *self.running, *(i for _, i in self.failed),
                *(i for _, i in self.done)]  # fmt: skip


def folder_summary(
    rows: Iterable[Brief], details: Details, now: float, *, tz: tzinfo | None = None
) -> list[dict[str, Any]]:
    """One dict per inbox folder with something to show (the inbox itself is ``""``)."""
    rows = sorted(rows, key=lambda r: (r.enqueued_at, r.id))
    today = midnight(now, tz)
    factors = realtime_factors(r for r in rows if (r.finished_at or 0) > now - WINDOW)
    folders: dict[str, _Folder] = {}
    for row in rows:
        key = row.path.rpartition("/")[0]
        folder = folders.get(key) or folders.setdefault(key, _Folder())
        folder.add(row, now, today)
    jobs = {job.id: job for job in details([i for f in folders.values() for i in f.listed()])}
    summary = []
    for key in sorted(folders):
        folder, counts = folders[key], folders[key].counts
        counts["folder"] = display(key)
        counts["audio_seconds_last_hour"] = round(counts["audio_seconds_last_hour"], 1)
        counts["waiting_files"] = [_waiting(jobs[i]) for i in folder.waiting if i in jobs]
        counts["running_jobs"] = [_running(jobs[i], now, factors) for i in folder.running
                                  if i in jobs]  # fmt: skip
        counts["failed_files"] = [_failed(jobs[i]) for _, i in folder.failed if i in jobs]
        counts["recent_done"] = [_done(jobs[i]) for _, i in folder.done if i in jobs]
        summary.append(counts)
    return summary


def throughput_last_hour(jobs: Iterable[Brief], now: float) -> dict[str, Any]:
    """Files finished in the last hour, their audio and processing seconds, and the rate."""
    done = [j for j in jobs if j.state == "done" and now - WINDOW < (j.finished_at or 0) <= now]
    audio = sum(j.audio_seconds or 0.0 for j in done)
    busy = sum(j.processing_seconds or 0.0 for j in done)
    return {
        "window_seconds": WINDOW,
        "files_done": len(done),
        "audio_seconds": round(audio, 1),
        "processing_seconds": round(busy, 1),
        "audio_hours_per_hour": round(audio / WINDOW, 3),
        "realtime_factor": round(audio / busy, 2) if busy else None,
    }
