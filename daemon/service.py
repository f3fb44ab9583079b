"""``whisperd run``: wires the watcher, the ledger and the workers; signals; sd_notify; health.

Signals (decided once, here; handlers only set flags, the main loop acts):

* first SIGTERM or SIGINT: graceful stop — take no new jobs, let running jobs finish within
  ``jobs.stop_timeout``, then abort them (back to the queue, no attempt counted); exit 0;
* second SIGTERM or SIGINT: immediate exit (status 0). Committed ledger state is safe (SQLite
  WAL, synchronous=FULL); a job cut short is ``running`` in the ledger and is queued again at
  the next start; outputs are written atomically, so none is half-written;
* SIGHUP: reload the configuration; an invalid one is rejected (its errors logged) and the old
  one stays. Folder rules, job defaults and watch settings apply at once; a change of
  state_dir, model_dir, workers or models needs a restart (logged).

Health: WATCHDOG=1 is sent only while the watcher is healthy (inbox present, observer alive,
scans recent) and every worker thread is alive and either idle or showing progress within
``STALL_SECONDS``.
"""

from __future__ import annotations

import fcntl
import os
import signal
import time
from pathlib import Path
from typing import Any

import structlog

from daemon import config as config_mod
from daemon import outputs
from daemon.errors import AlreadyRunningError, ConfigError, WhisperdError
from daemon.fsinfo import is_network_fs
from daemon.ledger import Fingerprint, Ledger, open_ledger
from daemon.notify import Notifier
from daemon.watcher import Candidate, Watcher, WatchOptions
from daemon.worker import Worker

log = structlog.get_logger(__name__)

LOCK_NAME = "whisperd.lock"
STALL_SECONDS = 900.0  # a worker busy this long without progress is unhealthy
STATUS_EVERY = 5.0  # seconds between STATUS= updates
JOIN_STEP = 0.2  # seconds: the bounded wait used while stopping
RESTART_ONLY = ("state_dir", "model_dir", "workers", "models")  # not applied by a reload


