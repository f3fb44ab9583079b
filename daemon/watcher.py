"""Inbox watcher: watchdog hints + reconciliation scans + stability tracking.

A file in the inbox becomes a :class:`Candidate` (handed to ``on_ready``) once it is
eligible and *stable*: its (size, mtime_ns, inode) was seen unchanged at two observations at
least ``stable_seconds`` apart on the injected clock. Empty files too (the pipeline reports
them as empty media). A renamed-in file with an old mtime still waits ``stable_seconds``.

Where changes come from:

* **inotify** (local filesystems): watchdog's observer thread only records *hints* (paths);
  all work happens in :meth:`Watcher.step`, in the caller's thread.
* **polling** (network filesystems, ``poll: always``, or when inotify cannot start): our own
  directory-mtime poller inside :meth:`Watcher.step`. Every ``poll_interval`` it stats only
  the known *directories* and re-lists those whose (mtime, inode) changed; in a changed
  directory only files whose ctime is not older than the directory's previous mtime are
  looked up with ``is_known``. watchdog's PollingObserver is not used: it stats every file
  of the tree each interval, far too much idle work for 100,000 files on a share.
* A full **reconciliation scan** (os.scandir, one lstat per candidate file) runs at the
  first step and every ``rescan_interval``; it catches whatever hints missed (inotify queue
  overflow, files added while down, NFS attribute caching, in-place rewrites seen by polling).

Threading: :meth:`Watcher.start` starts the observer (so nothing is missed during the first
scan) but scans nothing; the first :meth:`Watcher.step` runs the start-up scan. ``on_ready``,
``is_known`` and ``on_gone`` are only ever called from ``step()``, i.e. from the one thread
that runs :meth:`Watcher.run` (or calls ``step()`` itself).
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from watchdog.events import FileSystemEvent, FileSystemEventHandler

from daemon.fsinfo import filesystem_type, is_network_fs

try:  # inotify exists on Linux only; elsewhere the watcher always polls.
    from watchdog.observers.inotify import InotifyObserver
except Exception:  # pragma: no cover - non-Linux or a libc without inotify
    InotifyObserver = None  # type: ignore[assignment,misc]

log = structlog.get_logger(__name__)

DEFAULT_IGNORE: tuple[str, ...] = (
    ".*", "*.part", "*.partial", "*.tmp", "*.crdownload", "~$*", "Thumbs.db", "desktop.ini",
    "@eaDir", ".DS_Store", "._*",
)  # fmt: skip
MAX_HINTS = 10_000  # more distinct hinted paths between two steps: drop them, rescan instead
CTIME_SLACK_NS = 2_000_000_000  # clock granularity / skew allowance for the ctime filter
_GONE_ERRORS = (FileNotFoundError, NotADirectoryError)


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What identifies one version of a file: a change to any field means new content."""

    size: int
    mtime_ns: int
    inode: int


