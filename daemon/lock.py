"""One service per state_dir: an exclusive ``flock`` on ``<state_dir>/whisperd.lock``.

The lock file holds the pid of the service that holds it, so a second ``whisperd run`` and
``whisperd status`` can say which process runs. A leaf: imports only the errors.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from daemon.errors import AlreadyRunningError

LOCK_NAME = "whisperd.lock"


class StateLock:
    """The exclusive lock of one state_dir, held for the life of the service."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise AlreadyRunningError naming the holder's pid."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise AlreadyRunningError(
                f"another whisperd service (pid {holder}) is already running on state_dir "
                f"{self.path.parent}",
                hint="stop it first, or give this one its own state_dir",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def holder_pid(state_dir: Path) -> int | None:
    """The pid of a running service on this state_dir, or None (read-only, takes no lock)."""
    path = state_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 64, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
