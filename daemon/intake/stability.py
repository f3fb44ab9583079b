"""The files seen in the inbox until they are handed on: pending, then emitted.

A file is *pending* from the first observation of a fingerprint (size, mtime_ns, inode)
not known to the ledger; any change restarts it. Each :meth:`Stability.check` re-stats the
pending files and asks the :class:`~daemon.intake.readiness.Judge` whether each is ready
(handed to ``on_ready``), incomplete (handed to ``on_incomplete``) or must wait (with the
reason, for the status). Empty files are handed on too (the pipeline reports them as empty
media). A handed-on file is remembered (``emitted``) until it changes or goes, so it is
handed on once per version.

Bookkeeping only: the scanner (:mod:`daemon.intake.scan`) feeds observations and supplies
the probe that re-stats a file; the watcher calls :meth:`Stability.check` once per step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from daemon.intake.readiness import Judge, Settling, State
from daemon.version import Fingerprint

log = structlog.get_logger(__name__)

KEEPALIVE_EVERY = 500  # pending files checked between two keepalive calls

#: ``probe(path, rel)``: the current fingerprint, None when gone or no longer eligible;
#: raises OSError when it cannot be known right now (EACCES, EIO).
Probe = Callable[[str, str], Fingerprint | None]


@dataclass(frozen=True)
class Candidate:
    """A stable, eligible inbox file. ``rel_path``: inbox-relative, POSIX, surrogateescape."""

    rel_path: str
    path: Path
    fingerprint: Fingerprint


@dataclass
class _Pending:
    path: str
    settling: Settling
    reason: str = "settling"  # why it waits, as the judge said last


class Stability:
    """Pending files (settling) and emitted ones (handed on, unchanged since)."""

    def __init__(
        self,
        judge: Judge,
        *,
        on_ready: Callable[[Candidate], None],
        is_known: Callable[[str, Fingerprint], bool],
        on_gone: Callable[[str], None] | None,
        probe: Probe,
        on_incomplete: Callable[[Candidate, str], None] | None = None,
        keepalive: Callable[[], None] | None = None,
    ) -> None:
        self.judge = judge
        self._keepalive = keepalive
        self._on_ready, self._is_known, self._on_gone = on_ready, is_known, on_gone
        self._on_incomplete = on_incomplete
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
        self.pending[rel] = _Pending(path, Settling(fp, now))

    def closed(self, rel: str) -> None:
        """A writer closed ``rel`` (inotify): it may be ready without the stability window."""
        pending = self.pending.get(rel)
        if pending is not None:
            pending.settling.closed = True

    def check(self, now: float) -> int:
        """Re-stat pending files; hand on those the judge finds ready (or incomplete)."""
        emitted = 0
        for n, (rel, pending) in enumerate(list(self.pending.items()), 1):
            if self._keepalive is not None and n % KEEPALIVE_EVERY == 0:
                self._keepalive()  # ten thousand files settling must not look like a hang
            try:
                fp = self._probe(pending.path, rel)
                if fp is None:
                    self.gone(rel)
                    continue
                if fp != pending.settling.fp:
                    pending.settling, pending.reason = Settling(fp, now), "settling"
                    continue
                decision = self.judge.decide(rel, pending.path, pending.settling, now)
            except OSError:
                continue  # unreadable right now (EACCES, EIO): keep it, try again
            if decision.state is State.WAIT:
                pending.reason = decision.reason
                continue
            candidate = Candidate(rel, Path(pending.path), fp)
            if decision.state is State.READY:
                self._on_ready(candidate)
                emitted += 1
            elif self._on_incomplete is not None:
                self._on_incomplete(candidate, decision.reason)
            del self.pending[rel]
            self.emitted[rel] = fp
        self.counts["emitted"] += emitted
        return emitted

    def waiting(self) -> dict[str, int]:
        """How many pending files wait for each kind of reason (for the status)."""
        kinds: dict[str, int] = {}
        for pending in self.pending.values():
            kind = pending.reason.split(" (")[0]
            kinds[kind] = kinds.get(kind, 0) + 1
        return kinds

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
