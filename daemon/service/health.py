"""What the service tells: the one-line STATUS= for systemd, the record ``whisperd status``
reads, and whether systemd's watchdog should be fed.

The record (``service_status`` in the ledger's key-value table, JSON, rewritten when it
changes and at least every minute) says why files wait: a worker paused by an environment
error and until when, the inbox missing, files open for writing or still settling or
waiting for their ready marker or to be checked for subtitles, entries refused (a symlink
leading out of the inbox); and how the media server's rescans went (counters).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from daemon.intake import Watcher
from daemon.jobs.worker import Worker
from daemon.text import display


@dataclass
class Health:
    """The service's view of itself at one moment (built by :func:`observe`)."""

    queue: int
    running: list[str] = field(default_factory=list)  # "path (42%)"
    paused: list[dict[str, Any]] = field(default_factory=list)
    inbox_missing: bool = False
    waiting: dict[str, int] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    media_server: dict[str, int] | None = None  # the refresher's counters and pending folders
    status_page: str | None = None  # the listener's URL (metrics: set)

    def line(self) -> str:
        """The STATUS= line: queue, what runs, and why anything waits."""
        parts = [f"queue {self.queue}"]
        parts.append(f"running: {', '.join(self.running)}" if self.running else "idle")
        for pause in self.paused:
            parts.append(f"PAUSED ({pause['worker']}): {pause['reason']}")
        if self.inbox_missing:
            parts.append("INBOX MISSING")
        if self.waiting:
            parts.append("waiting: " + ", ".join(f"{n} {why}" for why, n in self.waiting.items()))
        if self.media_server and self.media_server.get("dropped"):
            parts.append(f"media server: {self.media_server['dropped']} rescans failed")
        return "; ".join(parts)

    def record(self, pid: int) -> str:
        """The JSON that ``whisperd status`` reads."""
        return json.dumps({
            "pid": pid, "at": time.time(), "queue": self.queue, "running": self.running,
            "paused": self.paused, "inbox_missing": self.inbox_missing,
            "waiting": self.waiting, "refused": self.refused, "media_server": self.media_server,
            "status_page": self.status_page,
        }, ensure_ascii=True)  # fmt: skip


def observe(
    queue: int,
    workers: list[Worker],
    watcher: Watcher | None,
    *,
    checking: int = 0,
    media_server: dict[str, int] | None = None,
    status_page: str | None = None,
) -> Health:
    """Collect the health of the workers and the watcher; ``checking``: files waiting to be
    checked for subtitles; ``media_server``: the refresher's counters; ``status_page``: the
    listener's URL."""
    now = time.monotonic()
    health = Health(queue=queue, media_server=media_server, status_page=status_page)
    for worker in workers:
        activity = worker.snapshot()
        if activity.job is not None:
            health.running.append(f"{display(activity.job.path)} ({activity.progress:.0%})")
        if activity.paused:
            health.paused.append({
                "worker": worker.name, "reason": activity.paused,
                "retry_in": max(0.0, round(activity.paused_until - now, 1)),
            })  # fmt: skip
    if watcher is not None:  # the node that scans the inbox (the only one on SQLite)
        stats = watcher.stats
        health.inbox_missing = bool(stats["inbox_missing"])
        health.waiting = watcher.waiting()
        health.refused = [display(entry) for entry in watcher.refused()]
    if checking:
        health.waiting["checking for subtitles"] = checking
    return health


def workers_healthy(workers: list[Worker], stall_seconds: float) -> bool:
    """Every worker thread alive, and idle or showing a sign of life recently."""
    now = time.monotonic()
    for worker in workers:
        activity = worker.snapshot()
        if not worker.alive():
            return False
        if activity.job is not None and now - activity.heartbeat > stall_seconds:
            return False
    return True
