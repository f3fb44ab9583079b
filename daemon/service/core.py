"""``whisperd run``: the long-running service, from lock to clean stop.

Signals (decided once, here; handlers only count them, the main loop acts):

* first SIGTERM or SIGINT: graceful stop — take no new jobs, let running jobs finish within
  ``jobs.stop_timeout``, then abort them: back to the queue, no attempt counted. A job in a
  step that cannot be cancelled (decoding, loading a model) is put back in the queue by the
  service itself after ``STOP_GRACE`` more seconds. Exit status 0 (130 after SIGINT, as
  for any interrupted command);
* second SIGTERM or SIGINT: immediate exit, noticed within ``JOIN_STEP``. Committed ledger
  state is safe (SQLite WAL, synchronous=FULL); a job cut short is ``running`` in the
  ledger and is finished or queued again at the next start (:mod:`.startup`);
* SIGHUP: reload the configuration; an invalid one is rejected (its errors logged) and the old
  one stays. Folder rules, job defaults, watch and log settings apply at once; a change of
  state_dir, model_dir, workers, models, metrics or notify needs a restart (logged).

Besides intake and the workers, the service runs the HTTP listener (metrics, status page),
the notifier and the daily housekeeping (:mod:`.observe`, :mod:`.housekeeping`).

Media server: with ``media_server.kind`` set, a :class:`~daemon.mediaserver.Refresher` is
started before the workers (a missing token stops the start with a configuration error),
told by the workers of every video whose subtitles were written beside it, and closed
after them (one last bounded attempt for what is pending).

Health: WATCHDOG=1 is sent only while the watcher is healthy (inbox present, observer alive,
scans recent) and every worker thread is alive and either idle or showing a sign of life
within ``jobs.stall_timeout``; long scans keep it fed as they go.

Several servers (a shared, PostgreSQL ledger): the service joins as ``node.name``, renews
its leases, takes back dead servers' jobs and scans the inbox only while it holds the
intake lock (:mod:`.cluster`); a node that does not scan has no watcher, only workers.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import structlog

from daemon import log as logsetup
from daemon.config import Config, Resolver, load_config
from daemon.errors import ConfigError, WhisperdError
from daemon.intake import Watcher, facts
from daemon.jobs.worker import Worker
from daemon.lock import StateLock
from daemon.mediaserver import Refresher
from daemon.mediaserver import start as start_refresher
from daemon.queue import Job, JobStore, NodeInfo, node_name, open_ledger
from daemon.service import health, startup
from daemon.service.bridge import IntakeBridge
from daemon.service.cluster import Membership
from daemon.service.housekeeping import Housekeeper
from daemon.service.observe import Observers
from daemon.systemd import Notifier
from daemon.version import VersionPolicy
from daemon.web import status_key

log = structlog.get_logger(__name__)

STATUS_EVERY = 5.0  # seconds between STATUS= updates when nothing changes
STATUS_QUICK = 1.0  # a change is told within this many seconds
RECORD_EVERY = 60.0  # the status record is rewritten at least this often
INCOMPLETE_EVERY = 60.0  # seconds between looks for incomplete files past their timeout
ACTIONS_EVERY = 30.0  # seconds between looks for postponed on_success actions
JOIN_STEP = 0.2  # seconds: the bounded wait used while stopping
STOP_GRACE = 10.0  # seconds after cancelling before a stuck job is requeued by the service
RESTART_ONLY = (
    "state_dir",
    "model_dir",
    "workers",
    "models",
    "media_server",
    "metrics",
    "notify",
    "ledger",
    "node",
)  # not applied by a reload


class Service:
    """The long-running service; :meth:`run_forever` blocks until stopped."""

    def __init__(self, cfg: Config, env: dict[str, str] | None = None) -> None:
        self.rules = Resolver(cfg)
        self.env = env if env is not None else dict(os.environ)
        self.notifier = Notifier(self.env)
        self.refresher: Refresher | None = None
        self.lock = StateLock(cfg.state_dir)
        self.ledger: JobStore | None = None
        self.watcher: Watcher | None = None
        self.bridge: IntakeBridge | None = None
        self.workers: list[Worker] = []
        self.observers: Observers | None = None
        self.housekeeper: Housekeeper | None = None
        self.cluster: Membership | None = None  # a shared ledger only
        self.node = node_name(cfg)
        self.version = VersionPolicy()
        self.interrupted = False  # the first stop signal was SIGINT (exit status 130)
        self._stop_requests = 0
        self._reload_requested = False
        self._last = dict.fromkeys(("status", "watchdog", "record", "incomplete", "actions"), 0.0)
        self._recorded: health.Health | None = None

    @property
    def cfg(self) -> Config:
        """The configuration in force (replaced as a whole by a reload)."""
        return self.rules.cfg

    # --- signals: flags only ---

    def _on_stop_signal(self, signum: int, frame: Any) -> None:
        if self._stop_requests == 0:
            self.interrupted = signum == signal.SIGINT
        self._stop_requests += 1

    def _on_hup(self, signum: int, frame: Any) -> None:
        self._reload_requested = True

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGHUP, self._on_hup)

    def _exit_if_forced(self) -> None:
        """A second stop signal: leave now (see the module docstring for why it is safe)."""
        if self._stop_requests >= 2:
            log.warning("second stop signal: exiting at once")
            os._exit(130 if self.interrupted else 0)

    # --- lifecycle ---

    def start(self) -> None:
        """Lock, open the ledger, finish what a stop left, start the listener, the notifier,
        the workers, the watcher and the housekeeping."""
        cfg = self.cfg
        self.lock.acquire()
        self.refresher = start_refresher(cfg.media_server, self.env)  # no token: stop here
        state_fs = facts(cfg.state_dir)
        if state_fs.network:
            log.warning(
                "state_dir is on a network filesystem: SQLite locking and fsync are unreliable "
                "there; put state_dir on local disk",
                state_dir=str(cfg.state_dir), fstype=state_fs.fstype,
            )  # fmt: skip
        self.ledger = ledger = open_ledger(cfg)
        ledger.join(NodeInfo(self.node, tuple(w.device for w in cfg.workers), cfg.node.models))
        startup.make_folders(ledger, cfg)
        settled: list[Job] = []  # brought to an end by the start-up steps: notified below
        self.version = startup.run(ledger, cfg, settled)
        self.observers = observers = Observers(cfg, ledger, self.rules,
                                               network_inbox=facts(cfg.inbox).network)  # fmt: skip
        observers.start_listener()  # first: a port in use stops the start before any work
        if observers.notifier is not None:
            observers.start_notifier([*settled, *ledger.in_state("queued", limit=-1)])
        written = self.refresher.submit if self.refresher else (lambda source: None)
        for index, spec in enumerate(cfg.workers):
            name = (
                f"{self.node}/{index}:{spec.device}" if ledger.shared else f"{index}:{spec.device}"
            )
            worker = Worker(name, spec.device, ledger, lambda: self.rules, version=self.version,
                            events=observers, serves=cfg.node.models or (),
                            on_written=written)  # fmt: skip
            self.workers.append(worker)
            observers.workers.append(worker)
            worker.start()
        if ledger.shared:
            self.cluster = Membership(ledger, lambda: self.cfg, self.workers,
                                      on_requeued=self._wake_workers)  # fmt: skip
            self.cluster.start()
        self.bridge = IntakeBridge(ledger, lambda: self.rules, self.version,
                                   on_queued=self._wake_workers,
                                   keepalive=self._keepalive,
                                   on_scan=observers.scan_done)  # fmt: skip
        self._follow_leadership(time.monotonic())  # the start-up scan, before READY, if leading
        self.housekeeper = Housekeeper(ledger, lambda: self.cfg)
        self.housekeeper.start()
        log.info("service started", inbox=str(cfg.inbox), outbox=str(cfg.outbox),
                 mode=self.watcher.mode if self.watcher else "standby (another node scans)",
                 workers=[w.name for w in self.workers], node=self.node,
                 status_page=observers.url)  # fmt: skip
        self.notifier.ready(self._health().line())

    def _follow_leadership(self, now: float) -> None:
        """Scan the inbox while this node leads (always, on SQLite); stop when it does not."""
        leading = self.watcher is not None
        leads = self.cluster.may_lead(now, leading) if self.cluster is not None else True
        if leads == leading:
            return
        if leads:
            log.info("scanning the inbox", node=self.node)
            self.watcher = self._new_watcher(self.cfg)
            self.watcher.start()
            self._step_watcher()
        else:
            log.warning("this node no longer holds the intake lock; it stops scanning",
                        node=self.node)  # fmt: skip
            assert self.watcher is not None
            self.watcher.stop()
            self.watcher = None

    def _new_watcher(self, cfg: Config) -> Watcher:
        bridge = self.bridge
        assert bridge is not None
        return Watcher(
            cfg.inbox,
            cfg.watch,
            on_ready=bridge.on_ready,
            on_incomplete=bridge.on_incomplete,
            is_known=bridge.is_known,
            on_gone=bridge.on_gone,
            marker_for=bridge.marker_for,
            before_scan=bridge.before_scan,
            after_scan=bridge.after_scan,
            keepalive=self._keepalive,
        )

    def _wake_workers(self) -> None:
        for worker in self.workers:
            worker.wake()

    def _step_watcher(self) -> None:
        if self.watcher is None:  # another node scans the inbox
            return
        assert self.bridge is not None
        try:
            self.watcher.step()
        finally:
            recorded = self.bridge.flush()
            if recorded and self.observers is not None:
                self.observers.jobs_recorded(recorded)

    def _keepalive(self) -> None:
        """Called during long scans: keep systemd's watchdog fed while the scan is busy."""
        interval = self.notifier.watchdog_interval
        now = time.monotonic()
        due = interval and now - self._last["watchdog"] >= min(interval, 5.0)
        if due and health.workers_healthy(self.workers, self.cfg.jobs.stall_timeout):
            self._last["watchdog"] = now
            self.notifier.watchdog()

    def loop_once(self, now: float) -> None:
        """One iteration of the main loop: reload, watcher step, chores, status, watchdog."""
        if self._reload_requested:
            self._reload_requested = False
            self._reload()
        if self.cluster is not None:
            self.cluster.reclaim_due(now)
            self._follow_leadership(now)
        try:
            self._step_watcher()
        except WhisperdError as err:
            log.error("watcher step failed", error=str(err))
        every = min(INCOMPLETE_EVERY, self.cfg.watch.incomplete_timeout / 4)
        if now - self._last["incomplete"] >= every and self.watcher is not None:
            assert self.bridge is not None
            self._last["incomplete"] = now
            try:
                self.bridge.fail_stale_incomplete()
            except WhisperdError as err:
                log.error("incomplete check failed", error=str(err))
        if now - self._last["status"] >= STATUS_QUICK:
            self._publish_status(now)
        if now - self._last["actions"] >= ACTIONS_EVERY and self.ledger is not None:
            self._last["actions"] = now
            try:  # on_success actions postponed while the inbox was away
                startup.finish_source_actions(self.ledger, self.cfg, self.version)
            except WhisperdError as err:
                log.error("source actions failed", error=str(err))
        interval = self.notifier.watchdog_interval
        if interval and now - self._last["watchdog"] >= min(interval, 5.0) and self.healthy():
            self._last["watchdog"] = now
            self.notifier.watchdog()

    def run_forever(self) -> int:
        """Loop until a stop signal (returns 0) or a worker thread died (returns 1)."""
        tick = min(self.watcher.tick if self.watcher else 0.5, 0.5)
        while self._stop_requests == 0:
            self.loop_once(time.monotonic())
            dead = [w.name for w in self.workers if not w.alive()]
            if dead:
                log.error("worker thread died; stopping so that the supervisor restarts us",
                          workers=dead)  # fmt: skip
                return 1
            busy = self.bridge is not None and self.bridge.checking  # a library being checked
            time.sleep(0.01 if busy else tick)
        return 130 if self.interrupted else 0

    def healthy(self) -> bool:
        """Whether systemd's watchdog should be fed (see the module docstring)."""
        if self.watcher is None and self.cluster is None:
            return False
        if self.watcher is not None and not self.watcher.healthy():
            return False
        return health.workers_healthy(self.workers, self.cfg.jobs.stall_timeout)

    def _health(self) -> health.Health:
        depth = self.ledger.queue_depth(time.time()) if self.ledger else 0
        server = None
        if self.refresher is not None:
            server = {**self.refresher.counters, "pending": self.refresher.pending_count}
        checking = self.bridge.checking if self.bridge is not None else 0
        url = self.observers.url if self.observers is not None else None
        return health.observe(depth, self.workers, self.watcher, checking=checking,
                              media_server=server, status_page=url)  # fmt: skip

    def _publish_status(self, now: float) -> None:
        """STATUS= and the status record: at once when something changed, else now and then."""
        try:
            current = self._health()
        except WhisperdError as err:
            log.error("status failed", error=str(err))
            return
        changed = current != self._recorded
        if not changed and now - self._last["status"] < STATUS_EVERY:
            return
        self._last["status"] = now
        self.notifier.status(current.line())
        if self.ledger is not None and (changed or now - self._last["record"] >= RECORD_EVERY):
            try:
                key = status_key(self.node if self.ledger.shared else None)
                self.ledger.set_meta(key, current.record(os.getpid()))
                self._recorded, self._last["record"] = current, now
            except WhisperdError as err:
                log.error("status record failed", error=str(err))

    def stop(self) -> None:
        """Ordered shutdown."""
        timeout = self.cfg.jobs.stop_timeout
        self.notifier.stopping("stopping: finishing the running job(s)")
        # 1. stop intake: no more files are queued
        if self.watcher is not None:
            self.watcher.stop()
        # 2. workers take no new job; running ones get stop_timeout to finish
        for worker in self.workers:
            worker.request_stop()
        running = [a.job.path for a in (w.snapshot() for w in self.workers) if a.job]
        if running:
            log.info("waiting for running jobs", seconds=timeout, jobs=running)
            self.notifier.extend_timeout(timeout + STOP_GRACE + 30)
        self._wait_workers(timeout)
        # 3. still running after the timeout: abort (back to the queue, no attempt counted)
        for worker in self.workers:
            if worker.alive():
                log.warning("job did not finish in time; aborting it", worker=worker.name)
                worker.cancel_job()
        self._wait_workers(STOP_GRACE)
        # 4. a job in a step that cannot be cancelled: the service requeues it itself
        self._requeue_stuck()
        # 5. the media server: one last, bounded attempt for the rescans still pending;
        #    housekeeping ends (between two prune batches), the notifier stores the summaries
        #    of folders still settling (sent after the next start), the listener stops
        if self.refresher is not None:
            self.refresher.close()
        if self.housekeeper is not None:
            self.housekeeper.stop()
        if self.observers is not None:
            self.observers.stop_notifier()
            self.observers.stop_listener()
        # 6. stop renewing leases (no job of ours runs any more), leave the cluster, close
        #    the ledger, release the lock
        if self.cluster is not None:
            self.cluster.stop()
        if self.ledger is not None:
            self.ledger.close()
        self.lock.release()
        log.info("service stopped")

    def _wait_workers(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while any(w.alive() for w in self.workers) and time.monotonic() < deadline:
            self._exit_if_forced()
            for worker in self.workers:
                worker.join(JOIN_STEP / max(1, len(self.workers)))

    def _requeue_stuck(self) -> None:
        for worker in self.workers:
            job = worker.snapshot().job
            if not worker.alive() or job is None or self.ledger is None:
                continue
            log.warning(
                "job stuck in a step that cannot be cancelled; requeued",
                worker=worker.name,
                path=job.path,
                step=worker.snapshot().step,
            )
            try:
                self.ledger.requeue(job.id, reason="stopped: the service shut down mid-job")
            except WhisperdError as err:  # it ended meanwhile: nothing to requeue
                log.info("stuck job not requeued", error=str(err))

    def _reload(self) -> None:
        self.notifier.reloading("reloading the configuration")
        try:
            new = load_config(self.cfg.path)
        except ConfigError as err:
            log.error("configuration reload rejected; keeping the running one", errors=err.errors)
            self.notifier.reloaded(self._health().line())
            return
        old = self.cfg
        for key in RESTART_ONLY:
            if getattr(new, key) != getattr(old, key):
                log.warning("setting changed; it takes effect after a restart", setting=key)
        self.rules = Resolver(
            new.model_copy(update={key: getattr(old, key) for key in RESTART_ONLY})
        )
        if self.observers is not None:
            self.observers.reloaded(self.rules)
        logsetup.setup(new.log.level, new.log.format)
        if (new.inbox, new.watch) != (old.inbox, old.watch) and self.watcher is not None:
            self.watcher.stop()
            self.watcher = self._new_watcher(self.cfg)
            self.watcher.start()
        log.info("configuration reloaded", path=str(new.path))
        self.notifier.reloaded(self._health().line())


def run(cfg: Config) -> int:
    """``whisperd run``: start, loop until a stop signal, stop cleanly."""
    service = Service(cfg)
    service.install_signal_handlers()
    try:
        service.start()
    except WhisperdError:
        service.lock.release()
        raise
    try:
        code = service.run_forever()
    finally:
        service.stop()
    return code
