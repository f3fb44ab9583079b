"""This service as one node of a shared ledger: leases, reclaims, intake leadership.

Only used when the ledger is shared (PostgreSQL); with SQLite the service is the only node
and none of this runs.

* **Leases** are renewed by a thread of their own every third of ``ledger.lease_seconds``,
  independent of any job's progress, for the jobs whose worker is alive and showed a sign
  of life within ``jobs.stall_timeout`` (a hung job's lease runs out, so another server
  takes it). A job whose lease was lost anyway (this process was paused, the database
  unreachable for longer than the lease) is aborted on its worker (:meth:`Worker.lose`);
  whatever that worker still tries to record is refused by the ledger.
* **Reclaims**: every :data:`RECLAIM_EVERY` seconds (at most a quarter of the lease) the
  main loop asks the ledger to take back jobs whose lease ran out (a dead server's), and
  writes the ``.error.txt`` of those over the crash limit. A dead server's job is thus
  queued again at most ``lease_seconds`` after its last renewal plus that period, and
  claimed by the next free worker.
* **Leadership**: only the node holding the intake lock scans the inbox; the others try
  every :data:`LEAD_EVERY` seconds and take over when the leader dies.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import structlog

from daemon.config import Config
from daemon.errors import WhisperdError
from daemon.jobs.worker import Worker
from daemon.queue import JobStore
from daemon.service import startup

log = structlog.get_logger(__name__)

RECLAIM_EVERY = 2.0  # seconds between looks for expired leases
LEAD_EVERY = 2.0  # seconds between tries to become the node that scans the inbox


class Membership:
    """Leases, reclaims and leadership of one node (see the module docstring)."""

    def __init__(
        self,
        ledger: JobStore,
        config: Callable[[], Config],
        workers: list[Worker],
        *,
        on_requeued: Callable[[], None],
    ) -> None:
        self.ledger = ledger
        self._config = config
        self._workers = workers
        self._on_requeued = on_requeued
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_loop, name="lease-renewer",
                                        daemon=True)  # fmt: skip
        self._last = {"reclaim": float("-inf"), "lead": float("-inf")}
        lease = config().ledger.lease_seconds
        self.interval = max(0.05, lease / 3)
        self.reclaim_every = min(RECLAIM_EVERY, lease / 4)

    # --- leases ---

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing (after the workers are done: their jobs keep their leases till then)."""
        self._stop.set()
        self._thread.join(timeout=5)

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.renew_once()
            except WhisperdError as err:  # the database is away: the leases may run out
                log.warning("lease_renewal_failed", error=str(err))
            except Exception:  # a bug: keep renewing
                log.exception("lease renewal crashed")

    def renew_once(self) -> set[int]:
        """Renew the leases of the jobs that are alive here; abort those that were lost."""
        stall = self._config().jobs.stall_timeout
        now = time.monotonic()
        alive = {}
        for worker in self._workers:
            activity = worker.snapshot()
            if activity.job is not None and now - activity.heartbeat <= stall:
                alive[activity.job.id] = worker
        lost = self.ledger.renew(list(alive), now=time.time())
        for job_id in lost:
            alive[job_id].lose(job_id)
        return lost

    # --- the main loop's chores ---

    def reclaim_due(self, now: float) -> None:
        """Every few seconds: take back jobs whose lease ran out (a dead server's)."""
        if now - self._last["reclaim"] < self.reclaim_every:
            return
        self._last["reclaim"] = now
        try:
            if startup.recover(self.ledger, self._config()):
                self._on_requeued()
        except WhisperdError as err:
            log.error("reclaim failed", error=str(err))

    def may_lead(self, now: float, leading: bool) -> bool:
        """Whether this node scans the inbox now (asks again every few seconds if not)."""
        if not leading and now - self._last["lead"] < LEAD_EVERY:
            return False
        self._last["lead"] = now
        try:
            return self.ledger.lead()
        except WhisperdError as err:
            log.error("intake leadership unknown; not scanning", error=str(err))
            return False
