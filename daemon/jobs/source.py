"""The source file of a job: is it still the version that was queued, and what happens to
it after success (``jobs.on_success``: keep, move into ``jobs.archive_dir``, delete).

The action is taken only on the version that was transcribed: the file is compared with the
job's fingerprint first, and a file replaced during its job (a re-export, a second upload)
is left alone for its own job. While the inbox itself is missing (a share that dropped off)
the action stays pending and is done when the inbox is back. The archive never overwrites: a
name already taken there gets a numbered suffix (``talk (2).mp3``). A ready marker of the
file (``ready_marker: '{name}.ready'``) goes with it; a folder's marker (``'*.done'``) once
nothing of the folder waits any more.
"""

from __future__ import annotations

import os
import shutil
from enum import Enum
from pathlib import Path

import structlog

from daemon.config import Config, folder_markers, marker_path
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


def act(
    cfg: Config, rel_path: str, source: Path, version: Fingerprint, policy: VersionPolicy
) -> bool:
    """Carry out on_success (move or delete) on ``source`` if it is still ``version``.

    Returns True when the action is settled (done, or moot because the file changed or
    went), False when it failed and may be tried again (logged).
    """
    action = cfg.jobs.on_success
    if action == "keep":
        return True
    try:
        state = check_version(source, version, policy)
    except OSError as err:
        log.error("on_success_failed", policy=action, error=str(err))
        return False
    if state is SourceState.GONE and not cfg.inbox.is_dir():
        log.warning("source_action_postponed", policy=action,
                    reason="the inbox is missing (an unmounted share?)")  # fmt: skip
        return False  # still pending: done when the inbox is back
    if state is not SourceState.CURRENT:
        log.info("source_left_alone", policy=action,
                 reason="the file changed during its job" if state is SourceState.CHANGED
                 else "the file is gone")  # fmt: skip
        return True
    try:
        if action == "delete":
            source.unlink()
        else:
            assert cfg.jobs.archive_dir is not None  # config validation guarantees it
            target = free_name(cfg.jobs.archive_dir / rel_path)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(source, target)
            if target.name != source.name:
                log.warning("archived_under_another_name", target=str(target),
                            reason="a file of that name is already in the archive")  # fmt: skip
    except OSError as err:
        log.error("on_success_failed", policy=action, error=str(err))
        return False
    log.info("source_handled", policy=action)
    return True


def free_name(target: Path) -> Path:
    """``target``, or ``name (2).ext``, ``name (3).ext``... whichever does not exist yet."""
    if not os.path.lexists(target):
        return target
    stem, suffix = target.stem, target.suffix
    n = 2
    while os.path.lexists(candidate := target.with_name(f"{stem} ({n}){suffix}")):
        n += 1
    return candidate


def remove_marker(marker: str | None, source: Path, folder_idle: bool) -> None:
    """Remove the ready marker that let ``source`` in (a folder's once the folder is idle)."""
    if marker is None:
        return
    path = marker_path(os.fspath(source), marker)
    if path is not None:
        targets = [Path(path)]
    else:
        targets = [Path(p) for p in folder_markers(os.fspath(source.parent), marker)]
        if not folder_idle:
            return
    for target in targets:
        try:
            target.unlink()
        except FileNotFoundError:
            pass
        except OSError as err:
            log.warning("ready_marker_not_removed", marker=str(target), error=str(err))
