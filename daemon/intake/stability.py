"""When a file counts as complete: the stability clock of every file seen in the inbox.

A file becomes *ready* once its fingerprint (size, mtime_ns, inode) was seen unchanged at two
observations at least ``stable_seconds`` apart on the caller's clock. Empty files too (the
pipeline reports them as empty media). A renamed-in file with an old mtime still waits
``stable_seconds``. A file whose version the ledger already knows is never tracked; a ready
file is remembered (``emitted``) until it changes or goes, so it is handed on once.

Pure bookkeeping: the scanner (:mod:`daemon.intake.scan`) feeds observations and supplies
the probe that re-stats a file; the watcher calls :meth:`Stability.check` once per step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from daemon.version import Fingerprint

log = structlog.get_logger(__name__)

#: ``probe(path, rel)``: the current fingerprint, None when gone or no longer eligible;
#: raises OSError when it cannot be known right now (EACCES, EIO).
Probe = Callable[[str, str], Fingerprint | None]


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


class Stability:
    """Pending files (settling) and emitted ones (handed on, unchanged since)."""

    def __init__(
        self,
        stable_seconds: float,
        *,
        on_ready: Callable[[Candidate], None],
        is_known: Callable[[str, Fingerprint], bool],
        on_gone: Callable[[str], None] | None,
        probe: Probe,
    ) -> None:
        self.stable_seconds = stable_seconds
        self._on_ready, self._is_known, self._on_gone = on_ready, is_known, on_gone
        self._probe = probe
        self.pending: dict[str, _Pending] = {}
        self.emitted: dict[str, Fingerprint] = {}
        self.counts = {"emitted": 0, "gone": 0}

    def tracks(self, rel: str) -> bool:
        """Whether ``rel`` is pending or emitted."""
        return rel in self.pending or rel in self.emitted

    def tracked(self) -> list[str]:
        """Every tracked rel (a copy: safe to change the tracker while iterating)."""
        return [*self.pending, *self.emitted]

    def observe(self, rel: str, path: str, fp: Fingerprint, now: float) -> None:
        """A file was seen with ``fp``: start its stability clock unless nothing is new."""
        if rel in self.pending:
            return  # check() re-stats it this step and restarts its clock on change
        old = self.emitted.get(rel)
        if old is not None:
            if old == fp:
                return
            del self.emitted[rel]  # rewritten or replaced: stability again, then emit again
        if self._is_known(rel, fp):
            return
        self.pending[rel] = _Pending(path, fp, now)

    def check(self, now: float) -> int:
        """Re-stat pending files; hand on those unchanged for ``stable_seconds``."""
        emitted = 0
        for rel, pending in list(self.pending.items()):
            try:
                fp = self._probe(pending.path, rel)
            except OSError:
                continue  # unreadable right now (EACCES, EIO): keep it, try again
            if fp is None:
                self.gone(rel)
            elif fp != pending.fp:
                pending.fp, pending.since = fp, now
            elif now - pending.since >= self.stable_seconds:
                self._on_ready(Candidate(rel, Path(pending.path), fp))
                del self.pending[rel]
                self.emitted[rel] = fp
                emitted += 1
        self.counts["emitted"] += emitted
        return emitted

    def reap_one(self, rel: str, path: str) -> None:
        """Forget ``rel`` if it is gone; keep it when that cannot be told."""
        try:
            if self._probe(path, rel) is None:
                self.gone(rel)
        except OSError:
            pass  # cannot tell (permission, I/O error): keep tracking it

    def gone(self, rel: str) -> None:
        """``rel`` vanished (or is no longer an eligible file): forget it, tell the owner."""
        tracked = self.pending.pop(rel, None) is not None
        tracked = self.emitted.pop(rel, None) is not None or tracked
        if tracked:
            self.counts["gone"] += 1
            log.debug("inbox file gone", rel=rel)
            if self._on_gone is not None:
                self._on_gone(rel)
