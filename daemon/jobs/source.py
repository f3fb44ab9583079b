"""The source file of a job: is it still the version that was queued, and what happens to
it after success (``jobs.on_success``: keep, move into ``jobs.archive_dir``, delete)."""

from __future__ import annotations

import shutil
from enum import Enum
from pathlib import Path

import structlog

from daemon.config import Config
from daemon.version import Fingerprint, VersionPolicy

log = structlog.get_logger(__name__)


class SourceState(Enum):
    CURRENT = "current"  # the queued version is the file on disk
    GONE = "gone"  # the file disappeared
    CHANGED = "changed"  # the file on disk is another version


def check_version(source: Path, queued: Fingerprint, policy: VersionPolicy) -> SourceState:
    """Compare the file on disk with the queued version; OSError when it cannot be read."""
    try:
        current = policy.of(source.stat())
    except FileNotFoundError:
        return SourceState.GONE
    return SourceState.CURRENT if current == queued else SourceState.CHANGED


def after_success(cfg: Config, rel_path: str, source: Path) -> None:
    """on_success: keep, move (mirrored into archive_dir) or delete the source.

    Runs strictly after every output was written and the job recorded done; a failure here
    is logged, never raised (the transcript exists; the source stays where it was).
    """
    policy = cfg.jobs.on_success
    try:
        if policy == "delete":
            source.unlink()
        elif policy == "move":
            assert cfg.jobs.archive_dir is not None  # config validation guarantees it
            target = cfg.jobs.archive_dir / rel_path
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(source, target)
    except OSError as err:
        log.error("on_success_failed", policy=policy, error=str(err))
    else:
        if policy != "keep":
            log.info("source_handled", policy=policy)
