"""Intake: from files appearing in the inbox to candidates ready to be queued.

Owns the path a file takes before the ledger sees it: :mod:`.watcher` (the step loop,
health), :mod:`.hints` (watchdog events as hints), :mod:`.scan` (reconciliation scans,
directory polling, what is eligible), :mod:`.stability` (pending until handed on),
:mod:`.readiness` (is it complete: its writer, its container, its marker, time),
:mod:`.writers` (is a file open for writing) and :mod:`.fsinfo` (which filesystem a path is
on: the one network-filesystem policy).

May import: :mod:`daemon.media` (only ``media.completeness``: is a container whole?),
:mod:`daemon.config`, :mod:`daemon.version`, :mod:`daemon.errors`. It knows nothing of the
ledger: the service decides what a candidate becomes.
"""

from daemon.intake.fsinfo import FilesystemFacts, facts
from daemon.intake.stability import Candidate
from daemon.intake.watcher import Watcher

__all__ = ["Candidate", "FilesystemFacts", "Watcher", "facts"]
