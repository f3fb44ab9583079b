"""What the service shows and tells: metrics, the HTTP listener and notifications, wired.

:class:`Observers` owns the three and is the workers' :class:`~daemon.jobs.events.JobEvents`:

* **metrics** (:class:`daemon.web.Metrics`): jobs finished by outcome and folder rule, audio
  and processing seconds, the realtime factor, model loads, worker busy time, errors by
  class, the last successful scan, build info; the ledger's gauges (jobs by state, the
  oldest waiting job, the running jobs' progress) are read at scrape time from
  :meth:`Observers.snapshot`;
* **the listener** (:class:`daemon.web.WebServer`, when ``metrics:`` is set): ``/metrics``,
  ``/api/status`` (:func:`daemon.web.collect` on a read-only connection of its own, so a
  page never waits on, or holds, the workers' ledger lock) and the status page;
* **notifications** (:class:`daemon.notify.Notifier`, when ``notify:`` lists targets): fed
  with every transition a worker or intake reports, after the transition is committed;
  storing a delivery is one short ledger transaction, sending happens in the notifier's own
  threads, so neither a worker nor the main loop ever waits on the network.

Every call from a worker is guarded: an observer that fails is logged, never raised.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import Any

import prometheus_client
import structlog

from daemon import __version__
from daemon.config import Config, Resolver
from daemon.errors import ConfigError
from daemon.jobs.worker import Worker
from daemon.notify import Notifier
from daemon.queue import Job, JobStore
from daemon.web import Metrics, WebServer, collect

log = structlog.get_logger(__name__)

ACTIVE = ("queued", "running")


def settle_seconds(cfg: Config, network: bool) -> float:
    """How long a folder stays quiet before its batch counts as finished (folder_idle): two
    stability windows, so the next file of a slow copy joins the batch instead of starting
    a new one (a network inbox has the longer window)."""
    window = cfg.watch.stable_seconds
    if network:
        window = max(window, cfg.watch.network_stable_seconds)
    return max(1.0, 2 * window)


class Observers:
    """Metrics, listener and notifier of one service; the workers' event sink."""

    def __init__(
        self, cfg: Config, ledger: JobStore, rules: Resolver, *, network_inbox: bool = False
    ) -> None:
        self.rules = rules
        self.ledger = ledger
        self.workers: list[Worker] = []
        # No *_created series: half the lines of a scrape, and nothing alerts on them
        # (process-wide, which is what the service process wants).
        prometheus_client.disable_created_metrics()
        devices = ",".join(dict.fromkeys(w.device for w in cfg.workers))
        self.metrics = Metrics(version=__version__, engine=cfg.defaults.engine, device=devices,
                               snapshot=self.snapshot, rules=list(cfg.folders))  # fmt: skip
        self.web: WebServer | None = None
        if cfg.metrics is not None:
            self.web = WebServer(cfg.metrics, metrics=self.metrics, status=self.report)
        self.notifier: Notifier | None = None
        if cfg.notify:
            self.notifier = Notifier(cfg.notify, ledger.deliveries,
                                     settle=settle_seconds(cfg, network_inbox),
                                     active_jobs=ledger.active_ids)  # fmt: skip

    # --- lifecycle (see Service.start and Service.stop for the order) ---

    def start_listener(self) -> None:
        """Bind the listener (ListenError, one line, when the address is unusable)."""
        if self.web is not None:
            self.web.start()

    def start_notifier(self, jobs: Iterable[Job]) -> None:
        """Start sending (what a stop left pending goes first); ``jobs``: those queued now,
        so that their folders' batches end with a folder_idle after a restart too."""
        if self.notifier is None:
            return
        for job in jobs:
            self.notifier.job_changed(job)
        self.notifier.start()

    def stop_notifier(self) -> None:
        """Stop the notifier's threads; settled batches are stored for the next start."""
        if self.notifier is not None:
            self.notifier.stop(timeout=5.0)

    def stop_listener(self) -> None:
        if self.web is not None:
            self.web.stop()

    @property
    def url(self) -> str | None:
        """Where the status page is served (None: no listener)."""
        return self.web.url if self.web is not None and self.web.running else None

    def report(self, files: bool) -> dict[str, Any]:
        """The status report (on a read-only connection of its own), for the listener."""
        return collect(self.rules.cfg, os.getpid(), files=files)

    # --- the ledger's gauges, at scrape time ---

    def snapshot(self) -> dict[str, Any]:
        """Jobs by state, the queue, and the running jobs' live progress."""
        running = []
        for worker in self.workers:
            activity = worker.snapshot()
            if activity.job is not None:
                running.append({"worker": worker.name, "progress": activity.progress})
        return {
            "counts": self.ledger.counts(),
            "queue_ready": self.ledger.queue_depth(time.time()),
            "oldest_queued_at": self.ledger.oldest_queued_at(),
            "running": running,
            "notifications_pending": self.ledger.deliveries.pending(),
        }

    # --- JobEvents: what workers report ---

    def job_started(self, worker: str, job: Job) -> None:
        self.metrics.worker_busy(worker, True)
        if self.notifier is not None:
            self.notifier.job_changed(job)

    def job_finished(self, worker: str, job: Job, outcome: str, processing_seconds: float) -> None:
        self.metrics.worker_busy(worker, False)
        audio = job.audio_seconds if outcome == "done" else None
        self.metrics.job_finished(outcome, self._rule(job.path), audio, processing_seconds)
        if self.notifier is not None:
            self.notifier.job_changed(job)

    def model_loaded(self, engine: str, seconds: float) -> None:
        self.metrics.model_loaded(engine, seconds)

    def error(self, error: BaseException | str) -> None:
        self.metrics.error(error)

    # --- what intake and the main loop report ---

    def jobs_recorded(self, jobs: Iterable[Job]) -> None:
        """Versions intake recorded (queued; failed when their folder has no valid settings)."""
        for job in jobs:
            if job.state == "failed":
                self.metrics.job_finished("failed", self._rule(job.path), None, None)
            if self.notifier is not None:
                self.notifier.job_changed(job)

    def scan_done(self) -> None:
        self.metrics.scan_done()

    def reloaded(self, rules: Resolver) -> None:
        """A reload: rule labels follow the new folder rules."""
        self.rules = rules
        self.metrics.set_rules(list(rules.cfg.folders))

    def _rule(self, path: str) -> str | None:
        """The most specific folder rule of a file (a bounded label, never a path)."""
        try:
            rules = self.rules.resolve(PurePosixPath(path).parent).rules
        except ConfigError:
            return None
        return rules[-1] if rules else None
