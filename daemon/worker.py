"""A worker: claim a job → run the pipeline → record the outcome; the failure policy.

One worker per configured device, each a thread with its own model cache. A job's settings
are resolved from the *current* configuration when it starts (so a SIGHUP reload applies to
queued files); the JSON output records the settings used.

Outcomes:

* success → ``done``; then the source is kept, moved into ``jobs.archive_dir`` (mirrored) or
  deleted, strictly after every output was written; a stale ``.error.txt`` is removed;
* a :class:`WhisperdError` → :meth:`Ledger.fail` (transient errors get more attempts and a
  backoff); when the job fails for good, ``<outbox>/<dir>/<stem>.error.txt`` says what failed
  and how to retry;
* cancelled (graceful stop ran out of time) → back in the queue, no attempt counted;
* the source vanished or changed before the job started → ``gone`` / ``superseded``.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import structlog

from daemon import engine as engines
from daemon import outputs, pipeline
from daemon.config import Config
from daemon.engine import Cancelled
from daemon.errors import SourceReadError, WhisperdError
from daemon.ledger import Fingerprint, Job, Ledger
from daemon.models import ModelCache

log = structlog.get_logger(__name__)

IDLE_WAIT = 0.5  # seconds between claims while the queue is empty (bounded: notices stop)
LEDGER_RETRY = 5.0  # seconds to wait after the ledger failed before claiming again
PROGRESS_EVERY = 2.0  # seconds between progress writes to the ledger
ERROR_SUFFIX = ".error.txt"


@dataclass
class Activity:
    """What a worker is doing, for status lines and health checks."""

    job: Job | None = None
    progress: float = 0.0
    heartbeat: float = 0.0  # monotonic time of the last sign of life


class Worker:
    """Runs jobs from the ledger on one device until asked to stop."""

    def __init__(
        self,
        name: str,
        device: str,
        ledger: Ledger,
        get_config: Callable[[], Config],
        *,
        fingerprint: Callable[[os.stat_result], Fingerprint],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.device = device
        self.ledger = ledger
        self.get_config = get_config
        self.fingerprint = fingerprint
        self.clock = clock
        cfg = get_config()
        self.cache = ModelCache(cfg.model_dir, cfg.models.cache_size, base_dir=cfg.path.parent)
        self._engines: dict[str, engines.Engine] = {}
        self.activity = Activity(heartbeat=time.monotonic())
        self.stop_claiming = threading.Event()  # finish the current job, take no new one
        self.cancel = threading.Event()  # abort the current job (it goes back to the queue)
        self.wake = threading.Event()  # a job was queued: claim now instead of after IDLE_WAIT
        self.thread = threading.Thread(target=self.run, name=f"worker-{name}", daemon=True)

    # --- lifecycle ---

    def start(self) -> None:
        self.thread.start()

    def run(self) -> None:
        while not self.stop_claiming.is_set():
            self.activity.heartbeat = time.monotonic()
            try:
                worked = self.step()
            except WhisperdError as err:  # the ledger itself failed (disk full, locked)
                log.error("worker step failed; retrying", worker=self.name, error=str(err))
                worked = False
                self.stop_claiming.wait(LEDGER_RETRY)
            if not worked:
                self.wake.wait(IDLE_WAIT)
                self.wake.clear()
        for engine in self._engines.values():
            engine.close()

    def busy(self) -> bool:
        return self.activity.job is not None

    # --- one iteration ---

    def step(self) -> bool:
        """Claim and run one job; False when there was none to run."""
        cfg = self.get_config()
        loaded = set().union(*(e.loaded_models() for e in self._engines.values()))
        job = self.ledger.claim(
            self.name,
            loaded_models=loaded,
            now=self.clock(),
            affinity_seconds=cfg.jobs.model_affinity,
        )
        if job is None:
            return False
        self.activity = Activity(job=job, heartbeat=time.monotonic())
        structlog.contextvars.bind_contextvars(
            job=job.id, path=job.path, folder=PurePosixPath(job.path).parent.as_posix()
        )
        try:
            self._process(cfg, job)
        finally:
            structlog.contextvars.unbind_contextvars("job", "path", "folder")
            self.activity = Activity(heartbeat=time.monotonic())
        return True

    def _process(self, cfg: Config, job: Job) -> None:
        source = cfg.inbox / job.path
        if not self._source_current(job, source):
            return
        started = time.monotonic()
        try:
            settings = cfg.resolve(PurePosixPath(job.path).parent).settings
            out_dir = outputs.mirror_dir(cfg.inbox, cfg.outbox, source)
            result = pipeline.run(
                source,
                source_label=job.path,
                settings=settings,
                out_dir=out_dir,
                engine=self._engine(settings.engine),
                is_media=pipeline.media_matcher(cfg.watch.include),
                progress=self._progress_reporter(job),
                cancel=self.cancel,
            )
        except Cancelled:
            self.ledger.requeue(job.id, reason="stopped: the service shut down mid-job",
                                now=self.clock())  # fmt: skip
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
            now=self.clock(),
        )
        _error_file(cfg, source).unlink(missing_ok=True)
        self._after_success(cfg, job, source)

    def _engine(self, name: str) -> engines.Engine:
        if name not in self._engines:
            self._engines[name] = engines.create(name, self.cache)
        return self._engines[name]

    def _source_current(self, job: Job, source: Path) -> bool:
        """The queued version is still the file on disk (else: gone or superseded)."""
        try:
            current = self.fingerprint(source.stat())
        except FileNotFoundError:
            self.ledger.abandon(job.id, state="gone", reason="the file disappeared",
                                now=self.clock())  # fmt: skip
            return False
        except OSError as err:
            error = SourceReadError(f"{job.path}: cannot read the file ({err.strerror})")
            self._failed(self.get_config(), job, source, str(error), transient=True)
            return False
        if current != job.fingerprint:
            reason = "the file changed after it was queued"
            self.ledger.abandon(job.id, state="superseded", reason=reason, now=self.clock())
            return False
        return True

    def _progress_reporter(self, job: Job) -> Callable[[float], None]:
        last = [0.0]

        def report(fraction: float) -> None:
            now = time.monotonic()
            self.activity.progress = fraction
            self.activity.heartbeat = now
            if now - last[0] >= PROGRESS_EVERY or fraction >= 1.0:
                last[0] = now
                self.ledger.set_progress(job.id, fraction, now=self.clock())

        return report

    def _failed(self, cfg: Config, job: Job, source: Path, error: str, *, transient: bool) -> None:
        state = self.ledger.fail(
            job.id,
            error=error,
            transient=transient,
            max_attempts=cfg.jobs.max_attempts,
            backoff=cfg.jobs.retry_backoff,
            backoff_max=cfg.jobs.retry_backoff_max,
            now=self.clock(),
        )
        if state == "failed":
            _write_error_file(cfg, job, source, error)

    def _after_success(self, cfg: Config, job: Job, source: Path) -> None:
        """on_success: keep, move (mirrored into archive_dir) or delete the source."""
        policy = cfg.jobs.on_success
        try:
            if policy == "delete":
                source.unlink()
            elif policy == "move":
                assert cfg.jobs.archive_dir is not None  # config validation guarantees it
                target = cfg.jobs.archive_dir / job.path
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(source, target)
        except OSError as err:
            log.error("on_success_failed", policy=policy, error=str(err))
        else:
            if policy != "keep":
                log.info("source_handled", policy=policy)


def _error_file(cfg: Config, source: Path) -> Path:
    stem = pipeline.source_stem(source, pipeline.media_matcher(cfg.watch.include))
    return outputs.mirror_dir(cfg.inbox, cfg.outbox, source) / (
        outputs.fit_stem(stem) + ERROR_SUFFIX
    )


def _write_error_file(cfg: Config, job: Job, source: Path, error: str) -> None:
    when = datetime.now(UTC).isoformat(timespec="seconds")
    text = (
        f"whisperd could not transcribe: {job.path}\n"
        f"error: {error}\n"
        f"attempts: {job.attempts + 1}, last at {when}\n"
        "\n"
        "What to do: if the file is damaged or incomplete, copy a good version over it (a\n"
        "changed file is picked up again automatically). To try this same file again, run:\n"
        f"    whisperd retry {_shell_quote(job.path)}\n"
    )
    try:
        target = _error_file(cfg, source)
        target.parent.mkdir(parents=True, exist_ok=True)  # the folder may have no outputs yet
        outputs.write_atomic(target, text)
    except (WhisperdError, OSError) as err:
        log.error("error_file_failed", error=str(err))


def _shell_quote(text: str) -> str:
    import shlex

    return shlex.quote(text if not text.startswith("-") else f"./{text}")
