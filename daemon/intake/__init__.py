"""Intake: from files appearing in the inbox to candidates ready to be queued.

Owns the path a file takes before the ledger sees it: :mod:`.watcher` (watchdog hints,
health, the step loop), :mod:`.scan` (reconciliation scans, directory polling, what is
eligible), :mod:`.stability` (when a file counts as complete) and :mod:`.fsinfo` (which
filesystem a path is on: the one network-filesystem policy).

May import: :mod:`daemon.config`, :mod:`daemon.version`, :mod:`daemon.errors`. It knows
nothing of the ledger: the service decides what a candidate becomes.
"""

from daemon.intake.fsinfo import FilesystemFacts, facts
from daemon.intake.stability import Candidate
from daemon.intake.watcher import Watcher

__all__ = ["Candidate", "FilesystemFacts", "Watcher", "facts"]
