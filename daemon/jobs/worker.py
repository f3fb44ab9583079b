"""A worker: claim a job → run the pipeline → record the outcome.

One worker per configured device, each a thread with its own model cache. A job's settings
are resolved from the *current* configuration when it starts (so a SIGHUP reload applies to
queued files); the JSON output records the settings used.

Outcomes (how many attempts a failure gets is :mod:`daemon.queue.policy`; what is recorded,
:mod:`daemon.jobs.outcome`):

* success → outputs staged, recorded, published, ``done``; then the on_success action;
* an error about the file (:class:`WhisperdError`) → a failed attempt (transient errors get
  more attempts and a backoff); for good: ``.error.txt``;
* an error about the environment (``err.environment``: CUDA gone, a model missing, the
  outbox full or unmounted) → the job goes back to the queue with no attempt counted and the
  worker *pauses*: it claims nothing for a backoff (``jobs.retry_backoff``, doubling up to
  ``retry_backoff_max``), then tries again, so the queue is not burnt through; the pause
  and its reason show in ``whisperd status`` and systemd's STATUS=;
* any other exception is a bug: logged with its traceback, counted as a failed attempt;
  the thread survives anything at the job boundary;
* cancelled (graceful stop ran out of time) → back in the queue, no attempt counted;
* the source vanished or changed before the job started → ``gone`` / ``superseded``;
* the video has subtitles by now (``skip_if_subtitles``: a sidecar or an embedded stream
  arrived while it waited) → ``skipped``, with what was found;
* the claim was lost (several servers: this one was paused or cut off for longer than its
  lease, :meth:`Worker.lose`) → the job is abandoned here without a word to the ledger:
  it belongs to whichever server claimed it again, and nothing of it is published;
* a job claimed with staged outputs (a server died between writing and publishing them)
  → the commit is finished instead of transcribing again.

After a commit of outputs written beside the source, ``on_written(source)`` is called (the
service tells the media server); it must not block.

The service sees a worker only through :meth:`Worker.snapshot` (one consistent value),
:meth:`Worker.alive`, :meth:`Worker.wake`, :meth:`Worker.request_stop`,
:meth:`Worker.cancel_job` and :meth:`Worker.join`, and hears of it through the
:class:`~daemon.jobs.events.JobEvents` it passes in (a job started or finished and how, a
model loaded, an error). The heartbeat in the snapshot moves on every step of a job
(checking, decoding, transcribing, writing), every few hundred packets decoded, and every
window the engine transcribes.

Idle: after ``models.unload_after`` seconds without a job, the worker unloads its models
and gives their memory back (GPU memory included); the next job loads them again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

import structlog

from daemon.config import Resolver, name_matcher
from daemon.engines import Cancelled, Engine, create
from daemon.errors import (
    FolderNotWritableError,
    LeaseLostError,
    LedgerError,
    OutboxUnavailableError,
    SourceReadError,
    WhisperdError,
)
from daemon.jobs import library, outcome, pipeline
from daemon.jobs.events import JobEvents, NoEvents, tell
from daemon.jobs.source import SourceState, check_version
from daemon.models import ModelCache
from daemon.outputs import discard, output_dir
from daemon.queue import Job, JobStore
from daemon.version import VersionPolicy

log = structlog.get_logger(__name__)

IDLE_WAIT = 0.5  # seconds between claims while the queue is empty (bounded: notices stop)
LEDGER_RETRY = 5.0  # seconds to wait after the ledger failed before claiming again
PROGRESS_EVERY = 2.0  # seconds between progress writes to the ledger


@dataclass(frozen=True)
class Activity:
    """What a worker is doing, for status lines and health checks (replaced, never mutated)."""

    job: Job | None = None
    step: str = "idle"
    progress: float = 0.0
    heartbeat: float = 0.0  # monotonic time of the last sign of life
    paused: str | None = None  # why it claims nothing for now (an environment error)
    paused_until: float = 0.0  # monotonic


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
        events: JobEvents | None = None,
        serves: Collection[str] = (),
        clock: Callable[[], float] = time.time,
        on_written: Callable[[Path], None] = lambda source: None,
    ) -> None:
        self.name = name
        self._on_written = on_written
        self.serves = tuple(serves)  # node.models: the only models this worker takes
        self.device = device
        self.ledger = ledger
        self._rules = rules
        self._version = version
        self._events: JobEvents = events or NoEvents()
        self._clock = clock
        cfg = rules().cfg
        self.cache = ModelCache(
            cfg.model_dir, cfg.models.cache_size, base_dir=cfg.path.parent,
            on_load=lambda *loaded: tell(self._events, "model_loaded", *loaded),
        )  # fmt: skip
        self._last_job = time.monotonic()  # for models.unload_after
        self._engines: dict[str, Engine] = {}
        self._activity = Activity(heartbeat=time.monotonic())
        self._pauses = 0  # environment errors in a row: the pause doubles with each
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

    def lose(self, job_id: int) -> None:
        """The claim on ``job_id`` was lost: abort it if it is still running here."""
        job = self._activity.job
        if job is not None and job.id == job_id:
            log.warning("lease_lost_aborting", worker=self.name, job=job_id, path=job.path)
            self._cancel.set()

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the thread to end; True when it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # --- the loop ---

    def run(self) -> None:
        while not self._stop_claiming.is_set():
            self._beat()
            if self._activity.paused and time.monotonic() < self._activity.paused_until:
                self._stop_claiming.wait(min(IDLE_WAIT, self._activity.paused_until
                                             - time.monotonic()))  # fmt: skip
                continue
            try:
                worked = self.step()
            except WhisperdError as err:  # the ledger itself failed (disk full, locked)
                log.error("worker step failed; retrying", worker=self.name, error=str(err))
                worked = False
                self._stop_claiming.wait(LEDGER_RETRY)
            except Exception:  # a bug outside any job: log it, keep the worker alive
                log.exception("worker step crashed; retrying", worker=self.name)
                worked = False
                self._stop_claiming.wait(LEDGER_RETRY)
            if not worked:
                self._unload_if_idle()
                self._wake.wait(IDLE_WAIT)
                self._wake.clear()
        for engine in self._engines.values():
            engine.close()

    def _unload_if_idle(self) -> None:
        """``models.unload_after`` seconds without a job: unload the models, free the memory."""
        seconds = self._rules().cfg.models.unload_after
        idle = time.monotonic() - self._last_job
        if seconds is None or idle < seconds or not self.cache.loaded():
            return
        models = self.cache.unload()
        log.info("models_unloaded", worker=self.name, models=models, idle_seconds=round(idle),
                 hint="the next job loads them again")  # fmt: skip

    def step(self) -> bool:
        """Claim and run one job; False when there was none to run."""
        rules = self._rules()
        loaded = set().union(*(e.loaded_models() for e in self._engines.values()))
        job = self.ledger.claim(
            self.name,
            loaded_models=loaded,
            now=self._clock(),
            affinity_seconds=rules.cfg.jobs.model_affinity,
            order=rules.cfg.jobs.order,
            serves=self.serves,
        )
        if job is None:
            return False
        paused = self._activity
        started = time.monotonic()
        self._activity = Activity(job=job, step="starting", heartbeat=started,
                                  paused=paused.paused)  # fmt: skip
        structlog.contextvars.bind_contextvars(
            job=job.id, path=job.path, folder=PurePosixPath(job.path).parent.as_posix()
        )
        self._cancel.clear()  # a cancel meant for the previous job
        tell(self._events, "job_started", self.name, job)
        try:
            after, how = self._process(rules, job)
        finally:
            structlog.contextvars.unbind_contextvars("job", "path", "folder")
            current = self._activity
            self._activity = Activity(heartbeat=time.monotonic(), paused=current.paused,
                                      paused_until=current.paused_until)  # fmt: skip
            self._last_job = time.monotonic()
        tell(self._events, "job_finished", self.name, after, how, time.monotonic() - started)
        return True

    def _beat(self, step: str | None = None) -> None:
        activity = self._activity
        self._activity = replace(activity, heartbeat=time.monotonic(),
                                 step=step or activity.step)  # fmt: skip

    # --- one job ---

    def _process(self, rules: Resolver, job: Job) -> tuple[Job, str]:
        """One job from claim to recorded outcome: the job as it is now, and how it ended
        (see :mod:`daemon.jobs.events`). Nothing escapes but BaseException."""
        try:
            return self._attempt(rules, job)
        except LeaseLostError as err:
            log.warning("lease_lost_result_dropped", worker=self.name, error=str(err),
                        note="another server runs it; nothing was published here")  # fmt: skip
            return job, "lost"

    def _attempt(self, rules: Resolver, job: Job) -> tuple[Job, str]:
        cfg = rules.cfg
        source = cfg.inbox / job.path
        try:
            ended = self._source_current(rules, job, source)
            if ended is not None:
                return ended
            if job.staged and outcome.finish_staged(
                self.ledger, cfg, job, self._version, stop=self._stop_claiming, now=self._clock
            ):
                return outcome.reread(self.ledger, job, "done"), "done"  # fmt: skip
            return self._run(rules, job, source)
        except Cancelled:
            self._requeue(job, "stopped: the service shut down mid-job")
            return replace(job, state="queued"), "cancelled"
        except LeaseLostError:
            raise  # not the file's fault, and not this node's job any more
        except WhisperdError as err:
            tell(self._events, "error", err)
            if err.environment:
                self._pause(job, err)
                return replace(job, state="queued", last_error=str(err)), "paused"
            return self._fail(rules, job, str(err), transient=err.transient)
        except Exception as err:  # a bug: keep the service alive, count an attempt
            log.exception("job_crashed", error=f"{type(err).__name__}: {err}")
            tell(self._events, "error", err)
            return self._fail(rules, job, f"internal error: {type(err).__name__}: {err}",
                              transient=False)  # fmt: skip

    def _run(self, rules: Resolver, job: Job, source: Path) -> tuple[Job, str]:
        cfg = rules.cfg
        if cfg.uses_outbox() and not cfg.outbox.is_dir():
            raise OutboxUnavailableError(
                f"the outbox {cfg.outbox} is missing", hint="check that its share is mounted"
            )
        settings = rules.resolve(PurePosixPath(job.path).parent).settings
        if settings.skip_if_subtitles:
            ours = library.our_outputs(cfg.outbox, self.ledger.history(job.path))
            reason = library.subtitled(source, settings, name_matcher(cfg.watch.include), ours=ours)
            if reason is not None:  # a sidecar or a stream arrived while it waited
                self.ledger.abandon(job.id, state="skipped", reason=reason, now=self._clock())
                return replace(job, state="skipped", last_error=reason), "skipped"
        done = pipeline.transcribe(
            source, settings=settings, engine=self._engine(settings.engine), limits=cfg.jobs,
            progress=self._progress_reporter(job), cancel=self._cancel, on_step=self._beat,
        )  # fmt: skip
        self._beat("writing")
        try:
            staged = pipeline.stage(source, done, source_label=job.path, settings=settings,
                                    out_dir=output_dir(cfg, settings, source),
                                    is_media=name_matcher(cfg.watch.include))  # fmt: skip
        except OutboxUnavailableError as err:
            if settings.outputs_beside_source and err.permission:  # not the whole library's
                raise FolderNotWritableError(
                    err.message, hint="let the whisperd user write to this video's folder"
                ) from err
            raise
        record = {
            "audio_seconds": done.audio.duration,
            "processing_seconds": time.monotonic() - done.started,
            "language": done.transcript.language,
        }
        try:
            committed = outcome.commit(self.ledger, cfg, job, staged, record=record,
                                       version=self._version, stop=self._stop_claiming,
                                       now=self._clock, settings=settings)  # fmt: skip
        except BaseException:
            discard(staged)  # what was not renamed into place (a crash leaves them to finish)
            raise
        self._pauses = 0  # a job went through: the environment is fine again
        self._activity = replace(self._activity, paused=None, paused_until=0.0)
        if settings.outputs_beside_source:
            self._on_written(source)
        return committed, "done"

    def _engine(self, name: str) -> Engine:
        if name not in self._engines:
            self._engines[name] = create(name, self.cache)
        return self._engines[name]

    def _source_current(self, rules: Resolver, job: Job, source: Path) -> tuple[Job, str] | None:
        """None when the queued version is still the file on disk; else how the job ended
        (gone, superseded, or a failed attempt to read it)."""
        try:
            state = check_version(source, job.fingerprint, self._version)
        except OSError as err:
            error = SourceReadError(f"{job.path}: cannot read the file ({err.strerror})")
            tell(self._events, "error", error)
            return self._fail(rules, job, str(error), transient=True)
        if state is SourceState.CURRENT:
            return None
        gone = state is SourceState.GONE
        ended = "gone" if gone else "superseded"
        reason = "the file disappeared" if gone else "the file changed after it was queued"
        outcome.with_retries(
            lambda: self.ledger.abandon(job.id, state=ended, reason=reason, now=self._clock()),
            self._stop_claiming, "abandon",
        )  # fmt: skip
        return replace(job, state=ended, last_error=reason), ended

    def _progress_reporter(self, job: Job) -> Callable[[float], None]:
        last = [0.0]

        def report(fraction: float) -> None:
            now = time.monotonic()
            self._activity = replace(self._activity, progress=fraction, heartbeat=now)
            if now - last[0] >= PROGRESS_EVERY or fraction >= 1.0:
                last[0] = now
                try:
                    self.ledger.set_progress(job.id, fraction, now=self._clock())
                except LedgerError as err:  # only shown in status: never fail a job for it
                    log.warning("progress_not_recorded", error=str(err))

        return report

    def _fail(self, rules: Resolver, job: Job, error: str, *, transient: bool) -> tuple[Job, str]:
        """Record a failed attempt; the job after it, and ``failed`` or ``retry``."""
        state = outcome.failed(self.ledger, rules.cfg, job, error, transient=transient,
                               stop=self._stop_claiming, now=self._clock,
                               settings=rules.settings_for_file(job.path))  # fmt: skip
        after = outcome.reread(self.ledger, job, state, error)
        return after, "failed" if state == "failed" else "retry"

    def _requeue(self, job: Job, reason: str) -> None:
        outcome.with_retries(lambda: self.ledger.requeue(job.id, reason=reason,
                                                         now=self._clock()),
                             self._stop_claiming, "requeue")  # fmt: skip

    def _pause(self, job: Job, err: WhisperdError) -> None:
        """An environment error: the job waits in the queue, the worker pauses and retries."""
        jobs = self._rules().cfg.jobs
        self._pauses += 1
        delay = min(jobs.retry_backoff * 2 ** (self._pauses - 1), jobs.retry_backoff_max)
        self._requeue(job, f"waiting: {err}")
        self._activity = replace(self._activity, paused=str(err),
                                 paused_until=time.monotonic() + delay)  # fmt: skip
        log.error(
            "worker_paused",
            worker=self.name,
            error=str(err),
            retry_in=round(delay, 1),
            hint="no file is failed for this; the queue resumes once the cause is gone",
        )
