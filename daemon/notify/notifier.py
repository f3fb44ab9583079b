"""The notifier: what workers call (fast, local) and the threads that deliver in the background.

Workers call :meth:`Notifier.job_changed` after every ledger transition (or
:meth:`Notifier.event` directly). That updates the folder_idle tracker in memory and, for
``done``/``failed``, writes one delivery per interested target to the store: a short SQLite
transaction, never a network call, and never an exception into the worker (a store failure
is logged and the notification dropped).

Threads (after :meth:`Notifier.start`): one lane per target (:mod:`daemon.notify.sender`)
and one ticker that turns settled folder batches into ``folder_idle`` events and prunes old
rows. Every loop wakes at least every ``poll`` seconds to notice :meth:`Notifier.stop`.

After a restart, feed the tracker the jobs still queued or running (``job_changed`` for each)
so their folders close a batch when they finish; outcomes from before the restart are not
counted in that batch. Pass ``active_jobs`` (the ledger's queued/running ids) so that a
transition nobody reported (a version superseded inside ``Ledger.enqueue``) cannot hold a
folder's batch open forever.
"""

from __future__ import annotations

import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import structlog

from daemon.config.operate import EVENTS, NotifyTarget
from daemon.notify.documents import JobView, encode, file_payload, folder_idle_payload, iso
from daemon.notify.idle import FolderIdleTracker, folder_of
from daemon.notify.sender import DEFAULT_BACKOFF, Backoff, Lane
from daemon.notify.targets import Target, build_target, version
from daemon.queue import Delivery, DeliveryStore

log = structlog.get_logger(__name__)

KEEP_FINISHED = 7 * 86400.0  # seconds sent/given-up rows stay for inspection
PRUNE_EVERY = 3600.0


