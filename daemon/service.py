"""``whisperd run``: wires intake, the queue and the workers; signals; sd_notify; health.

Signals (decided once, here; handlers only set flags, the main loop acts):

* first SIGTERM or SIGINT: graceful stop — take no new jobs, let running jobs finish within
  ``jobs.stop_timeout``, then abort them (back to the queue, no attempt counted); exit 0;
* second SIGTERM or SIGINT: immediate exit (status 0), noticed within ``JOIN_STEP``.
  Committed ledger state is safe (SQLite WAL, synchronous=FULL); a job cut short is
  ``running`` in the ledger and is queued again at the next start; outputs are written
  atomically, so none is half-written;
* SIGHUP: reload the configuration; an invalid one is rejected (its errors logged) and the old
  one stays. Folder rules, job defaults and watch settings apply at once; a change of
  state_dir, model_dir, workers or models needs a restart (logged).

Health: WATCHDOG=1 is sent only while the watcher is healthy (inbox present, observer alive,
scans recent) and every worker thread is alive and either idle or showing progress within
``STALL_SECONDS``.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import structlog

from daemon.config import Config, Resolver, load_config
from daemon.errors import AlreadyRunningError, ConfigError, WhisperdError
from daemon.intake import Candidate, Watcher, facts
from daemon.jobs.worker import Worker
from daemon.lock import StateLock
from daemon.outputs import cleanup_temp_files
from daemon.queue import JobStore, open_ledger
from daemon.systemd import Notifier
from daemon.version import Fingerprint, VersionPolicy

log = structlog.get_logger(__name__)

STALL_SECONDS = 900.0  # a worker busy this long without progress is unhealthy
STATUS_EVERY = 5.0  # seconds between STATUS= updates
JOIN_STEP = 0.2  # seconds: the bounded wait used while stopping
RESTART_ONLY = ("state_dir", "model_dir", "workers", "models")  # not applied by a reload


class Service:
    """The long-running service; :meth:`run_forever` blocks until stopped."""

    def __init__(self, cfg: Config, env: dict[str, str] | None = None) -> None:
        self.rules = Resolver(cfg)
        self.notifier = Notifier(env if env is not None else dict(os.environ))
        self.lock = StateLock(cfg.state_dir)
        self.ledger: JobStore | None = None
        self.watcher: Watcher | None = None
        self.workers: list[Worker] = []
        self.version = VersionPolicy()
        self._stop_requests = 0
        self._reload_requested = False
        self._last_status = 0.0
        self._last_watchdog = 0.0

    @property
    def cfg(self) -> Config:
        """The configuration in force (replaced as a whole by a reload)."""
        return self.rules.cfg

    # --- signals: flags only ---

    def _on_stop_signal(self, signum: int, frame: Any) -> None:
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
            os._exit(0)

    # --- lifecycle ---

    def start(self) -> None:
        """Lock, open the ledger, recover, clean up, start workers and the watcher."""
        cfg = self.cfg
        self.lock.acquire()
        for folder in (cfg.inbox, cfg.outbox):
            folder.mkdir(parents=True, exist_ok=True)
        state_fs = facts(cfg.state_dir)
        if state_fs.network:
            log.warning(
                "state_dir is on a network filesystem: SQLite locking and fsync are unreliable "
                "there; put state_dir on local disk",
                state_dir=str(cfg.state_dir), fstype=state_fs.fstype,
            )  # fmt: skip
        self.version = VersionPolicy(use_inode=facts(cfg.inbox).stable_inodes)
        self.ledger = open_ledger(cfg.state_dir)
        self.ledger.recover(now=time.time())
        removed = cleanup_temp_files(cfg.outbox)
        if removed:
            log.info("temporary files removed", count=removed, outbox=str(cfg.outbox))
        for index, spec in enumerate(cfg.workers):
            worker = Worker(f"{index}:{spec.device}", spec.device, self.ledger,
                            lambda: self.rules, version=self.version)  # fmt: skip
            self.workers.append(worker)
            worker.start()
        self.watcher = self._new_watcher(cfg)
        self.watcher.start()
        self.watcher.step()  # the start-up reconciliation scan, before READY
        log.info(
            "service started",
            inbox=str(cfg.inbox),
            outbox=str(cfg.outbox),
            mode=self.watcher.mode,
            workers=[w.name for w in self.workers],
        )
        self.notifier.ready(self._status_line())

    def _new_watcher(self, cfg: Config) -> Watcher:
        ledger = self.ledger
        assert ledger is not None
        known = ledger.known_versions()

        def is_known(rel: str, fp: Fingerprint) -> bool:
            version = (rel, self.version.identity(fp))
            return version in known or ledger.is_known(*version)

        return Watcher(
            cfg.inbox,
            cfg.watch,
            on_ready=self._on_ready,
            is_known=is_known,
            on_gone=lambda rel: ledger.mark_gone(rel, now=time.time()),
        )

    def _on_ready(self, candidate: Candidate) -> None:
        """A stable file: queue this version unless it is known."""
        assert self.ledger is not None
        folder = Path(candidate.rel_path).parent.as_posix()
        try:
            settings = self.rules.resolve(folder).settings
        except ConfigError as err:
            log.error("no valid settings for this folder; file skipped", path=candidate.rel_path,
                      error=str(err))  # fmt: skip
            return
        job = self.ledger.enqueue(
            candidate.rel_path,
            self.version.identity(candidate.fingerprint),
            model=settings.model,
            settings_json=settings.model_dump_json(),
            now=time.time(),
        )
        if job is not None:
            for worker in self.workers:
                worker.wake()

    def loop_once(self, now: float) -> None:
        """One iteration of the main loop: watcher step, reload, status, watchdog."""
        assert self.watcher is not None
        if self._reload_requested:
            self._reload_requested = False
            self._reload()
        try:
            self.watcher.step()
        except WhisperdError as err:
            log.error("watcher step failed", error=str(err))
        if now - self._last_status >= STATUS_EVERY:
            self._last_status = now
            self.notifier.status(self._status_line())
        interval = self.notifier.watchdog_interval
        if interval and now - self._last_watchdog >= min(interval, 5.0) and self.healthy():
            self._last_watchdog = now
            self.notifier.watchdog()

    def run_forever(self) -> int:
        """Loop until a stop signal (returns 0) or a worker thread died (returns 1)."""
        assert self.watcher is not None
        tick = min(self.watcher.tick, 0.5)
        while self._stop_requests == 0:
            self.loop_once(time.monotonic())
            dead = [w.name for w in self.workers if not w.alive()]
            if dead:
                log.error("worker thread died; stopping so that the supervisor restarts us",
                          workers=dead)  # fmt: skip
                return 1
            time.sleep(tick)
        return 0

    def healthy(self) -> bool:
        """Whether systemd's watchdog should be fed (see the module docstring)."""
        if self.watcher is None or not self.watcher.healthy():
            return False
        now = time.monotonic()
        for worker in self.workers:
            activity = worker.snapshot()
            if not worker.alive():
                return False
            if activity.job is not None and now - activity.heartbeat > STALL_SECONDS:
                return False
        return True

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
            self.notifier.extend_timeout(timeout + 30)
        deadline = time.monotonic() + timeout
        while any(w.alive() for w in self.workers) and time.monotonic() < deadline:
            self._exit_if_forced()
            time.sleep(JOIN_STEP)
        # 3. still running after the timeout: abort (back to the queue, no attempt counted)
        for worker in self.workers:
            if worker.alive():
                log.warning("job did not finish in time; aborting it", worker=worker.name)
                worker.cancel_job()
        join_deadline = time.monotonic() + 30
        for worker in self.workers:
            while not worker.join(JOIN_STEP) and time.monotonic() < join_deadline:
                self._exit_if_forced()
        # 4. close the ledger and release the lock
        if self.ledger is not None:
            self.ledger.close()
        self.lock.release()
        log.info("service stopped")

    def _reload(self) -> None:
        self.notifier.reloading("reloading the configuration")
        try:
            new = load_config(self.cfg.path)
        except ConfigError as err:
            log.error("configuration reload rejected; keeping the running one", errors=err.errors)
            self.notifier.reloaded(self._status_line())
            return
        old = self.cfg
        for key in RESTART_ONLY:
            if getattr(new, key) != getattr(old, key):
                log.warning("setting changed; it takes effect after a restart", setting=key)
        self.rules = Resolver(
            new.model_copy(update={key: getattr(old, key) for key in RESTART_ONLY})
        )
        if (new.inbox, new.watch) != (old.inbox, old.watch):
            assert self.watcher is not None
            self.watcher.stop()
            self.watcher = self._new_watcher(self.cfg)
            self.watcher.start()
        log.info("configuration reloaded", path=str(new.path))
        self.notifier.reloaded(self._status_line())

    def _status_line(self) -> str:
        depth = self.ledger.queue_depth(time.time()) if self.ledger else 0
        running = [
            f"{a.job.path} ({a.progress:.0%})"
            for a in (w.snapshot() for w in self.workers)
            if a.job is not None
        ]
        return f"queue {depth}; " + (f"running: {', '.join(running)}" if running else "idle")


def run(cfg: Config) -> int:
    """``whisperd run``: start, loop until a stop signal, stop cleanly."""
    service = Service(cfg)
    service.install_signal_handlers()
    try:
        service.start()
    except AlreadyRunningError:
        raise
    except WhisperdError:
        service.lock.release()
        raise
    try:
        code = service.run_forever()
    finally:
        service.stop()
    return code
