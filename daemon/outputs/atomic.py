"""Atomic writes: a reader on a share only ever sees complete files under their final name.

:func:`write_atomic` writes a hidden temp file beside the target, fsyncs it, renames it into
place and fsyncs the folder; :func:`cleanup_temp_files` removes temp files a crash left
behind (at start-up); :func:`is_temp_file` lets the watcher ignore them. Errors become
:class:`~daemon.errors.OutputWriteError` (transient: disk full, permission, read-only).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from pathlib import Path

import structlog

from daemon.errors import OutputWriteError

log = structlog.get_logger(__name__)

TEMP_SUFFIX = ".whisperd-tmp"
_TEMP_TOKEN_HEX = 8  # random hex digits in a temp name
#: '.' + name + '.' + token + TEMP_SUFFIX: bytes a temp name adds to the final name.
TEMP_OVERHEAD = 1 + 1 + _TEMP_TOKEN_HEX + len(TEMP_SUFFIX)


def _temp_name(final_name: str) -> str:
    return f".{final_name}.{secrets.token_hex(_TEMP_TOKEN_HEX // 2)}{TEMP_SUFFIX}"


def is_temp_file(name: str) -> bool:
    """True for whisperd's temp files (the watcher ignores them)."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


def write_error(path: Path, err: OSError) -> OutputWriteError:
    code = err.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        return OutputWriteError(
            f"cannot write {path}: disk full", hint="free space in the outbox; retried later"
        )
    if code in (errno.EACCES, errno.EPERM):
        return OutputWriteError(
            f"cannot write {path}: permission denied",
            hint="let the whisperd user write to the outbox folder",
        )
    if code == errno.EROFS:
        return OutputWriteError(
            f"cannot write {path}: read-only file system", hint="mount the outbox read-write"
        )
    return OutputWriteError(f"cannot write {path}: {err.strerror or err}")


def _fsync_dir(directory: Path) -> None:
    """Persist a rename; best effort, as some network filesystems refuse fsync on folders."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: Path, data: str | bytes | memoryview) -> None:
    """Write ``data`` (str as UTF-8) to ``path`` so readers see the old file or the whole new one.

    The temp file ``.<name>.<random>.whisperd-tmp`` sits in the same folder (same
    filesystem, so the rename is atomic); it is fsynced, renamed over ``path``, and the folder
    is fsynced. On any OSError the temp file is removed and :class:`OutputWriteError` raised.
    Permissions follow the umask, as for any newly created file.
    """
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    temp = path.with_name(_temp_name(path.name))
    created = False
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        created = True
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
        created = False
    except OSError as err:
        if created:
            with contextlib.suppress(OSError):
                os.unlink(temp)
        raise write_error(path, err) from err
    _fsync_dir(path.parent)


def cleanup_temp_files(root: Path) -> int:
    """Remove temp files a crash left under ``root``; return how many were removed.

    Call it when no write is in progress (at startup): it does not know which temp files
    belong to a running write. Symlinked folders are not followed.
    """
    removed = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if not is_temp_file(name):
                continue
            path = os.path.join(dirpath, name)
            try:
                os.unlink(path)
            except FileNotFoundError:
                continue
            except OSError as err:
                log.warning("cannot remove temp file", path=path, error=str(err))
                continue
            removed += 1
    if removed:
        log.info("removed leftover temp files", root=str(root), count=removed)
    return removed
