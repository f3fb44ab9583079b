"""What a worker records after a job: done (two-phase), failed, or back to the queue.

:func:`commit` is the success path: the staged outputs are recorded in the ledger, renamed
into place, and the job recorded done with its on_success action still to do; then the
stale ``.error.txt`` goes, the source action and the ready marker are carried out. With
several servers the claim is checked right before the renames (``ledger.holds``): a
server whose lease ran out publishes nothing (:class:`~daemon.errors.LeaseLostError`), and
the ledger refuses its ``complete`` too. :func:`finish_staged` completes a commit that a
stop or a dead server left between staging and done (at start-up, or when a job is claimed
with staged outputs). Staged paths are recorded relative to the outbox, so another server
that mounts the share elsewhere can finish them.
:func:`failed` records a failure (the policy decides: back to the queue after a backoff, or
failed for good) and, for good, writes the ``.error.txt`` and removes the outputs of an
earlier version of the file, which no longer match it. :func:`with_retries` repeats a
ledger write that fails (a locked or briefly unwritable state_dir) so that no job is left
``running`` by a passing error.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import structlog

from daemon.config import Config, JobSettings
from daemon.errors import LeaseLostError, LedgerError, OutputWriteError, WhisperdError
from daemon.jobs import source as source_mod
from daemon.outputs import (
    Staged,
    error_file,
    finish,
    from_ledger,
    ledger_name,
    publish,
    write_error_file,
)
from daemon.queue import Job, JobStore, RetryPolicy
from daemon.version import VersionPolicy

log = structlog.get_logger(__name__)

T = TypeVar("T")
LEDGER_RETRY = 1.0  # seconds between attempts of a ledger write that failed
LEDGER_GIVE_UP = 300.0  # then the job is left for the next start's recovery


def with_retries(op: Callable[[], T], stop: threading.Event, what: str) -> T:
    """``op()``, tried again while it raises LedgerError (until ``stop``, or a bound)."""
    deadline = time.monotonic() + LEDGER_GIVE_UP
    while True:
        try:
            return op()
        except LedgerError as err:
            if stop.is_set() or time.monotonic() > deadline:
                raise
            log.warning("ledger_write_failed_retrying", op=what, error=str(err))
            stop.wait(LEDGER_RETRY)


def commit(
    ledger: JobStore,
    cfg: Config,
    job: Job,
    staged: list[Staged],
    *,
    record: dict,
    version: VersionPolicy,
    stop: threading.Event,
    now: Callable[[], float],
    settings: JobSettings | None = None,
) -> Job:
    """Record, check the claim, publish, complete; then the after-success chores (never
    raising).

    ``settings``: the folder's, for where the stale ``.error.txt`` is (else the job's own).
    """
    files = [_relative(s.record(), cfg.outbox) for s in staged]
    with_retries(lambda: ledger.stage(job.id, {**record, "files": files}, now=now()),
                 stop, "stage outputs")  # fmt: skip
    if not with_retries(lambda: ledger.holds(job.id), stop, "check the claim"):
        raise LeaseLostError(f"job {job.id}: the claim ran out before its outputs were published")
    publish(staged)
    return _complete(ledger, cfg, job, staged, record, version, stop, now, settings)


def finish_staged(
    ledger: JobStore,
    cfg: Config,
    job: Job,
    version: VersionPolicy,
    *,
    stop: threading.Event,
    now: Callable[[], float],
) -> bool:
    """Publish and record a job whose outputs were staged; False when that cannot be done
    any more (the temp files are gone and the outputs in place differ: run it again)."""
    record = json.loads(job.staged or "{}")
    staged = [Staged.from_record(_absolute(r, cfg.outbox)) for r in record.get("files", [])]
    try:
        if not (staged and ledger.holds(job.id) and finish(staged)):
            return False
    except OutputWriteError as err:
        log.warning("staged_commit_not_finished", path=job.path, error=str(err))
        return False
    _complete(ledger, cfg, job, staged, record, version, stop, now)
    log.info("commit_finished", path=job.path, job=job.id,
             note="the outputs were written before a stop; nothing transcribed again")  # fmt: skip
    return True


def _complete(
    ledger: JobStore,
    cfg: Config,
    job: Job,
    staged: list[Staged],
    record: dict,
    version: VersionPolicy,
    stop: threading.Event,
    now: Callable[[], float],
    settings: JobSettings | None = None,
) -> Job:
    action = cfg.jobs.on_success if cfg.jobs.on_success != "keep" else None
    done = with_retries(
        lambda: ledger.complete(
            job.id,
            outputs=[ledger_name(cfg.outbox, s.path) for s in staged],
            audio_seconds=record["audio_seconds"],
            processing_seconds=record["processing_seconds"],
            language=record["language"],
            source_action=action,
            now=now(),
        ),
        stop,
        "complete",
    )
    after_success(ledger, cfg, done, version, now, settings)
    return done


def reread(ledger: JobStore, job: Job, state: str, error: str | None = None) -> Job:
    """The job as the ledger has it now (as recorded here, if the ledger cannot say)."""
    try:
        return ledger.get(job.id)
    except WhisperdError:
        return replace(job, state=state, last_error=error)


def job_settings(cfg: Config, job: Job) -> JobSettings:
    """The settings recorded with the job when it was queued (the defaults if unreadable)."""
    try:
        return JobSettings.model_validate_json(job.settings)
    except ValueError:
        return cfg.defaults


def after_success(
    ledger: JobStore,
    cfg: Config,
    job: Job,
    version: VersionPolicy,
    now: Callable[[], float],
    settings: JobSettings | None = None,
) -> None:
    """Stale .error.txt, on_success, ready marker: each failure logged, none raised."""
    source = cfg.inbox / job.path
    try:
        error_file(cfg, source, settings or job_settings(cfg, job)).unlink(missing_ok=True)
    except OSError as err:
        log.warning("error_file_not_removed", error=str(err))
    if job.source_action is not None and source_mod.act(
        cfg, job.path, source, job.fingerprint, version
    ):
        with contextlib.suppress(LedgerError):
            ledger.source_done(job.id, now=now())
    marker = _marker(job)
    if marker is not None:
        folder = Path(job.path).parent.as_posix()
        idle = _folder_idle(ledger, folder)
        source_mod.remove_marker(marker, source, idle)


def failed(
    ledger: JobStore,
    cfg: Config,
    job: Job,
    error: str,
    *,
    transient: bool,
    stop: threading.Event,
    now: Callable[[], float],
    settings: JobSettings | None = None,
) -> str:
    """Record a failure; for good: ``.error.txt`` and the outputs of older versions go.

    ``settings``: the folder's, for where the ``.error.txt`` goes (else the job's own).
    """
    state = with_retries(
        lambda: ledger.fail(job.id, error=error, transient=transient,
                            policy=RetryPolicy.from_settings(cfg.jobs), now=now()),
        stop,
        "record failure",
    )  # fmt: skip
    if state == "failed":
        source = cfg.inbox / job.path
        write_error_file(cfg, job.path, source, error, attempts=job.attempts + 1,
                         settings=settings or job_settings(cfg, job))  # fmt: skip
        remove_old_outputs(ledger, cfg, job)
    return state


def remove_old_outputs(ledger: JobStore, cfg: Config, job: Job) -> None:
    """The transcripts of an earlier version no longer match the file: remove them (not those
    this job's own row lists: a done file queued again by ``whisperd requeue`` keeps them)."""
    try:
        previous = ledger.previous_done(job.path, job.id)
    except LedgerError:
        return
    if previous is None:
        return
    for rel in previous.outputs:
        if rel in job.outputs:
            continue
        path = from_ledger(cfg.outbox, rel)
        try:
            path.unlink(missing_ok=True)
        except OSError as err:
            log.warning("old_output_not_removed", path=str(path), error=str(err))
    if previous.outputs:
        log.info("old_outputs_removed", path=job.path, count=len(previous.outputs))


def _relative(record: dict[str, str], outbox: Path) -> dict[str, str]:
    """A staged file's record with its paths named as the ledger names outputs (relative
    to the outbox, absolute outside it: :func:`daemon.outputs.ledger_name`)."""
    return {k: ledger_name(outbox, Path(v)) if k in ("path", "temp") else v
            for k, v in record.items()}  # fmt: skip


def _absolute(record: dict[str, str], outbox: Path) -> dict[str, str]:
    """The inverse of :func:`_relative` (an absolute path, from an older ledger, stays)."""
    return {k: os.fsdecode(from_ledger(outbox, v)) if k in ("path", "temp") else v
            for k, v in record.items()}  # fmt: skip


def _marker(job: Job) -> str | None:
    """The ready marker the file's folder asked for when it was queued."""
    try:
        return json.loads(job.settings).get("ready_marker")
    except (ValueError, AttributeError):
        return None


def _folder_idle(ledger: JobStore, folder: str) -> bool:
    try:
        return ledger.active_in_folder(folder) == 0
    except LedgerError:
        return False
