"""The inbox watcher: change events as hints, scans and polls, stability, health.

A file in the inbox becomes a :class:`~daemon.intake.stability.Candidate` (handed to
``on_ready``) once it is eligible and stable (:mod:`daemon.intake.stability`).

Where changes come from:

* **inotify** (local filesystems): watchdog's observer thread only records *hints* (paths);
  all work happens in :meth:`Watcher.step`, in the caller's thread.
* **polling** (network filesystems, ``poll: always``, or when inotify cannot start), and
  the **reconciliation scan** at the first step and every ``rescan_interval``:
  :mod:`daemon.intake.scan`.

Threading: :meth:`Watcher.start` starts the observer (so nothing is missed during the first
scan) but scans nothing; the first :meth:`Watcher.step` runs the start-up scan. ``on_ready``,
``is_known`` and ``on_gone`` are only ever called from ``step()``, i.e. from the one thread
that runs :meth:`Watcher.run` (or calls ``step()`` itself).

Health: the inbox present (a removed and re-created inbox is noticed and rescanned), the
observer's threads alive (restarted with a rescan when they die), a full scan done recently.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from daemon.config import WatchSettings, name_matcher, own_file
from daemon.intake import hints
from daemon.intake.fsinfo import facts
from daemon.intake.readiness import Judge, MarkerFor
from daemon.intake.scan import GONE_ERRORS, Tree
from daemon.intake.stability import Candidate, Stability
from daemon.version import Fingerprint

log = structlog.get_logger(__name__)


class Watcher:
    """Watches one inbox and hands stable files to ``on_ready``; see the module docstring."""

    def __init__(
        self,
        inbox: Path,
        options: WatchSettings,
        *,
        on_ready: Callable[[Candidate], None],
        is_known: Callable[[str, Fingerprint], bool] = lambda r, f: False,
        on_gone: Callable[[str], None] | None = None,
        on_incomplete: Callable[[Candidate, str], None] | None = None,
        marker_for: MarkerFor = lambda rel: None,
        before_scan: Callable[[], None] | None = None,
        after_scan: Callable[[set[str]], None] | None = None,
        keepalive: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._root = os.path.abspath(os.fsdecode(inbox))
        self._options = options
        self._clock = clock
        self._before_scan = before_scan
        self._after_scan = after_scan
        network = facts(self._root).network
        judge = Judge(options, network=network, marker_for=marker_for)
        self._tick = max(0.01, min(options.poll_interval, judge.window / 2, 1.0))
        self._stability = Stability(
            judge, on_ready=on_ready, is_known=is_known, on_gone=on_gone,
            on_incomplete=on_incomplete, probe=self._probe, keepalive=keepalive,
        )  # fmt: skip
        include = name_matcher(options.include, empty=True)
        self._tree = Tree(
            self._root,
            include=lambda name: include(name) and not own_file(name),
            ignore=name_matcher(options.ignore),
            stability=self._stability,
            warn_once=self._warn_once,
            revalidate=network,
            keepalive=keepalive,
        )
        self._warned: set[str] = set()  # paths already logged once (bad symlink, unreadable)

        self._hints = hints.Hints()
        self._observer: Any = None

        self._mode = "polling"
        self._started = self._stopped = False
        self._missing = False
        self._root_ino: int | None = None
        self._next_full = self._next_poll = 0.0
        self._last_full_scan: float | None = None
        self._last_scan_seconds = 0.0
        self._counts = {"scans": 0, "polls": 0, "restarts": 0}

    def _probe(self, path: str, rel: str) -> Fingerprint | None:
        return self._tree.probe(path, rel)

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Pick the mode and start the observer; the first :meth:`step` does the start-up scan."""
        self._started, self._stopped = True, False
        try:
            self._root_ino = os.stat(self._root).st_ino
        except OSError as err:
            self._missing = True
            log.warning("inbox missing; waiting for it to come back", inbox=self._root,
                        error=str(err))  # fmt: skip
            return
        self._start_observer()
        self._next_full = float("-inf")  # the first step scans everything

    def stop(self) -> None:
        """Stop watching. Tracked state is kept; a later start() rescans anyway."""
        # 1. no more steps do work; 2. stop and join the observer thread; 3. drop stale hints.
        self._stopped = True
        self._stop_observer()
        self._hints.take()

    def run(self, stop: threading.Event) -> None:
        """Call :meth:`step` until ``stop`` is set, waking at least every ``tick`` seconds."""
        while not stop.is_set():
            try:
                self.step()
            except Exception:  # a callback failed (e.g. the ledger): log, keep the loop alive
                log.exception("watcher step failed; retrying", inbox=self._root)
            stop.wait(self._tick)

    # --- one iteration -----------------------------------------------------------------------

    def step(self, now: float | None = None) -> int:
        """One iteration: health, hints, scan or poll when due, stability; returns # emitted."""
        if not self._started:
            raise RuntimeError("Watcher.step() needs start() first")
        if self._stopped:
            return 0
        now = self._clock() if now is None else now
        if not self._check_health(now):
            return 0
        try:
            self._process_hints(now)
            if now >= self._next_full:
                self._full_scan(now)
            elif self._mode == "polling" and now >= self._next_poll:
                self._next_poll = now + self._options.poll_interval
                self._counts["polls"] += 1
                self._tree.poll(now)
        except OSError as err:  # anything the per-path handling did not expect
            self._warn_once("step", "inbox scan failed; will retry", error=str(err))
        return self._stability.check(now)

    # --- status ------------------------------------------------------------------------------

    @property
    def mode(self) -> str:
        """'inotify' or 'polling'."""
        return self._mode

    @property
    def tick(self) -> float:
        """The longest :meth:`run` sleeps between two steps."""
        return self._tick

    @property
    def pending_count(self) -> int:
        """Files seen but not yet stable."""
        return len(self._stability.pending)

    def refused(self) -> list[str]:
        """Entries seen but not taken, with the reason ("a.wav: a symlink that ...")."""
        return [f"{rel}: {why}" for rel, why in sorted(self._tree.refused.items())]

    def waiting(self) -> dict[str, int]:
        """Pending files by why they wait ("open for writing", "settling", ...)."""
        return self._stability.waiting()

    def healthy(self, now: float | None = None) -> bool:
        """Started, inbox present, observer alive (inotify) and a full scan done recently."""
        if not self._started or self._stopped or self._missing or self._last_full_scan is None:
            return False
        if not os.path.isdir(self._root):
            return False
        if self._mode == "inotify" and not self._observer_alive():
            return False
        now = self._clock() if now is None else now
        allowed = 2 * self._options.rescan_interval + 2 * self._last_scan_seconds + 1.0
        return now - self._last_full_scan <= allowed

    @property
    def stats(self) -> dict[str, Any]:
        """Counters for the service's status output."""
        return {
            "inbox": self._root, "mode": self._mode, "pending": len(self._stability.pending),
            "tracked_emitted": len(self._stability.emitted), **self._tree.stats(),
            "inbox_missing": self._missing, "last_scan_seconds": round(self._last_scan_seconds, 3),
            **self._stability.counts, **self._counts,
        }  # fmt: skip

    # --- health and recovery -----------------------------------------------------------------

    def _check_health(self, now: float) -> bool:
        """Detect a missing/replaced inbox or a dead observer and recover; False: no inbox."""
        try:
            st = os.stat(self._root)
            present = stat.S_ISDIR(st.st_mode)
            error = "" if present else "not a directory"
        except OSError as err:
            present, error = False, str(err)
        if not present:
            if not self._missing:
                log.warning("inbox missing; waiting for it to come back", inbox=self._root,
                            error=error)  # fmt: skip
                self._missing = True
                self._stop_observer()
            return False
        if self._missing or st.st_ino != self._root_ino:
            log.info("inbox is back; rescanning", inbox=self._root)
            self._missing, self._root_ino = False, st.st_ino
            self._restart(now)
        elif self._mode == "inotify" and not self._observer_alive():
            log.error("inbox observer stopped; restarting it and rescanning", inbox=self._root,
                      reason=self._observer_death_reason())  # fmt: skip
            self._counts["restarts"] += 1
            self._restart(now)
        return True

    def _restart(self, now: float) -> None:
        self._stop_observer()
        self._tree.root_real = os.path.realpath(self._root)
        self._start_observer()
        self._next_full = now  # events were missed: reconcile now

    def _choose_mode(self) -> str:
        poll = self._options.poll
        if poll == "always" or not hints.INOTIFY:
            return "polling"
        if poll == "auto":
            fs = facts(self._root)
            if fs.network:
                log.info("inbox is on a network filesystem; polling", inbox=self._root,
                         fstype=fs.fstype)  # fmt: skip
                return "polling"
        return "inotify"

    def _start_observer(self) -> None:
        """Start an inotify observer if the mode calls for one; fall back to polling."""
        self._mode = self._choose_mode()
        if self._mode != "inotify":
            return
        try:
            self._observer = hints.start_observer(self._root, self._hints.handler())
        except Exception as err:  # ENOSPC (watch limit), EMFILE (instance limit), …
            log.warning("cannot start the inotify observer; polling instead", inbox=self._root,
                        error=str(err))  # fmt: skip
            self._mode = "polling"

    def _stop_observer(self) -> None:
        observer, self._observer = self._observer, None
        if observer is not None:
            hints.join(observer)

    def _observer_alive(self) -> bool:
        threads = hints.threads(self._observer)
        return bool(threads) and all(t.is_alive() for t in threads)

    def _observer_death_reason(self) -> str:
        if self._observer is None:
            return "no observer"
        dead = [type(t).__name__ for t in hints.threads(self._observer) if not t.is_alive()]
        return f"thread(s) stopped: {', '.join(dead)} (inbox deleted, moved, or an error)"

    # --- hints (inotify) -----------------------------------------------------------------------

    def _process_hints(self, now: float) -> None:
        taken = self._hints.take()
        if taken is None:
            log.warning("too many filesystem events at once; rescanning", inbox=self._root)
            self._next_full = now
            return
        for path, closed in taken.items():
            self._hint(path, closed, now)

    def _hint(self, path: str, closed: bool, now: float) -> None:
        """Look at one hinted path: a folder is scanned, a file observed or forgotten."""
        tree, stability = self._tree, self._stability
        rel = tree.rel(path)
        if not rel or tree.ignored(rel) or tree.skipped(rel):
            return
        try:
            st = os.lstat(path)
        except GONE_ERRORS:
            tree.verify_tracked(rel)
            return
        except OSError:
            return
        if stat.S_ISDIR(st.st_mode):
            tree.scan(path, rel, now, recursive=True)
            return
        fp = tree.file_fp(path, rel, st)
        if fp is not None:
            stability.observe(rel, path, fp, now)
            if closed:
                stability.closed(rel)
        elif stability.tracks(rel):
            stability.gone(rel)  # replaced by something that is not an eligible file

    def _full_scan(self, now: float) -> None:
        """The reconciliation scan, timed and counted."""
        started = time.monotonic()
        if self._before_scan is not None:
            self._before_scan()
        present = self._tree.full_scan(now)
        if present is not None and self._after_scan is not None:
            self._after_scan(present)
        files = len(present) if present is not None else -1
        self._last_scan_seconds = time.monotonic() - started
        self._last_full_scan, self._next_full = now, now + self._options.rescan_interval
        self._next_poll = now + self._options.poll_interval
        self._counts["scans"] += 1
        log.debug("inbox scanned", inbox=self._root, files=files,
                  pending=len(self._stability.pending),
                  seconds=round(self._last_scan_seconds, 3))  # fmt: skip

    def _warn_once(self, key: str, message: str, **fields: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, inbox=self._root, path=key, **fields)


__all__ = ["Candidate", "Watcher"]
