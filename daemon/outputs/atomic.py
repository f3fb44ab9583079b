"""Atomic writes: a reader on a share only ever sees complete files under their final name.

:func:`write_atomic` writes a hidden temp file beside the target, fsyncs it, renames it into
place and fsyncs the folder. The two halves are usable apart, for a commit in two phases:
:func:`write_temp` (a :class:`Staged` file: temp name, final name, sha256) and
:func:`publish`; :func:`finish` completes a staged set after a crash. :func:`cleanup_temp_files`
removes temp files a crash left behind (at start-up, after staged sets are finished);
:func:`is_temp_file` lets the watcher ignore them. Errors become
:class:`~daemon.errors.OutputWriteError`, or :class:`~daemon.errors.OutboxUnavailableError`
when the outbox itself cannot take files (full, read-only, not writable, unmounted).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import structlog

from daemon.config.tables import TEMP_SUFFIX
from daemon.errors import OutboxUnavailableError, OutputWriteError

log = structlog.get_logger(__name__)

_TEMP_TOKEN_HEX = 8  # random hex digits in a temp name
#: '.' + name + '.' + token + TEMP_SUFFIX: bytes a temp name adds to the final name.
TEMP_OVERHEAD = 1 + 1 + _TEMP_TOKEN_HEX + len(TEMP_SUFFIX)


def _temp_name(final_name: str) -> str:
    return f".{final_name}.{secrets.token_hex(_TEMP_TOKEN_HEX // 2)}{TEMP_SUFFIX}"


def is_temp_file(name: str) -> bool:
    """True for whisperd's temp files (the watcher never takes them: config.own_file)."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


_UNMOUNTED = (errno.ENODEV, errno.ESTALE, errno.ENOTCONN, errno.EHOSTDOWN, errno.ENXIO)


def write_error(path: Path, err: OSError) -> OutputWriteError:
    """The error to raise for a failed write: the outbox's fault, or this file's."""
    code = err.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        return OutboxUnavailableError(
            f"cannot write {path}: disk full", hint="free space in the outbox; retried then"
        )
    if code in (errno.EACCES, errno.EPERM):
        error = OutboxUnavailableError(
            f"cannot write {path}: permission denied",
            hint="let the whisperd user write to the outbox folder",
        )
        error.permission = True
        return error
    if code == errno.EROFS:
        return OutboxUnavailableError(
            f"cannot write {path}: read-only file system", hint="mount the outbox read-write"
        )
    if code in _UNMOUNTED:
        return OutboxUnavailableError(
            f"cannot write {path}: the outbox is unavailable ({err.strerror or err})",
            hint="check that the outbox share is mounted",
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


@dataclass(frozen=True)
class Staged:
    """A file written and fsynced under a temp name, to be renamed to ``path``."""

    path: Path
    temp: Path
    sha256: str

    def record(self) -> dict[str, str]:
        """What the ledger keeps of it (file system names, surrogate-escaped)."""
        return {"path": os.fsdecode(self.path), "temp": os.fsdecode(self.temp),
                "sha256": self.sha256}  # fmt: skip

    @classmethod
    def from_record(cls, record: dict[str, str]) -> Staged:
        return cls(Path(record["path"]), Path(record["temp"]), record["sha256"])


def write_temp(path: Path, data: str | bytes | memoryview) -> Staged:
    """Write ``data`` (str as UTF-8) to a fsynced temp file beside ``path``; nothing renamed.

    The temp file ``.<name>.<random>.whisperd-tmp`` sits in the same folder (same
    filesystem, so the later rename is atomic). On any OSError it is removed and
    :class:`OutputWriteError` raised. Permissions follow the umask.
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
    except OSError as err:
        if created:
            with contextlib.suppress(OSError):
                os.unlink(temp)
        raise write_error(path, err) from err
    return Staged(path, temp, hashlib.sha256(payload).hexdigest())


def publish(staged: list[Staged]) -> list[Path]:
    """Rename every staged file into place, then fsync their folders; the final paths."""
    for item in staged:
        try:
            os.replace(item.temp, item.path)
        except OSError as err:
            raise write_error(item.path, err) from err
    for folder in {item.path.parent for item in staged}:
        _fsync_dir(folder)
    return [item.path for item in staged]


def discard(staged: list[Staged]) -> None:
    """Remove staged temp files that will not be published."""
    for item in staged:
        with contextlib.suppress(OSError):
            os.unlink(item.temp)


def finish(staged: list[Staged]) -> bool:
    """Complete a publish that a crash interrupted; False when it cannot be completed.

    Each file is either still under its temp name (renamed now) or already in place with
    the recorded content (sha256 compared); anything else means the commit is lost.
    """
    pending = []
    for item in staged:
        if item.temp.is_file():
            pending.append(item)
        elif not (item.path.is_file() and _sha256(item.path) == item.sha256):
            return False
    publish(pending)
    return True


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _mtime(path: str) -> float:
    try:
        return os.lstat(path).st_mtime
    except OSError:
        return float("inf")  # vanished meanwhile: nothing to remove


def write_atomic(path: Path, data: str | bytes | memoryview) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the whole new one."""
    staged = [write_temp(path, data)]
    try:
        publish(staged)
    except BaseException:
        discard(staged)
        raise


def cleanup_temp_files(
    root: Path, *, older_than: float | None = None, keep: Collection[Path] = ()
) -> int:
    """Remove temp files a crash left under ``root``; return how many were removed.

    Call it when no write is in progress (at startup): it does not know which temp files
    belong to a running write. Where other servers write into the same outbox, pass
    ``older_than`` (seconds: younger files are left) and ``keep`` (temp files a staged job
    still needs). Symlinked folders are not followed.
    """
    removed = 0
    cutoff = time.time() - older_than if older_than is not None else None
    kept = {os.fsdecode(p) for p in keep}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if not is_temp_file(name):
                continue
            path = os.path.join(dirpath, name)
            if path in kept or (cutoff is not None and _mtime(path) > cutoff):
                continue
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
