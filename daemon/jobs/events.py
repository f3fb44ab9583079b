"""What a worker tells the service as it goes: the seam for metrics and notifications.

A worker calls these after the ledger transition they describe is committed, never while
holding the ledger's lock; the service's implementation (``daemon.service.observe``) feeds
the Prometheus metrics and the notifier. A call that raises is logged and ignored: nothing
an observer does may stop a job.

Outcomes of a job (how it left the running state): ``done``; ``failed`` (for good);
``retry`` (failed, attempts left: queued again after a backoff); ``paused`` (an environment
error: queued again, the worker pauses); ``cancelled`` (a stop put it back in the queue);
``gone`` / ``superseded`` (its file vanished or changed before it ran); ``skipped`` (a
video that has subtitles by now, ``skip_if_subtitles``).
"""

from __future__ import annotations

from typing import Protocol

import structlog

from daemon.queue import Job

log = structlog.get_logger(__name__)


class JobEvents(Protocol):
    """What a worker reports; every method is quick and never blocks on the network."""

    def job_started(self, worker: str, job: Job) -> None: ...

    def job_finished(
        self, worker: str, job: Job, outcome: str, processing_seconds: float
    ) -> None: ...

    def model_loaded(self, engine: str, seconds: float) -> None: ...

    def error(self, error: BaseException | str) -> None: ...


class NoEvents:
    """Nobody listening (``whisperd transcribe``, tests)."""

    def job_started(self, worker: str, job: Job) -> None:
        pass

    def job_finished(self, worker: str, job: Job, outcome: str, processing_seconds: float) -> None:
        pass

    def model_loaded(self, engine: str, seconds: float) -> None:
        pass

    def error(self, error: BaseException | str) -> None:
        pass


def tell(events: JobEvents, what: str, *args: object) -> None:
    """Call ``events.<what>(*args)``; an observer's exception is logged, never raised."""
    try:
        getattr(events, what)(*args)
    except Exception:
        log.exception("job_event_failed", event=what)