@dataclass(frozen=True)
class WatchOptions:
    """The watcher's settings; same field names as the config module's ``WatchSettings``."""

    poll: str = "auto"  # auto | always | never
    poll_interval: float = 2.0
    stable_seconds: float = 5.0
    rescan_interval: float = 300.0
    include: tuple[str, ...] = ()  # empty: every file name
    ignore: tuple[str, ...] = DEFAULT_IGNORE

    def __post_init__(self) -> None:
        if self.poll not in ("auto", "always", "never"):
            raise ValueError(f"poll must be auto, always or never, not {self.poll!r}")
        for name in ("poll_interval", "stable_seconds", "rescan_interval"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        object.__setattr__(self, "include", tuple(self.include))
        object.__setattr__(self, "ignore", tuple(self.ignore))


@dataclass(frozen=True)
class Candidate:
    """A stable, eligible inbox file. ``rel_path``: inbox-relative, POSIX, surrogateescape."""

    rel_path: str
    path: Path
    fingerprint: Fingerprint


@dataclass(slots=True)
class _Pending:
    path: str
    fp: Fingerprint
    since: float  # clock time when ``fp`` was first observed


def _globs(patterns: Iterable[str]) -> re.Pattern[str] | None:
    """One case-insensitive regex for a list of globs; None for an empty list."""
    parts = [f"(?:{fnmatch.translate(p)})" for p in patterns]
    return re.compile("|".join(parts), re.IGNORECASE) if parts else None


class _HintHandler(FileSystemEventHandler):
    """Runs in watchdog's thread: records paths to look at, nothing else."""

    def __init__(self, sink: Callable[[str], None]) -> None:
        self._sink = sink

    def on_any_event(self, event: FileSystemEvent) -> None:
        kind = event.event_type
        if kind in ("opened", "closed_no_write") or (event.is_directory and kind == "modified"):
            return  # a directory's "modified" fires on every create: its entries hint instead
        self._sink(os.fsdecode(event.src_path))
        if kind == "moved" and event.dest_path:
            self._sink(os.fsdecode(event.dest_path))


class Watcher:
    """Watches one inbox and hands stable files to ``on_ready``; see the module docstring."""

    def __init__(
        self,
        inbox: Path,
        options: WatchOptions,
        *,
        on_ready: Callable[[Candidate], None],
        is_known: Callable[[str, Fingerprint], bool] = lambda r, f: False,
        on_gone: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._root = os.path.abspath(os.fsdecode(inbox))
        self._root_real = os.path.realpath(self._root)
        self._options = options
        self._on_ready, self._is_known, self._on_gone = on_ready, is_known, on_gone
        self._clock = clock
        self._include = _globs(options.include)
        self._ignore = _globs(options.ignore)
        self._tick = max(0.01, min(options.poll_interval, options.stable_seconds / 2, 1.0))

        self._pending: dict[str, _Pending] = {}
        self._emitted: dict[str, Fingerprint] = {}  # emitted and unchanged since; no more
        self._dirs: dict[str, tuple[int, int]] = {}  # abs dir -> (mtime_ns, inode), for polling
        self._warned: set[str] = set()  # paths already logged once (bad symlink, unreadable)

        self._hints: dict[str, None] = {}
        self._hints_lock = threading.Lock()
        self._hints_overflow = False
        self._handler = _HintHandler(self._add_hint)
        self._observer: Any = None

        self._mode = "polling"
        self._started = self._stopped = False
        self._missing = False
        self._root_ino: int | None = None
        self._next_full = self._next_poll = 0.0
        self._last_full_scan: float | None = None
        self._last_scan_seconds = 0.0
        self._counts = {"emitted": 0, "gone": 0, "scans": 0, "polls": 0, "restarts": 0}

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
        with self._hints_lock:
            self._hints.clear()

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
                self._poll_dirs(now)
        except OSError as err:  # anything the per-path handling did not expect
            self._warn_once("step", "inbox scan failed; will retry", error=str(err))
        return self._check_pending(now)

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
        return len(self._pending)

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
            "inbox": self._root, "mode": self._mode, "pending": len(self._pending),
            "tracked_emitted": len(self._emitted), "directories": len(self._dirs),
            "inbox_missing": self._missing, "last_scan_seconds": round(self._last_scan_seconds, 3),
            **self._counts,
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
        self._root_real = os.path.realpath(self._root)
        self._start_observer()
        self._next_full = now  # events were missed: reconcile now

    def _choose_mode(self) -> str:
        poll = self._options.poll
        if poll == "always" or InotifyObserver is None:
            return "polling"
        if poll == "auto" and is_network_fs(self._root):
            log.info("inbox is on a network filesystem; polling", inbox=self._root,
                     fstype=filesystem_type(self._root))  # fmt: skip
            return "polling"
        return "inotify"

    def _start_observer(self) -> None:
        """Start an inotify observer if the mode calls for one; fall back to polling."""
        self._mode = self._choose_mode()
        if self._mode != "inotify":
            return
        observer = None
        try:
            observer = InotifyObserver()
            observer.schedule(self._handler, self._root, recursive=True)
            observer.start()
        except Exception as err:  # ENOSPC (watch limit), EMFILE (instance limit), …
            log.warning("cannot start the inotify observer; polling instead", inbox=self._root,
                        error=str(err))  # fmt: skip
            if observer is not None:
                self._join(observer)
            self._mode = "polling"
            return
        self._observer = observer

    def _stop_observer(self) -> None:
        observer, self._observer = self._observer, None
        if observer is not None:
            self._join(observer)

    @staticmethod
    def _join(observer: Any) -> None:
        try:
            observer.stop()
            observer.join(timeout=5)
        except Exception as err:  # a half-started observer may refuse; it is dropped anyway
            log.debug("observer stop failed", error=str(err))

    def _threads(self) -> list[threading.Thread]:
        obs = self._observer
        if obs is None:
            return []
        fd_reader = getattr(obs, "_inotify_fd", None)  # watchdog ≥ 6 reads inotify in a thread
        return [obs, *obs.emitters, *([fd_reader] if isinstance(fd_reader, threading.Thread)
                                      else [])]  # fmt: skip

    def _observer_alive(self) -> bool:
        threads = self._threads()
        return bool(threads) and all(t.is_alive() for t in threads)

    def _observer_death_reason(self) -> str:
        if self._observer is None:
            return "no observer"
        dead = [type(t).__name__ for t in self._threads() if not t.is_alive()]
        return f"thread(s) stopped: {', '.join(dead)} (inbox deleted, moved, or an error)"

    # --- hints (inotify) -----------------------------------------------------------------------

    def _add_hint(self, path: str) -> None:
        """Called from watchdog's thread."""
        with self._hints_lock:
            if len(self._hints) >= MAX_HINTS:
                self._hints_overflow = True
                self._hints.clear()
            elif not self._hints_overflow:
                self._hints[path] = None

    def _process_hints(self, now: float) -> None:
        with self._hints_lock:
            hints, self._hints = self._hints, {}
            overflow, self._hints_overflow = self._hints_overflow, False
        if overflow:
            log.warning("too many filesystem events at once; rescanning", inbox=self._root)
            self._next_full = now
            return
        for path in hints:
            rel = self._rel(path)
            if not rel or (self._ignore and any(map(self._ignore.match, rel.split("/")))):
                continue
            try:
                st = os.lstat(path)
            except _GONE_ERRORS:
                self._verify_tracked(rel)
                continue
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                self._scan(path, rel, now, recursive=True)
                continue
            fp = self._file_fp(path, rel, st)
            if fp is not None:
                self._observe(rel, path, fp, now)
            elif rel in self._pending or rel in self._emitted:
                self._gone(rel)  # replaced by something that is not an eligible file

    # --- scanning ----------------------------------------------------------------------------

    def _full_scan(self, now: float) -> None:
        """Reconcile with the whole tree: new and changed files, and tracked ones now gone."""
        started = time.monotonic()
        self._dirs = {}
        seen: set[str] = set()
        files = self._scan(self._root, "", now, recursive=True, seen=seen)
        self._reap(seen, None)
        self._last_scan_seconds = time.monotonic() - started
        self._last_full_scan, self._next_full = now, now + self._options.rescan_interval
        self._next_poll = now + self._options.poll_interval
        self._counts["scans"] += 1
        log.debug("inbox scanned", inbox=self._root, files=files, pending=len(self._pending),
                  seconds=round(self._last_scan_seconds, 3))  # fmt: skip

    def _poll_dirs(self, now: float) -> None:
        """Polling mode: stat known directories, re-list only those that changed."""
        self._next_poll = now + self._options.poll_interval
        self._counts["polls"] += 1
        changed: list[tuple[str, int | None]] = []
        removed: list[str] = []
        for path, (mtime_ns, ino) in list(self._dirs.items()):
            try:
                st = os.stat(path)
            except _GONE_ERRORS:
                removed.append(path)
                continue
            except OSError:
                continue
            if st.st_ino != ino:
                changed.append((path, None))  # a different directory now: everything is new
            elif st.st_mtime_ns != mtime_ns:
                changed.append((path, mtime_ns - CTIME_SLACK_NS))
        for path in removed:
            self._dirs = {d: v for d, v in self._dirs.items()
                          if d != path and not d.startswith(path + "/")}  # fmt: skip
            self._verify_tracked(self._rel(path) or "")
        seen: set[str] = set()
        listed: set[str] = set()
        for path, fresh_since in changed:
            rel = self._rel(path) or ""
            listed.add(rel)
            self._scan(path, rel, now, recursive=False, seen=seen, fresh_since=fresh_since)
        if listed:
            self._reap(seen, listed)

    def _scan(
        self,
        top: str,
        top_rel: str,
        now: float,
        *,
        recursive: bool,
        seen: set[str] | None = None,
        fresh_since: int | None = None,
    ) -> int:
        """List ``top`` (and subdirectories: all, or only unknown ones); observe files.

        ``seen`` collects tracked rels found; ``fresh_since`` (ns) skips untracked files
        whose ctime is older, i.e. that were there before the directory last changed.
        """
        include, ignore = self._include, self._ignore
        pending, emitted = self._pending, self._emitted
        stack = [(top, top_rel, fresh_since)]
        files = 0
        while stack:
            dir_path, dir_rel, fresh = stack.pop()
            try:
                dst = os.stat(dir_path)  # before listing: a later change shows on next poll
                with os.scandir(dir_path) as it:
                    entries = list(it)
            except _GONE_ERRORS:
                continue
            except OSError as err:
                self._warn_once(dir_path, "cannot read inbox folder; skipping it",
                                error=str(err))  # fmt: skip
                continue
            self._dirs[dir_path] = (dst.st_mtime_ns, dst.st_ino)
            prefix = dir_rel + "/" if dir_rel else ""
            for entry in entries:
                name = entry.name
                if ignore is not None and ignore.match(name):
                    continue
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if recursive or entry.path not in self._dirs:
                            stack.append((entry.path, prefix + name, None))
                        continue
                    if include is not None and not include.match(name):
                        continue
                    rel = prefix + name
                    if entry.is_file(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)
                        if fresh is not None and st.st_ctime_ns < fresh and rel not in pending \
                                and rel not in emitted:  # fmt: skip
                            continue
                        fp = Fingerprint(st.st_size, st.st_mtime_ns, st.st_ino)
                    elif entry.is_symlink():
                        fp = self._link_fp(entry.path, rel)
                        if fp is None:
                            continue
                    else:
                        continue  # FIFO, socket, device: never opened
                except OSError:
                    continue  # vanished between listing and stat
                files += 1
                self._observe(rel, entry.path, fp, now)
                if seen is not None and (rel in pending or rel in emitted):
                    seen.add(rel)
            self._warned.discard(dir_path)
        return files

    def _file_fp(self, path: str, rel: str, st: os.stat_result) -> Fingerprint | None:
        """Fingerprint of an eligible file given its lstat; None when not eligible."""
        name = rel.rpartition("/")[2]
        if self._include is not None and not self._include.match(name):
            return None
        if stat.S_ISREG(st.st_mode):
            return Fingerprint(st.st_size, st.st_mtime_ns, st.st_ino)
        if stat.S_ISLNK(st.st_mode):
            return self._link_fp(path, rel)
        return None

    def _link_fp(self, path: str, rel: str) -> Fingerprint | None:
        """A symlink counts only if it resolves to a regular file inside the inbox."""
        try:
            st = os.stat(path)
        except OSError:
            return None  # dangling or a loop: ignored
        real = os.path.realpath(path)
        if not real.startswith(self._root_real + "/"):
            self._warn_once(path, "symlink points outside the inbox; refused", rel=rel,
                            target=real)  # fmt: skip
            return None
        return Fingerprint(st.st_size, st.st_mtime_ns, st.st_ino) if stat.S_ISREG(st.st_mode) \
            else None  # fmt: skip

    def _probe(self, path: str, rel: str) -> Fingerprint | None:
        """Current fingerprint; None if gone or no longer eligible; OSError if unknowable."""
        try:
            st = os.lstat(path)
        except _GONE_ERRORS:
            return None
        return self._file_fp(path, rel, st)

    # --- stability ---------------------------------------------------------------------------

    def _observe(self, rel: str, path: str, fp: Fingerprint, now: float) -> None:
        """A file was seen with ``fp``: start its stability clock unless nothing is new."""
        if rel in self._pending:
            return  # _check_pending re-stats it this step and restarts its clock on change
        old = self._emitted.get(rel)
        if old is not None:
            if old == fp:
                return
            del self._emitted[rel]  # rewritten or replaced: stability again, then emit again
        if self._is_known(rel, fp):
            return
        self._pending[rel] = _Pending(path, fp, now)

    def _check_pending(self, now: float) -> int:
        """Re-stat pending files; hand on those unchanged for ``stable_seconds``."""
        emitted = 0
        for rel, pending in list(self._pending.items()):
            try:
                fp = self._probe(pending.path, rel)
            except OSError:
                continue  # unreadable right now (EACCES, EIO): keep it, try again
            if fp is None:
                self._gone(rel)
            elif fp != pending.fp:
                pending.fp, pending.since = fp, now
            elif now - pending.since >= self._options.stable_seconds:
                self._on_ready(Candidate(rel, Path(pending.path), fp))
                del self._pending[rel]
                self._emitted[rel] = fp
                emitted += 1
        self._counts["emitted"] += emitted
        return emitted

    def _verify_tracked(self, rel_prefix: str) -> None:
        """Probe tracked files at or below ``rel_prefix`` ('' = all); forget the gone ones."""
        under = rel_prefix + "/" if rel_prefix else ""
        for rel in [*self._pending, *self._emitted]:
            if rel == rel_prefix or rel.startswith(under):
                self._reap_one(rel)

    def _reap(self, seen: set[str], listed_dirs: set[str] | None) -> None:
        """Tracked files not ``seen`` in a scan of ``listed_dirs`` (None: all) may be gone."""
        for rel in [*self._pending, *self._emitted]:
            if rel in seen:
                continue
            if listed_dirs is None or rel.rpartition("/")[0] in listed_dirs:
                self._reap_one(rel)

    def _reap_one(self, rel: str) -> None:
        path = self._root + "/" + rel
        try:
            if self._probe(path, rel) is None:
                self._gone(rel)
        except OSError:
            pass  # cannot tell (permission, I/O error): keep tracking it

    def _gone(self, rel: str) -> None:
        tracked = self._pending.pop(rel, None) is not None
        tracked = self._emitted.pop(rel, None) is not None or tracked
        if tracked:
            self._counts["gone"] += 1
            log.debug("inbox file gone", rel=rel)
            if self._on_gone is not None:
                self._on_gone(rel)

    # --- helpers -----------------------------------------------------------------------------

    def _rel(self, path: str) -> str | None:
        """Inbox-relative POSIX path; '' for the inbox itself; None outside it."""
        if path == self._root:
            return ""
        if path.startswith(self._root + "/"):
            return path[len(self._root) + 1 :]
        return None

    def _warn_once(self, key: str, message: str, **fields: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, inbox=self._root, path=key, **fields)


__all__ = ["DEFAULT_IGNORE", "Candidate", "Fingerprint", "WatchOptions", "Watcher"]