class StateLock:
    """One service per state_dir: an exclusive flock on ``<state_dir>/whisperd.lock``."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise AlreadyRunningError(
                f"another whisperd service (pid {holder}) is already running on state_dir "
                f"{self.path.parent}",
                hint="stop it first, or give this one its own state_dir",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def holder_pid(state_dir: Path) -> int | None:
    """The pid of a running service on this state_dir, or None (read-only, takes no lock)."""
    path = state_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 64, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def watch_options(cfg: config_mod.Config) -> WatchOptions:
    w = cfg.watch
    return WatchOptions(
        poll=w.poll,
        poll_interval=w.poll_interval,
        stable_seconds=w.stable_seconds,
        rescan_interval=w.rescan_interval,
        include=tuple(w.include),
        ignore=tuple(w.ignore),
    )


class Service:
    """The long-running service; :meth:`run` blocks until stopped and returns the exit code."""

    def __init__(self, cfg: config_mod.Config, env: dict[str, str] | None = None) -> None:
        self.cfg = cfg
        self.notifier = Notifier(env if env is not None else dict(os.environ))
        self.lock = StateLock(cfg.state_dir)
        self.ledger: Ledger | None = None
        self.watcher: Watcher | None = None
        self.workers: list[Worker] = []
        self._use_inode = True
        self._stop_requests = 0
        self._reload_requested = False
        self._last_status = 0.0
        self._last_watchdog = 0.0

    # --- signals: flags only ---

    def _on_stop_signal(self, signum: int, frame: Any) -> None:
        self._stop_requests += 1
        if self._stop_requests >= 2:
            os._exit(0)  # second TERM: at once; the ledger is consistent (see module docstring)

    def _on_hup(self, signum: int, frame: Any) -> None:
        self._reload_requested = True

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGHUP, self._on_hup)

    # --- lifecycle ---

    def start(self) -> None:
        """Lock, open the ledger, recover, clean up, start workers and the watcher."""
        cfg = self.cfg
        self.lock.acquire()
        for folder in (cfg.inbox, cfg.outbox):
            folder.mkdir(parents=True, exist_ok=True)
        if is_network_fs(cfg.state_dir):
            log.warning(
                "state_dir is on a network filesystem: SQLite locking and fsync are unreliable "
                "there; put state_dir on local disk",
                state_dir=str(cfg.state_dir),
            )
        self._use_inode = not is_network_fs(cfg.inbox)
        self.ledger = open_ledger(cfg.state_dir)
        self.ledger.recover(now=time.time())
        removed = outputs.cleanup_temp_files(cfg.outbox)
        if removed:
            log.info("temporary files removed", count=removed, outbox=str(cfg.outbox))
        for index, spec in enumerate(cfg.workers):
            worker = Worker(
                f"{index}:{spec.device}",
                spec.device,
                self.ledger,
                lambda: self.cfg,
                fingerprint=self._fingerprint,
            )
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

    def _new_watcher(self, cfg: config_mod.Config) -> Watcher:
        known = self.ledger.known_versions() if self.ledger else set()

        def is_known(rel: str, fp: Any) -> bool:
            version = (rel, self._convert(fp))
            return version in known or self.ledger.is_known(*version)

        return Watcher(
            cfg.inbox,
            watch_options(cfg),
            on_ready=self._on_ready,
            is_known=is_known,
            on_gone=lambda rel: self.ledger.mark_gone(rel, now=time.time()),
        )

    def _convert(self, fp: Any) -> Fingerprint:
        return Fingerprint(fp.size, fp.mtime_ns, fp.inode if self._use_inode else None)

    def _fingerprint(self, st: os.stat_result) -> Fingerprint:
        return Fingerprint.from_stat(st, use_inode=self._use_inode)

    def _on_ready(self, candidate: Candidate) -> None:
        """A stable file: queue this version unless it is known."""
        folder = Path(candidate.rel_path).parent.as_posix()
        try:
            settings = self.cfg.resolve(folder).settings
        except ConfigError as err:
            log.error("no valid settings for this folder; file skipped", path=candidate.rel_path,
                      error=str(err))  # fmt: skip
            return
        job = self.ledger.enqueue(
            candidate.rel_path,
            self._convert(candidate.fingerprint),
            model=settings.model,
            settings_json=settings.model_dump_json(),
            now=time.time(),
        )
        if job is not None:
            for worker in self.workers:
                worker.wake.set()

    def loop_once(self, now: float) -> None:
        """One iteration of the main loop: watcher step, reload, status, watchdog."""
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
        tick = min(self.watcher.tick, 0.5)
        while self._stop_requests == 0:
            self.loop_once(time.monotonic())
            dead = [w.name for w in self.workers if not w.thread.is_alive()]
            if dead:
                log.error("worker thread died; stopping so that the supervisor restarts us",
                          workers=dead)  # fmt: skip
                return 1
            time.sleep(tick)
        return 0

    def healthy(self) -> bool:
        if self.watcher is None or not self.watcher.healthy():
            return False
        now = time.monotonic()
        for worker in self.workers:
            if not worker.thread.is_alive():
                return False
            if worker.busy() and now - worker.activity.heartbeat > STALL_SECONDS:
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
            worker.stop_claiming.set()
            worker.wake.set()
        busy = [w for w in self.workers if w.busy()]
        if busy:
            log.info("waiting for running jobs", seconds=timeout,
                     jobs=[w.activity.job.path for w in busy if w.activity.job])  # fmt: skip
            self.notifier.extend_timeout(timeout + 30)
        deadline = time.monotonic() + timeout
        while any(w.thread.is_alive() for w in self.workers) and time.monotonic() < deadline:
            time.sleep(JOIN_STEP)
        # 3. still running after the timeout: abort (back to the queue, no attempt counted)
        for worker in self.workers:
            if worker.thread.is_alive():
                log.warning("job did not finish in time; aborting it", worker=worker.name)
                worker.cancel.set()
        for worker in self.workers:
            worker.thread.join(timeout=30)
        # 4. close the ledger and release the lock
        if self.ledger is not None:
            self.ledger.close()
        self.lock.release()
        log.info("service stopped")

    def _reload(self) -> None:
        self.notifier.reloading("reloading the configuration")
        try:
            new = config_mod.load_config(self.cfg.path)
        except ConfigError as err:
            log.error("configuration reload rejected; keeping the running one", errors=err.errors)
            self.notifier.reloaded(self._status_line())
            return
        old = self.cfg
        for key in RESTART_ONLY:
            if getattr(new, key) != getattr(old, key):
                log.warning("setting changed; it takes effect after a restart", setting=key)
        self.cfg = new.model_copy(update={key: getattr(old, key) for key in RESTART_ONLY})
        if (new.inbox, new.watch) != (old.inbox, old.watch):
            self.watcher.stop()
            self.watcher = self._new_watcher(self.cfg)
            self.watcher.start()
        log.info("configuration reloaded", path=str(new.path))
        self.notifier.reloaded(self._status_line())

    def _status_line(self) -> str:
        depth = self.ledger.queue_depth(time.time()) if self.ledger else 0
        running = [
            f"{w.activity.job.path} ({w.activity.progress:.0%})"
            for w in self.workers
            if w.activity.job is not None
        ]
        return f"queue {depth}; " + (f"running: {', '.join(running)}" if running else "idle")


def run(cfg: config_mod.Config) -> int:
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


def retry(cfg: config_mod.Config, paths: list[str] | None) -> int:
    rels = None if paths is None else [_inbox_relative(cfg, p) for p in paths]
    with open_ledger(cfg.state_dir) as ledger:
        count = ledger.retry(rels, now=time.time())
    print(f"{count} failed file{'s' if count != 1 else ''} queued again")
    return 0


def _inbox_relative(cfg: config_mod.Config, given: str) -> str:
    absolute = Path(os.path.abspath(given))
    try:
        return absolute.relative_to(cfg.inbox).as_posix()
    except ValueError:
        return Path(given).as_posix().lstrip("/") if not given.startswith("./") else given[2:]


def status(cfg: config_mod.Config, *, as_json: bool) -> int:
    from daemon import status as status_mod

    return status_mod.show(cfg, as_json=as_json, pid=holder_pid(cfg.state_dir))
