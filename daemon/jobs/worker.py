"""A worker: claim a job → run the pipeline → record the outcome.

One worker per configured device, each a thread with its own model cache. A job's settings
are resolved from the *current* configuration when it starts (so a SIGHUP reload applies to
queued files); the JSON output records the settings used.

Outcomes (how many attempts a failure gets is :mod:`daemon.queue.policy`):

* success → ``done``; then the source is kept, moved or deleted (:mod:`.source`), strictly
  after every output was written; a stale ``.error.txt`` is removed;
* a :class:`WhisperdError` → the ledger's ``fail`` (transient errors get more attempts and a
  backoff); when the job fails for good, ``.error.txt`` says what failed and how to retry;
* any other exception is a bug: logged with its traceback, counted as a failed attempt;
* cancelled (graceful stop ran out of time) → back in the queue, no attempt counted;
* the source vanished or changed before the job started → ``gone`` / ``superseded``.

The service sees a worker only through its public methods: :meth:`Worker.snapshot` (what it
is doing, as one consistent value), :meth:`Worker.alive`, :meth:`Worker.wake`,
:meth:`Worker.request_stop`, :meth:`Worker.cancel_job` and :meth:`Worker.join`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

import structlog

from daemon.config import Config, Resolver, name_matcher
from daemon.engines import Cancelled, Engine, create
from daemon.errors import SourceReadError, WhisperdError
from daemon.jobs import pipeline
from daemon.jobs.source import SourceState, after_success, check_version
from daemon.models import ModelCache
from daemon.outputs import error_file, mirror_dir, write_error_file
from daemon.queue import Job, JobStore, RetryPolicy
from daemon.version import VersionPolicy

log = structlog.get_logger(__name__)

IDLE_WAIT = 0.5  # seconds between claims while the queue is empty (bounded: notices stop)
LEDGER_RETRY = 5.0  # seconds to wait after the ledger failed before claiming again
PROGRESS_EVERY = 2.0  # seconds between progress writes to the ledger


@dataclass(frozen=True)
class Activity:
    """What a worker is doing, for status lines and health checks (replaced, never mutated)."""

    job: Job | None = None
    progress: float = 0.0
    heartbeat: float = 0.0  # monotonic time of the last sign of life


class Worker:
    """Runs jobs from the ledger on one device until asked to stop."""

    def __init__(
        self,
        name: str,
        device: str,
        ledger: JobStore,
        rules: Callable[[], Resolver],
        *,
        version: VersionPolicy,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.device = device
        self.ledger = ledger
        self._rules = rules
        self._version = version
        self._clock = clock
        cfg = rules().cfg
        self.cache = ModelCache(cfg.model_dir, cfg.models.cache_size, base_dir=cfg.path.parent)
        self._engines: dict[str, Engine] = {}
        self._activity = Activity(heartbeat=time.monotonic())
        self._stop_claiming = threading.Event()  # finish the current job, take no new one
        self._cancel = threading.Event()  # abort the current job (it goes back to the queue)
        self._wake = threading.Event()  # a job was queued: claim now, not after IDLE_WAIT
        self._thread = threading.Thread(target=self.run, name=f"worker-{name}", daemon=True)

    # --- what the service may ask and tell ---

    def start(self) -> None:
        self._thread.start()

    def snapshot(self) -> Activity:
        """What the worker is doing now (one consistent value)."""
        return self._activity

    def alive(self) -> bool:
        return self._thread.is_alive()

    def busy(self) -> bool:
        return self._activity.job is not None

    def wake(self) -> None:
        """A job was queued: claim it now rather than after the idle wait."""
        self._wake.set()

    def request_stop(self) -> None:
        """Finish the running job (if any), then take no more."""
        self._stop_claiming.set()
        self._wake.set()

    def cancel_job(self) -> None:
        """Abort the running job: it goes back to the queue without counting an attempt."""
        self._cancel.set()

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the thread to end; True when it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # --- the loop ---

    def run(self) -> None:
        while not self._stop_claiming.is_set():
            self._beat()
            try:
                worked = self.step()
            except WhisperdError as err:  # the ledger itself failed (disk full, locked)
                log.error("worker step failed; retrying", worker=self.name, error=str(err))
                worked = False
                self._stop_claiming.wait(LEDGER_RETRY)
            if not worked:
                self._wake.wait(IDLE_WAIT)
                self._wake.clear()
        for engine in self._engines.values():
            engine.close()

    def step(self) -> bool:
        """Claim and run one job; False when there was none to run."""
        rules = self._rules()
        loaded = set().union(*(e.loaded_models() for e in self._engines.values()))
        job = self.ledger.claim(
            self.name,
            loaded_models=loaded,
            now=self._clock(),
            affinity_seconds=rules.cfg.jobs.model_affinity,
        )
        if job is None:
            return False
        self._activity = Activity(job=job, heartbeat=time.monotonic())
        structlog.contextvars.bind_contextvars(
            job=job.id, path=job.path, folder=PurePosixPath(job.path).parent.as_posix()
        )
        try:
            self._process(rules, job)
        finally:
            structlog.contextvars.unbind_contextvars("job", "path", "folder")
            self._activity = Activity(heartbeat=time.monotonic())
        return True

    def _beat(self) -> None:
        self._activity = replace(self._activity, heartbeat=time.monotonic())

    # --- one job ---

    def _process(self, rules: Resolver, job: Job) -> None:
        cfg = rules.cfg
        source = cfg.inbox / job.path
        if not self._source_current(cfg, job, source):
            return
        started = time.monotonic()
        try:
            settings = rules.resolve(PurePosixPath(job.path).parent).settings
            result = pipeline.run(
                source,
                source_label=job.path,
                settings=settings,
                out_dir=mirror_dir(cfg.inbox, cfg.outbox, source),
                engine=self._engine(settings.engine),
                is_media=name_matcher(cfg.watch.include),
                progress=self._progress_reporter(job),
                cancel=self._cancel,
            )
        except Cancelled:
            self.ledger.requeue(job.id, reason="stopped: the service shut down mid-job",
                                now=self._clock())  # fmt: skip
            return
        except WhisperdError as err:
            self._failed(cfg, job, source, str(err), transient=err.transient)
            return
        except Exception as err:  # a bug: keep the service alive, count an attempt
            log.exception("job_crashed", error=f"{type(err).__name__}: {err}")
            self._failed(cfg, job, source, f"internal error: {type(err).__name__}: {err}",
                         transient=False)  # fmt: skip
            return
        self.ledger.complete(
            job.id,
            outputs=[os.fsdecode(p.relative_to(cfg.outbox)) for p in result.outputs],
            audio_seconds=result.audio_seconds,
            processing_seconds=time.monotonic() - started,
            language=result.transcript.language,
            now=self._clock(),
        )
        error_file(cfg, source).unlink(missing_ok=True)
        after_success(cfg, job.path, source)

    def _engine(self, name: str) -> Engine:
        if name not in self._engines:
            self._engines[name] = create(name, self.cache)
        return self._engines[name]

    def _source_current(self, cfg: Config, job: Job, source: Path) -> bool:
        """The queued version is still the file on disk (else: gone or superseded)."""
        try:
            state = check_version(source, job.fingerprint, self._version)
        except OSError as err:
            error = SourceReadError(f"{job.path}: cannot read the file ({err.strerror})")
            self._failed(cfg, job, source, str(error), transient=True)
            return False
        if state is SourceState.GONE:
            self.ledger.abandon(job.id, state="gone", reason="the file disappeared",
                                now=self._clock())  # fmt: skip
        elif state is SourceState.CHANGED:
            self.ledger.abandon(job.id, state="superseded",
                                reason="the file changed after it was queued",
                                now=self._clock())  # fmt: skip
        return state is SourceState.CURRENT

    def _progress_reporter(self, job: Job) -> Callable[[float], None]:
        last = [0.0]

        def report(fraction: float) -> None:
            now = time.monotonic()
            self._activity = replace(self._activity, progress=fraction, heartbeat=now)
            if now - last[0] >= PROGRESS_EVERY or fraction >= 1.0:
                last[0] = now
                self.ledger.set_progress(job.id, fraction, now=self._clock())

        return report

    def _failed(self, cfg: Config, job: Job, source: Path, error: str, *, transient: bool) -> None:
        state = self.ledger.fail(
            job.id,
            error=error,
            transient=transient,
            policy=RetryPolicy.from_settings(cfg.jobs),
            now=self._clock(),
        )
        if state == "failed":
            write_error_file(cfg, job.path, source, error, attempts=job.attempts + 1)
