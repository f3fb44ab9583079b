"""Housekeeping: the ledger kept small over months of service, in a thread of its own.

Once at start-up, then every day (:data:`EVERY`), :meth:`Housekeeper.run_once`:

1. prunes the rows settled more than ``jobs.history_days`` ago: older versions and vanished
   files by age, done and failed rows once their file is no longer in the inbox
   (:meth:`~daemon.queue.interface.JobStore.prune_history`). Outputs in the outbox are never
   touched. Skipped while the inbox is missing: an unmounted share must not look like every
   file deleted (and have them all transcribed again when it comes back);
2. vacuums the database file when the pruning freed a good share of it (SQLite; autovacuum
   does it on PostgreSQL).

On a shared ledger (PostgreSQL, several servers) only the node that leads intake
(:meth:`~daemon.queue.interface.JobStore.lead`) prunes: it is the one that scans the inbox,
so its view of which files exist is the one the ledger follows, and the rounds of several
nodes never delete the same rows at once.

The thread waits on an Event, so a stop is noticed at once (and between prune batches).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import structlog

from daemon.config import Config
from daemon.errors import WhisperdError
from daemon.queue import JobStore

log = structlog.get_logger(__name__)

EVERY = 86400.0  # seconds between two rounds


class Housekeeper:
    """Daily pruning and vacuuming of one ledger."""

    def __init__(self, ledger: JobStore, cfg: Callable[[], Config]) -> None:
        self.ledger = ledger
        self._cfg = cfg
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="housekeeping", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def run_once(self, now: float | None = None) -> dict[str, Any]:
        """One round (see the module docstring); what it did."""
        now = time.time() if now is None else now
        cfg = self._cfg()
        days = cfg.jobs.history_days
        done: dict[str, Any] = {"pruned": 0, "vacuumed": False}
        if days is None:
            return done
        if not cfg.inbox.is_dir():
            log.warning("housekeeping_skipped", reason="the inbox is missing", inbox=str(cfg.inbox))
            return {**done, "skipped": "inbox missing"}
        if self.ledger.shared and not self.ledger.lead():
            log.info("housekeeping_skipped", reason="another node leads intake and prunes")
            return {**done, "skipped": "not the intake leader"}
        started = time.monotonic()
        inbox = cfg.inbox
        done["pruned"] = self.ledger.prune_history(
            now - days * 86400.0, lambda rel: os.path.lexists(inbox / rel), stop=self._stop.is_set
        )
        done["vacuumed"] = self.ledger.vacuum_if_worthwhile()
        log.info("housekeeping_done", **done, history_days=days,
                 seconds=round(time.monotonic() - started, 2))  # fmt: skip
        return done

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except WhisperdError as err:
                log.error("housekeeping failed; tried again tomorrow", error=str(err))
            except Exception:  # a bug: logged, the service goes on
                log.exception("housekeeping crashed; tried again tomorrow")
            self._stop.wait(EVERY)
