"""Listing the inbox: reconciliation scans, the directory-mtime poller, what is eligible.

* A full **reconciliation scan** (os.scandir, one lstat per candidate file) lists the whole
  tree; it catches whatever change events missed (inotify queue overflow, files added while
  the service was down, NFS attribute caching, in-place rewrites seen by polling).
* **Polling** (network filesystems, ``poll: always``, or when inotify cannot start): every
  ``poll_interval`` only the known *directories* are stat'ed and those whose (mtime, inode)
  changed are re-listed; in a changed directory only files whose ctime is not older than the
  directory's previous mtime are looked up, so an idle tree of 100,000 files costs little.
  watchdog's PollingObserver is not used: it stats every file of the tree each interval.

What is eligible: a regular file whose name matches ``include`` (and is not one of
whisperd's own files) and no path component matches ``ignore``, in no folder holding a
``.whisperd-skip`` marker (nor below one); a symlink only when it resolves to a regular
file inside the inbox (refused, with one warning, when it leads outside); FIFOs, sockets
and devices never.
Every eligible file found is handed to :class:`~daemon.intake.stability.Stability`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from typing import Any

from daemon.config import SKIP_MARKER, NameMatcher
from daemon.intake.stability import Stability
from daemon.version import Fingerprint

CTIME_SLACK_NS = 2_000_000_000  # clock granularity / skew allowance for the ctime filter
KEEPALIVE_EVERY = 2000  # directory entries listed between two keepalive calls
GONE_ERRORS = (FileNotFoundError, NotADirectoryError)


class Tree:
    """The inbox tree as last listed: its directories, and how to list and probe it."""

    def __init__(
        self,
        root: str,
        *,
        include: NameMatcher,
        ignore: NameMatcher,
        stability: Stability,
        warn_once: Callable[..., None],
        revalidate: bool = False,
        keepalive: Callable[[], None] | None = None,
    ) -> None:
        self.root = root
        self._revalidate = revalidate  # open() before each re-stat: NFS close-to-open
        self._keepalive = keepalive
        self._listed = 0
        self.root_real = os.path.realpath(root)
        self._include, self._ignore = include, ignore
        self._stability = stability
        self._warn_once = warn_once
        self.dirs: dict[str, tuple[int, int]] = {}  # abs dir -> (mtime_ns, inode), for polling
        self.refused: dict[str, str] = {}  # rel -> why it is not taken (shown by status)
        self._present: set[str] | None = None  # eligible files found, during a full scan
        self._unreadable = 0  # folders that could not be listed, during a full scan

    # --- names ---------------------------------------------------------------------------

    def rel(self, path: str) -> str | None:
        """Inbox-relative POSIX path; '' for the inbox itself; None outside it."""
        if path == self.root:
            return ""
        if path.startswith(self.root + "/"):
            return path[len(self.root) + 1 :]
        return None

    def ignored(self, rel: str) -> bool:
        """Whether any component of ``rel`` matches an ignore pattern."""
        return any(map(self._ignore, rel.split("/")))

    def skipped(self, rel: str) -> bool:
        """Whether ``rel`` lies in (or below) a folder holding the ``.whisperd-skip`` marker."""
        parts = rel.split("/")
        for depth in range(len(parts)):
            folder = "/".join([self.root, *parts[:depth]])
            if os.path.lexists(f"{folder}/{SKIP_MARKER}"):
                return True
        return False

    # --- scanning ------------------------------------------------------------------------

    def full_scan(self, now: float) -> set[str] | None:
        """Reconcile with the whole tree: new and changed files, tracked ones now gone.

        Returns every eligible file found, or None when part of the tree could not be read
        (then nobody may conclude that a file missing from the list is gone).
        """
        self.dirs = {}
        self.refused = {}
        self._present, self._unreadable = set(), 0
        seen: set[str] = set()
        try:
            self.scan(self.root, "", now, recursive=True, seen=seen)
        finally:
            present, self._present = self._present, None
        self.reap(seen, None)
        return None if self._unreadable else present

    def poll(self, now: float) -> None:
        """Stat known directories, re-list only those that changed."""
        changed: list[tuple[str, int | None]] = []
        removed: list[str] = []
        for path, (mtime_ns, ino) in list(self.dirs.items()):
            try:
                st = os.stat(path)
            except GONE_ERRORS:
                removed.append(path)
                continue
            except OSError:
                continue
            if st.st_ino != ino:
                changed.append((path, None))  # a different directory now: everything is new
            elif st.st_mtime_ns != mtime_ns:
                changed.append((path, mtime_ns - CTIME_SLACK_NS))
        for path in removed:
            self.dirs = {d: v for d, v in self.dirs.items()
                         if d != path and not d.startswith(path + "/")}  # fmt: skip
            self.verify_tracked(self.rel(path) or "")
        seen: set[str] = set()
        listed: set[str] = set()
        for path, fresh_since in changed:
            rel = self.rel(path) or ""
            listed.add(rel)
            self.scan(path, rel, now, recursive=False, seen=seen, fresh_since=fresh_since)
        if listed:
            self.reap(seen, listed)

    def scan(
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
        stack = [(top, top_rel, fresh_since)]
        files = 0
        while stack:
            dir_path, dir_rel, fresh = stack.pop()
            try:
                dst = os.stat(dir_path)  # before listing: a later change shows on next poll
                with os.scandir(dir_path) as it:
                    entries = list(it)
            except GONE_ERRORS:
                continue
            except OSError as err:
                self._warn_once(dir_path, "cannot read inbox folder; skipping it",
                                error=str(err))  # fmt: skip
                self._unreadable += 1
                continue
            self.dirs[dir_path] = (dst.st_mtime_ns, dst.st_ino)
            if any(entry.name == SKIP_MARKER for entry in entries):
                continue  # marked: nothing here or below is taken (a change re-lists it)
            prefix = dir_rel + "/" if dir_rel else ""
            for entry in entries:
                files += self._entry(entry, prefix, now, fresh, recursive, stack, seen)
            self._listed += len(entries)
            if self._keepalive is not None and self._listed >= KEEPALIVE_EVERY:
                self._listed = 0
                self._keepalive()  # a scan of a huge tree must not look like a hang
        return files

    def _entry(
        self,
        entry: os.DirEntry[str],
        prefix: str,
        now: float,
        fresh: int | None,
        recursive: bool,
        stack: list[tuple[str, str, int | None]],
        seen: set[str] | None,
    ) -> int:
        """One directory entry: queue a subdirectory, observe an eligible file (returns 1)."""
        name = entry.name
        if self._ignore(name):
            return 0
        rel = prefix + name
        try:
            if entry.is_dir(follow_symlinks=False):
                if recursive or entry.path not in self.dirs:
                    stack.append((entry.path, rel, None))
                return 0
            if not self._include(name):
                return 0
            if entry.is_file(follow_symlinks=False):
                st = entry.stat(follow_symlinks=False)
                if fresh is not None and st.st_ctime_ns < fresh and not self._stability.tracks(rel):
                    return 0
                fp: Fingerprint | None = Fingerprint.of(st)
            elif entry.is_symlink():
                fp = self.link_fp(entry.path, rel)
            else:
                return 0  # FIFO, socket, device: never opened
        except OSError:
            return 0  # vanished between listing and stat
        if fp is None:
            return 0
        if self._present is not None:
            self._present.add(rel)
        self._stability.observe(rel, entry.path, fp, now)
        if seen is not None and self._stability.tracks(rel):
            seen.add(rel)
        return 1

    # --- single files ----------------------------------------------------------------------

    def file_fp(self, path: str, rel: str, st: os.stat_result) -> Fingerprint | None:
        """Fingerprint of an eligible file given its lstat; None when not eligible."""
        if not self._include(rel.rpartition("/")[2]):
            return None
        if stat.S_ISREG(st.st_mode):
            return Fingerprint.of(st)
        if stat.S_ISLNK(st.st_mode):
            return self.link_fp(path, rel)
        return None

    def link_fp(self, path: str, rel: str) -> Fingerprint | None:
        """A symlink counts only if it resolves to a regular file inside the inbox."""
        try:
            st = os.stat(path)
        except OSError:
            return None  # dangling or a loop: ignored
        real = os.path.realpath(path)
        if not real.startswith(self.root_real + "/"):
            self._warn_once(path, "symlink points outside the inbox; refused", rel=rel,
                            target=real)  # fmt: skip
            self.refused[rel] = "a symlink that leads outside the inbox"
            return None
        return Fingerprint.of(st) if stat.S_ISREG(st.st_mode) else None

    def probe(self, path: str, rel: str) -> Fingerprint | None:
        """Current fingerprint; None if gone or no longer eligible; OSError if unknowable.

        On a network filesystem the file is opened first: an NFS client revalidates its
        cached attributes on open (close-to-open consistency), which a stat alone does not.
        """
        if self._revalidate:
            try:
                os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
            except GONE_ERRORS:
                return None
            except OSError:
                pass  # not readable this way (a FIFO, permissions): the stat still tells
        try:
            st = os.lstat(path)
        except GONE_ERRORS:
            return None
        return self.file_fp(path, rel, st)

    # --- forgetting ----------------------------------------------------------------------

    def verify_tracked(self, rel_prefix: str) -> None:
        """Probe tracked files at or below ``rel_prefix`` ('' = all); forget the gone ones."""
        under = rel_prefix + "/" if rel_prefix else ""
        for rel in self._stability.tracked():
            if rel == rel_prefix or rel.startswith(under):
                self._stability.reap_one(rel, self.root + "/" + rel)

    def reap(self, seen: set[str], listed_dirs: set[str] | None) -> None:
        """Tracked files not ``seen`` in a scan of ``listed_dirs`` (None: all) may be gone."""
        for rel in self._stability.tracked():
            if rel in seen:
                continue
            if listed_dirs is None or rel.rpartition("/")[0] in listed_dirs:
                self._stability.reap_one(rel, self.root + "/" + rel)

    def stats(self) -> dict[str, Any]:
        """Directory count, for the watcher's stats."""
        return {"directories": len(self.dirs)}