class Notifier:
    """Stores notifications for its targets and sends them from background threads."""

    def __init__(
        self,
        targets: Sequence[NotifyTarget | Target],
        store: DeliveryStore,
        *,
        clock: Callable[[], float] = time.time,
        backoff: Backoff = DEFAULT_BACKOFF,
        settle: float = 10.0,
        folder_depth: int | None = None,
        poll: float = 1.0,
        rng: Callable[[], float] = random.random,
        active_jobs: Callable[[], Collection[int]] | None = None,
        reconcile_every: float = 30.0,
    ) -> None:
        """``targets``: validated configs (or ready :class:`Target` objects, for tests).

        ``active_jobs``: the ids of the ledger's queued and running jobs; called by the
        ticker every ``reconcile_every`` seconds (never under the notifier's lock) so that
        folder batches close even when a transition was not reported.
        """
        self.active_jobs, self.reconcile_every = active_jobs, reconcile_every
        self._reconciled_at = -math.inf
        self.store, self.clock, self.poll, self.folder_depth = store, clock, poll, folder_depth
        built = [t if hasattr(t, "send") else build_target(t) for t in targets]  # type: ignore[arg-type]
        self.lanes = {t.config.key: Lane(t, store, backoff, clock=clock, rng=rng) for t in built}
        self._version = version()
        self._tracker = FolderIdleTracker(settle)
        self._tracker_lock = threading.Lock()
        self._stop = threading.Event()
        self._tick_wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pruned_at = -math.inf

    # --- called by workers ---

    def job_changed(self, job: JobView, *, now: float | None = None) -> None:
        """A job changed state: feed folder_idle; store a done/failed event. Never raises."""
        now = self.clock() if now is None else now
        try:
            with self._tracker_lock:
                self._tracker.update(
                    job.id,
                    folder_of(job.path, self.folder_depth),
                    job.state,
                    now,
                    path=job.path,
                    error=job.last_error,
                )
            self._tick_wake.set()
            if job.state in ("done", "failed"):
                self.event(job.state, file_payload(job, folder_of(job.path)), now=now)
        except Exception:  # notifications must never break a job
            log.exception("notification_job_changed_failed", job=job.id)

    def event(
        self, kind: str, payload: Mapping[str, Any], *, now: float | None = None
    ) -> list[str]:
        """Store ``kind`` for every target that wants it; the delivery ids ([] if none).

        ``payload["folder"]`` (inbox-relative) selects targets with a ``folders`` filter.
        """
        if kind not in EVENTS:
            raise ValueError(f"unknown notification event {kind!r} (events: {', '.join(EVENTS)})")
        now = self.clock() if now is None else now
        folder = str(payload.get("folder", "."))
        lanes = [lane for lane in self.lanes.values() if lane.target.config.wants(kind, folder)]
        if not lanes:
            return []
        event_id = uuid.uuid4().hex
        deliveries = []
        for lane in lanes:
            delivery_id = uuid.uuid4().hex
            document: dict[str, Any] = {
                "event": kind,
                "id": event_id,
                "delivery": delivery_id,
                "created_at": iso(now),
                "whisperd": self._version,
            }
            document.update((k, v) for k, v in payload.items() if k not in document)
            deliveries.append(Delivery.new(lane.key, kind, encode(document), now, delivery_id))
        try:
            self.store.enqueue(deliveries)
        except Exception:
            log.exception("notification_not_stored", notify_event=kind, folder=folder)
            return []
        for lane in lanes:
            lane.wake.set()
        return [d.id for d in deliveries]

    # --- one iteration (the threads run these; tests call them directly) ---

    def tick(self, now: float) -> int:
        """Store folder_idle for the batches settled at ``now``; reconcile; prune. The count."""
        if self.active_jobs is not None and now - self._reconciled_at >= self.reconcile_every:
            self._reconciled_at = now
            active = self.active_jobs()  # the ledger's lock, not ours: no lock-order cycle
            with self._tracker_lock:
                dropped = self._tracker.reconcile(active, taken_at=now, now=self.clock())
            if dropped:
                log.info("notification_batch_reconciled", jobs_dropped=dropped)
        with self._tracker_lock:
            summaries = self._tracker.due(now)
        for summary in summaries:
            self.event("folder_idle", folder_idle_payload(summary), now=now)
        if now - self._pruned_at >= PRUNE_EVERY:
            self._pruned_at = now
            self.store.prune(now - KEEP_FINISHED)
        return len(summaries)

    def step(self, now: float | None = None) -> int:
        """:meth:`tick`, then one attempt per lane that has a due delivery; the attempts."""
        now = self.clock() if now is None else now
        self.tick(now)
        return sum(lane.step(now) for lane in self.lanes.values())

    def pending(self) -> int:
        """Deliveries stored and not yet sent or given up."""
        return self.store.pending()

    def next_idle_deadline(self) -> float | None:
        """When the next settling folder batch is due (for status output and tests)."""
        with self._tracker_lock:
            return self._tracker.next_deadline()

    # --- lifecycle ---

    def start(self) -> None:
        """Drop deliveries of removed targets, then start the ticker and one thread per lane."""
        if self._threads:
            raise RuntimeError("the notifier is already started")
        self._stop.clear()
        self._drop_orphans(self.clock())
        self._threads = [threading.Thread(target=self._ticker, name="notify-ticker", daemon=True)]
        self._threads += [
            threading.Thread(
                target=lane.run,
                args=(self._stop, self.poll),
                daemon=True,
                name=f"notify-{lane.label}",
            )
            for lane in self.lanes.values()
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the threads; True when all ended within ``timeout`` seconds.

        A send still running at the deadline is abandoned: its delivery stays pending and is
        sent again after the next start (at-least-once).
        """
        # 1. No new attempts: every loop sees the flag at its next wake-up.
        self._stop.set()
        self._tick_wake.set()
        for lane in self.lanes.values():
            lane.wake.set()
        # 2. Folders whose jobs are all finished but still settling get their summary now,
        #    stored for the next start rather than lost with the in-memory tracker.
        with self._tracker_lock:
            flushed = self._tracker.flush()
        for summary in flushed:
            self.event("folder_idle", folder_idle_payload(summary), now=self.clock())
        # 3. Wait for the threads, all within one deadline.
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            log.warning("notification_threads_still_running", threads=alive)
        self._threads = []
        return not alive

    def _ticker(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick(self.clock())
            except Exception:
                log.exception("notification_ticker_error")
            deadline = self.next_idle_deadline()
            wait = self.poll if deadline is None else min(self.poll, deadline - self.clock())
            self._tick_wake.wait(max(0.0, wait))
            self._tick_wake.clear()

    def _drop_orphans(self, now: float) -> None:
        """Give up deliveries whose target is no longer configured (one line per target)."""
        for key, count in self.store.pending_targets().items():
            if key in self.lanes:
                continue
            for delivery in self.store.due(math.inf, target=key, limit=count):
                self.store.mark_given_up(
                    delivery.id, "target no longer configured", now, attempted=False
                )
            log.warning(
                "notifications_dropped",
                target=key,
                count=count,
                reason="target no longer configured",
            )
