"""What the service does at start-up, before it takes new work: finish what was left.

In this order, each step safe to repeat:

1. **The version identity policy** is read from the ledger (stored at the first start): a
   share mounted after the first start, or an inbox moved to a NAS, must not change every
   version's identity (and transcribe the whole inbox again). A mismatch with what the
   inbox looks like now is logged, and the recorded policy kept.
2. **Commits a kill interrupted** are finished: a job whose outputs were staged is
   published and recorded done, instead of running the engine again.
3. **on_success actions** recorded with ``done`` but not carried out are done now (on the
   same version of the file only).
4. **Jobs that were running** go back to the queue; those interrupted ``jobs.crash_limit``
   times fail with an ``.error.txt`` (a file that takes the service down every time).
5. **Leftover temp files** of the outbox are removed (after step 2, which may need them),
   and those of the inbox where outputs are written beside the sources.

With a shared ledger (several servers, PostgreSQL) step 2 is left to the claims: this
node's interrupted jobs go back to the queue *with* their staged outputs (step 4), and
whichever worker claims one publishes them; step 3 covers this node's actions and those
of dead nodes; step 4 takes back only this node's leftovers and expired leases (the main
loop repeats it every few seconds); and step 5 removes only temp files older than an hour
that no staged job names, since other servers are writing theirs right now.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import structlog

from daemon.config import Config, Resolver
from daemon.intake import facts
from daemon.jobs.outcome import after_success, finish_staged
from daemon.outputs import cleanup_temp_files, write_error_file
from daemon.queue import Job, JobStore
from daemon.version import VersionPolicy

log = structlog.get_logger(__name__)

IDENTITY_KEY = "version_identity"  # "inode" | "no-inode"
SHARED_TEMP_AGE = 3600.0  # seconds: another server's temp file is younger than this


def make_folders(ledger: JobStore, cfg: Config) -> None:
    """Create the inbox and outbox at the first start only.

    Later, a missing folder is most likely a share that is not mounted: creating it would
    put files on the local disk under the mount point. Then the watcher waits for the inbox
    and the workers pause until the outbox is back (both shown by ``whisperd status``).
    """
    folders = (cfg.inbox, cfg.outbox) if cfg.uses_outbox() else (cfg.inbox,)
    if any(ledger.counts().values()):
        for folder in folders:
            if not folder.is_dir():
                log.warning("folder missing; not creating it (an unmounted share?)",
                            folder=str(folder))  # fmt: skip
        return
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)


def version_policy(ledger: JobStore, inbox: Path) -> VersionPolicy:
    """The recorded identity policy, or the one the inbox's filesystem calls for (recorded)."""
    detected = "inode" if facts(inbox).stable_inodes else "no-inode"
    recorded = ledger.get_meta(IDENTITY_KEY)
    if recorded is None:
        has_jobs = any(ledger.counts().values())
        # A ledger written before the policy was stored used the detected one at the time;
        # the best guess for it is what the inbox looks like now.
        ledger.set_meta(IDENTITY_KEY, detected)
        if has_jobs:
            log.info("version_identity_recorded", policy=detected)
        recorded = detected
    elif recorded != detected:
        log.warning(
            "the inbox's filesystem changed since the first start; keeping the recorded "
            "version identity so that known files are not transcribed again",
            recorded=recorded, detected=detected,
        )  # fmt: skip
    return VersionPolicy(use_inode=recorded == "inode")


def finish_commits(
    ledger: JobStore, cfg: Config, version: VersionPolicy, settled: list[Job] | None = None
) -> int:
    """Publish and record the jobs whose outputs were staged when the service stopped
    (appended to ``settled``, for the notifications)."""
    finished = 0
    for job in ledger.staged_jobs():
        # Not finished: recover() puts it back in the queue, and it runs again.
        if finish_staged(ledger, cfg, job, version, stop=threading.Event(), now=time.time):
            finished += 1
            if settled is not None:
                settled.append(ledger.get(job.id))
    return finished


def finish_source_actions(ledger: JobStore, cfg: Config, version: VersionPolicy) -> None:
    """on_success actions left undone by a stop between ``done`` and the action."""
    for job in ledger.pending_source_actions():
        after_success(ledger, cfg, job, version, time.time)


def recover(ledger: JobStore, cfg: Config, settled: list[Job] | None = None) -> int:
    """Running jobs back to the queue; over the crash limit: failed, with .error.txt (and
    appended to ``settled``, for the notifications).

    Returns how many went back to the queue (the caller wakes its workers).
    """
    recovery = ledger.recover(crash_limit=cfg.jobs.crash_limit)
    rules = Resolver(cfg)
    if settled is not None:
        settled.extend(recovery.failed)
    for job in recovery.failed:
        log.error("job_failed_after_crashes", path=job.path, crashes=job.crashes,
                  error=job.last_error)  # fmt: skip
        write_error_file(cfg, job.path, cfg.inbox / job.path, job.last_error or "",
                         attempts=job.attempts,
                         settings=rules.settings_for_file(job.path))  # fmt: skip
    return len(recovery.requeued)


def run(ledger: JobStore, cfg: Config, settled: list[Job] | None = None) -> VersionPolicy:
    """Every start-up step, in order (see the module docstring); the version policy.

    ``settled`` receives the jobs these steps brought to an end (a commit finished: done;
    over the crash limit: failed), so that they are notified like any other."""
    version = version_policy(ledger, cfg.inbox)
    if not ledger.shared:
        finish_commits(ledger, cfg, version, settled)
    finish_source_actions(ledger, cfg, version)
    recover(ledger, cfg, settled)
    keep = _staged_temps(ledger, cfg) if ledger.shared else set()
    used = ((cfg.outbox, cfg.uses_outbox()), (cfg.inbox, cfg.beside_anywhere()))
    for folder in [folder for folder, written in used if written]:
        if ledger.shared:  # other servers are writing theirs right now
            removed = cleanup_temp_files(folder, older_than=SHARED_TEMP_AGE, keep=keep)
        else:
            removed = cleanup_temp_files(folder)
        if removed:
            log.info("temporary files removed", count=removed, folder=str(folder))
    return version


def _staged_temps(ledger: JobStore, cfg: Config) -> set[Path]:
    """The temp files the staged jobs of every server name (kept while those finish)."""
    return {cfg.outbox / f["temp"] for job in ledger.staged_jobs()
            for f in json.loads(job.staged or "{}").get("files", [])}  # fmt: skip
