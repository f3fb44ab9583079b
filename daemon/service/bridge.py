"""From intake to the queue: what a candidate file becomes in the ledger.

The watcher knows nothing of the ledger; :class:`IntakeBridge` gives it the callbacks it
needs and turns its findings into versions:

* ready files are queued at the end of each watcher step, ``FLUSH_CHUNK`` per transaction
  (a burst of 10,000 files is five fsyncs, not 10,000, and the watchdog is fed between
  them), each with the settings of its folder; a file whose folder has no valid settings
  (a reload made a rule invalid) is recorded *failed* with the reason and gets an
  ``.error.txt``, so it is visible;
* incomplete files are recorded ``incomplete`` with the reason (``whisperd status`` lists
  them) until they change; those unchanged for ``watch.incomplete_timeout`` fail;
* a file that disappears (seen by the watcher, or missing from a full scan): its waiting
  versions are gone, and the ``.error.txt`` of a failed one is removed; its outputs in the
  outbox are kept (they are the transcripts people came for), and so is its done row, until
  ``jobs.history_days`` prunes it;
* ``is_known`` answers from a snapshot of the known versions taken at the start of every
  full scan (one query instead of one per file), and from the ledger itself between scans,
  so a file moved out and back in is seen as the revived version it is;
* a video in a folder with ``skip_if_subtitles`` that already has subtitles (a file beside
  it, an embedded stream: :func:`daemon.jobs.library.subtitled`) is recorded *skipped*
  with what was found, never queued. Looking inside containers takes time (a whole library
  at the first start), so each step spends at most ``JUDGE_BUDGET`` seconds on it; the rest
  waits for the next steps, counted in the status as "checking for subtitles".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import structlog

from daemon.config import JobSettings, Resolver, name_matcher
from daemon.errors import ConfigError, LedgerError
from daemon.intake import Candidate
from daemon.jobs.library import our_outputs, subtitled
from daemon.outputs import error_file, write_error_file
from daemon.outputs.sidecars import Entry, listing
from daemon.queue import Job, JobStore, NewVersion
from daemon.version import Fingerprint, VersionPolicy

log = structlog.get_logger(__name__)

FLUSH_CHUNK = 2000  # versions per transaction: a burst is a few fsyncs, each one short
JUDGE_BUDGET = 0.5  # seconds of subtitle checks per watcher step (the main loop's turn)


class IntakeBridge:
    """The watcher's callbacks, bound to one ledger, resolver and version policy."""

    def __init__(
        self,
        ledger: JobStore,
        rules: Callable[[], Resolver],
        version: VersionPolicy,
        *,
        on_queued: Callable[[], None] = lambda: None,
        keepalive: Callable[[], None] = lambda: None,
        on_scan: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keepalive = keepalive
        self._ledger = ledger
        self._rules = rules
        self._version = version
        self._on_queued = on_queued
        self._on_scan = on_scan
        self._clock = clock
        self._ready: list[NewVersion] = []
        self._known: set[tuple[str, Fingerprint]] | None = None
        # rel -> (candidate, its version, its settings): to be checked for subtitles
        self._to_judge: dict[str, tuple[Candidate, NewVersion, JobSettings]] = {}

    @property
    def checking(self) -> int:
        """Files found and waiting to be checked for subtitles."""
        return len(self._to_judge)

    # --- the watcher's callbacks ---

    def before_scan(self) -> None:
        """A full scan starts: take a fresh snapshot of the known versions."""
        self._known = self._ledger.known_versions()

    def is_known(self, rel: str, fp: Fingerprint) -> bool:
        version = (rel, self._version.identity(fp))
        if self._known is not None:
            return version in self._known
        return self._ledger.is_known(*version)

    def on_ready(self, candidate: Candidate) -> None:
        new, settings = self._new_version(candidate, "queued", None)
        if settings is not None and settings.skip_if_subtitles:
            self._to_judge[candidate.rel_path] = (candidate, new, settings)
        else:
            self._ready.append(new)

    def on_incomplete(self, candidate: Candidate, reason: str) -> None:
        log.info("file_incomplete", path=candidate.rel_path, reason=reason)
        self._ready.append(self._new_version(candidate, "incomplete", reason)[0])

    def after_scan(self, present: set[str]) -> None:
        """A full scan listed every file: versions waiting or failed for a file that is no
        longer there are gone (files known from an earlier run are not tracked by the watcher,
        so only the scan can tell)."""
        for rel in self._ledger.unsettled_paths():
            if rel not in present:
                self.on_gone(rel)
        self._on_scan()

    def on_gone(self, rel: str) -> None:
        self._to_judge.pop(rel, None)
        rules = self._rules()
        cfg = rules.cfg
        for job in self._ledger.mark_gone(rel, now=self._clock()):
            try:
                settings = rules.settings_for_file(job.path)
                error_file(cfg, cfg.inbox / job.path, settings).unlink(missing_ok=True)
            except (OSError, ValueError) as err:
                log.warning("error_file_not_removed", path=job.path, error=str(err))

    def marker_for(self, rel: str) -> str | None:
        try:
            return self._rules().resolve(PurePosixPath(rel).parent).settings.ready_marker
        except ConfigError:
            return None

    # --- after each watcher step ---

    def flush(self) -> list[Job]:
        """Record what the last step found, in one transaction; the new jobs."""
        self._known = None  # the scan (if any) is over: ask the ledger again
        self._judge()
        if not self._ready:
            return []
        batch, self._ready = self._ready, []
        jobs: list[Job] = []
        for start in range(0, len(batch), FLUSH_CHUNK):
            chunk = batch[start : start + FLUSH_CHUNK]
            try:
                jobs += self._ledger.enqueue_batch(chunk, now=self._clock())
            except LedgerError:
                self._ready = batch[start:] + self._ready  # tried again after the next step
                raise
            self._keepalive()
        self._failed(jobs)
        if any(job.state == "queued" for job in jobs):
            self._on_queued()
        return jobs

    def fail_stale_incomplete(self) -> list[Job]:
        """Incomplete files unchanged for ``watch.incomplete_timeout`` fail, with .error.txt."""
        cfg = self._rules().cfg
        now = self._clock()
        jobs = self._ledger.fail_incomplete(now - cfg.watch.incomplete_timeout, now=now)
        self._failed(jobs)
        return jobs

    def _failed(self, jobs: list[Job]) -> None:
        """The .error.txt of each version recorded failed at intake (where its folder says)."""
        rules = self._rules()
        cfg = rules.cfg
        for job in jobs:
            if job.state == "failed":
                settings = rules.settings_for_file(job.path)
                write_error_file(cfg, job.path, cfg.inbox / job.path, job.last_error or "",
                                 attempts=0, settings=settings)  # fmt: skip

    def _judge(self) -> None:
        """Check waiting videos for subtitles: at least one, then until ``JUDGE_BUDGET``."""
        if not self._to_judge:
            return
        deadline = time.monotonic() + JUDGE_BUDGET
        cfg = self._rules().cfg
        is_media = name_matcher(cfg.watch.include)
        folders: dict[Path, list[Entry]] = {}
        while self._to_judge:
            rel = next(iter(self._to_judge))
            candidate, new, settings = self._to_judge.pop(rel)
            folder = candidate.path.parent
            if folder not in folders:
                folders[folder] = listing(folder)
            try:
                ours = our_outputs(cfg.outbox, self._ledger.history(rel))
                reason = subtitled(candidate.path, settings, is_media, ours=ours,
                                   entries=folders[folder])  # fmt: skip
            except Exception:  # never lose a file to a failed check: it is queued, and
                log.exception("subtitle_check_failed", path=rel)  # looked at again at its start
                reason = None
            if reason is not None:
                log.info("file_skipped", path=rel, reason=reason)
                new = NewVersion(new.path, new.fp, new.model, new.settings_json, "skipped", reason)
            self._ready.append(new)
            if time.monotonic() >= deadline:
                return

    def _new_version(
        self, candidate: Candidate, state: str, reason: str | None
    ) -> tuple[NewVersion, JobSettings | None]:
        fp = self._version.identity(candidate.fingerprint)
        folder = Path(candidate.rel_path).parent.as_posix()
        try:
            settings = self._rules().resolve(folder).settings
        except ConfigError as err:
            log.error("no valid settings for this folder; file failed", path=candidate.rel_path,
                      error=str(err))  # fmt: skip
            reason = (f"no valid settings for its folder: {'; '.join(err.errors)} (fix the "
                      "configuration, then run whisperd retry)")  # fmt: skip
            return NewVersion(candidate.rel_path, fp, "?", "{}", "failed", reason), None
        return NewVersion(candidate.rel_path, fp, settings.model, settings.model_dump_json(),
                          state, reason), settings  # fmt: skip
