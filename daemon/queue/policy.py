"""The failure policy: how many attempts a job gets and how long it waits between them.

Every failure counts an attempt. A permanent error (corrupt media) fails the job once
``attempts >= max_attempts``; a transient one (disk full, CUDA out of memory, an I/O error
on a share) once ``attempts >= max(max_attempts, transient_max_attempts)``. Between
attempts a job waits ``min(backoff * 2**(attempts - 1), backoff_max)`` seconds.

A crash (the service died while the job ran) also counts an attempt; it fails the job only
when the caller gives a crash limit (a file that takes the service down every time).

Pure arithmetic, used by the ledger inside its transactions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from daemon.config import JobsSettings

TRANSIENT_MAX_ATTEMPTS = 10
INTERRUPTED = "interrupted: the service stopped while this job was running"


@dataclass(frozen=True)
class Decision:
    """What happens to a job after a failure."""

    state: Literal["queued", "failed"]
    delay: float  # seconds until it may run again (0 when failed)
    limit: int  # the attempt limit that applied


@dataclass(frozen=True)
class RetryPolicy:
    """Attempt limits and backoff (``jobs.max_attempts``, ``retry_backoff``, ...)."""

    max_attempts: int = 3
    backoff: float = 30.0
    backoff_max: float = 3600.0
    transient_max_attempts: int = TRANSIENT_MAX_ATTEMPTS

    @classmethod
    def from_settings(cls, jobs: JobsSettings) -> RetryPolicy:
        """From the configuration's ``jobs`` section."""
        return cls(jobs.max_attempts, jobs.retry_backoff, jobs.retry_backoff_max)

    def limit(self, transient: bool) -> int:
        """The attempts a job gets for an error of this kind."""
        if transient:
            return max(self.max_attempts, self.transient_max_attempts)
        return self.max_attempts

    def after_failure(self, attempts: int, transient: bool) -> Decision:
        """The decision once a job has failed ``attempts`` times (this failure included)."""
        limit = self.limit(transient)
        if attempts < limit:
            delay = min(self.backoff * 2 ** (attempts - 1), self.backoff_max)
            return Decision("queued", delay, limit)
        return Decision("failed", 0.0, limit)
