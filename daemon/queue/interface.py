"""The ledger as the rest of whisperd sees it: one small interface, any backend.

The service, the workers and the commands use only these methods; SQLite
(:class:`daemon.queue.store.Ledger`) implements them today and a second backend implements
the same protocol. Every method takes the clock as ``now`` (epoch seconds) so tests drive
time, and raises :class:`~daemon.errors.LedgerError` when the store fails.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Protocol

from daemon.queue.job import Job
from daemon.queue.policy import RetryPolicy
from daemon.version import Fingerprint


class JobStore(Protocol):
    """The durable queue: one row per version of a file (see :mod:`daemon.queue.store`)."""

    # intake
    def enqueue(
        self, path: str, fp: Fingerprint, *, model: str, settings_json: str, now: float | None
    ) -> Job | None: ...
    def enqueue_many(
        self,
        versions: Iterable[tuple[str, Fingerprint]],
        *,
        model: str,
        settings_json: str,
        now: float | None,
    ) -> int: ...
    def is_known(self, path: str, fp: Fingerprint) -> bool: ...
    def known_versions(self, under: str = "") -> set[tuple[str, Fingerprint]]: ...
    def mark_gone(self, path: str, now: float | None) -> int: ...

    # workers
    def recover(self, now: float | None, *, crash_limit: int | None = None) -> int: ...
    def claim(
        self,
        worker: str,
        *,
        loaded_models: Collection[str],
        now: float | None,
        affinity_seconds: float,
    ) -> Job | None: ...
    def set_progress(self, job_id: int, fraction: float, now: float | None) -> bool: ...
    def complete(
        self,
        job_id: int,
        *,
        outputs: Sequence[str],
        audio_seconds: float,
        processing_seconds: float,
        language: str | None,
        now: float | None,
    ) -> Job: ...
    def fail(
        self, job_id: int, *, error: str, transient: bool, policy: RetryPolicy, now: float | None
    ) -> str: ...
    def requeue(self, job_id: int, *, reason: str, now: float | None) -> None: ...
    def abandon(self, job_id: int, *, state: str, reason: str, now: float | None) -> None: ...

    # operators
    def retry(self, paths: Sequence[str] | None = None, *, now: float | None = None) -> int: ...

    # reports
    def get(self, job_id: int) -> Job: ...
    def counts(self) -> dict[str, int]: ...
    def running(self) -> list[Job]: ...
    def recent_failures(self, limit: int = 20) -> list[Job]: ...
    def history(self, path: str | None = None) -> list[Job]: ...
    def latest_per_path(self) -> list[Job]: ...
    def throughput(self, window_seconds: float, now: float | None = None) -> float: ...
    def queue_depth(self, now: float | None = None) -> int: ...

    def close(self) -> None: ...
