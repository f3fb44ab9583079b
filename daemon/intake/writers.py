"""Is a local file still open for writing by some process? (Linux)

Owns :class:`WriterProbe`, :class:`WriterStatus` and :func:`open_for_writing`. A file that a
process (a copy, a recorder, smbd serving a Windows client, knfsd) still holds open for
writing is not complete, however long its size and mtime have been still.

Two ways to tell, tried in this order:

* **lease**: open the file read-only and ask for a read lease (``F_SETLEASE, F_RDLCK``). The
  kernel refuses with EAGAIN while any process holds the file open for writing (its inode's
  write count is not zero), and grants it otherwise; the lease is released at once. One
  open, two fcntl calls, one close. Needs the caller to own the file or hold CAP_LEASE (root
  has it; a systemd unit can grant ``AmbientCapabilities=CAP_LEASE``), and a filesystem
  that supports leases (network client mounts do not: EINVAL). Two side effects, both
  bounded by the microseconds the lease is held: a process opening the file for writing in
  that window waits until the release (or gets EWOULDBLOCK if it opens with O_NONBLOCK), and
  the kernel signals the lease holder, so the probe sets ``F_SETSIG`` to SIGURG (ignored by
  default) first: the default SIGIO would kill the daemon.
* **proc**: scan ``/proc/*/fd`` for descriptors of the same inode whose ``fdinfo`` flags
  say O_WRONLY or O_RDWR. It sees only processes this user may inspect: when some others
  could not be inspected and could write the file (root, or allowed by its mode), a scan
  that found no writer answers "cannot tell". It never sees kernel writers (knfsd) nor a
  writable shared mmap whose descriptor was closed.

A file on a network filesystem *client* mount (NFS, SMB, …; the one policy is
:func:`daemon.intake.fsinfo.facts`) gets "cannot tell": writers on other machines are
invisible from here. The filesystem facts and which method works are cached per filesystem
(``st_dev``).

How the answer combines with a completeness verdict: see :mod:`daemon.media.completeness`.
"""

from __future__ import annotations

import errno
import os
import signal
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import structlog

from daemon.intake.fsinfo import FilesystemFacts, facts

log = structlog.get_logger(__name__)

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

F_SETLEASE = getattr(fcntl, "F_SETLEASE", 1024)
F_SETSIG = getattr(fcntl, "F_SETSIG", 10)
CAP_LEASE = 28
LEASE_UNSUPPORTED = frozenset(
    {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK, errno.ENOTTY}
)

Method = Literal["lease", "proc", "none"]


@dataclass(frozen=True)
class WriterStatus:
    """The answer for one file: ``writing`` True/False, or None when it cannot be told."""

    writing: bool | None
    method: Method
    reason: str
    pids: tuple[int, ...] = ()  # writers found by the proc scan


@dataclass(frozen=True)
class ProcScan:
    """What a /proc scan found for one inode."""

    writers: tuple[int, ...]
    inspected: int  # processes whose descriptors were read
    blind: int  # processes whose descriptors could not be read
    blind_could_write: int  # of those, how many have the permissions to write the file


class LeaseUnavailable(Exception):
    """The lease method cannot answer for this file (``per_filesystem``: for its filesystem)."""

    def __init__(self, reason: str, *, per_filesystem: bool) -> None:
        super().__init__(reason)
        self.per_filesystem = per_filesystem


def lease_says_writing(path: str | os.PathLike[str]) -> bool:
    """True if a read lease is refused (the file is open for writing), False if granted.

    Raises LeaseUnavailable when leases cannot answer, FileNotFoundError when it is gone.
    """
    if fcntl is None or not sys.platform.startswith("linux"):
        raise LeaseUnavailable("leases are Linux-only", per_filesystem=True)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except BlockingIOError:
        return True  # someone holds a write lease (e.g. Samba kernel oplocks): it is writing
    except PermissionError as err:
        raise LeaseUnavailable(
            f"cannot open it to read ({err.strerror})", per_filesystem=False
        ) from err
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise LeaseUnavailable("not a regular file", per_filesystem=False)
        fcntl.fcntl(fd, F_SETSIG, signal.SIGURG)  # a lease break must not SIGIO-kill us
        try:
            fcntl.fcntl(fd, F_SETLEASE, fcntl.F_RDLCK)
        except OSError as err:
            return _lease_refused(err)
        fcntl.fcntl(fd, F_SETLEASE, fcntl.F_UNLCK)
        return False
    finally:
        os.close(fd)


def _lease_refused(err: OSError) -> bool:
    if err.errno == errno.EAGAIN:
        return True
    if err.errno == errno.EACCES:
        raise LeaseUnavailable(
            "not the file's owner and no CAP_LEASE", per_filesystem=False
        ) from err
    if err.errno in LEASE_UNSUPPORTED:
        raise LeaseUnavailable(
            f"leases unsupported here ({err.strerror})", per_filesystem=True
        ) from err
    raise LeaseUnavailable(f"lease refused ({err.strerror})", per_filesystem=False) from err


def _fd_writes(proc: Path, pid: str, fd: str) -> bool:
    """True when descriptor ``fd`` of ``pid`` was opened O_WRONLY or O_RDWR."""
    try:
        for line in (proc / pid / "fdinfo" / fd).read_text().splitlines():
            if line.startswith("flags:"):
                return int(line.split()[1], 8) & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR)
    except (OSError, ValueError):
        return False  # closed meanwhile
    return False


def _could_write(proc: Path, pid: str, st: os.stat_result) -> bool:
    """Whether process ``pid`` (not inspectable) has the permissions to write the file."""
    try:
        status = (proc / pid / "status").read_text()
    except OSError:
        return True  # not even its status: assume the worst
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    fsuid = int(fields.get("Uid", "0 0 0 0").split()[-1])
    gids = {int(g) for g in fields.get("Groups", "").split()} | {
        int(fields.get("Gid", "0 0 0 0").split()[-1])
    }
    if fsuid == 0:
        return True
    if fsuid == st.st_uid:
        return bool(st.st_mode & stat.S_IWUSR)
    if st.st_gid in gids:
        return bool(st.st_mode & stat.S_IWGRP)
    return bool(st.st_mode & stat.S_IWOTH)


def scan_proc(path: str | os.PathLike[str], proc: str | os.PathLike[str] = "/proc") -> ProcScan:
    """Processes holding ``path``'s inode open for writing, from ``/proc/*/fd`` + fdinfo."""
    st = os.stat(path)
    root, target = Path(proc), (st.st_dev, st.st_ino)
    name = "/" + os.path.basename(os.fspath(path))
    writers, inspected, blind, could = [], 0, 0, 0
    for pid in (p for p in os.listdir(root) if p.isdigit()):
        fd_dir = root / pid / "fd"
        try:
            fds = os.listdir(fd_dir)
        except PermissionError:
            blind += 1
            could += _could_write(root, pid, st)
            continue
        except OSError:
            continue  # the process exited meanwhile
        inspected += 1
        if any(_same_file(fd_dir / fd, name, target) and _fd_writes(root, pid, fd) for fd in fds):
            writers.append(int(pid))
    return ProcScan(tuple(writers), inspected, blind, could)


def _same_file(link: Path, name: str, target: tuple[int, int]) -> bool:
    """Whether descriptor ``link`` is the target inode; stat only links ending in ``name``.

    Matching the name first keeps the scan cheap and never stats unrelated descriptors (a
    stat through a hung network mount would block). A writer that opened the file under
    another hard-link name is missed.
    """
    try:
        if not os.readlink(link).endswith(name):
            return False
        fst = os.stat(link)
    except OSError:
        return False
    return (fst.st_dev, fst.st_ino) == target


@dataclass
class WriterProbe:
    """Tells whether files are open for writing; caches which method works per filesystem.

    ``methods``: the methods to try, in order. ``facts_of``: the filesystem facts of a path
    (:func:`daemon.intake.fsinfo.facts`; tests pass one reading a mountinfo text).
    ``lease``: the lease test, replaceable only so tests can play a filesystem without lease
    support (none of ext4, tmpfs, overlayfs and FUSE lacks it on Linux 6.18).
    """

    methods: tuple[Method, ...] = ("lease", "proc")
    proc: str = "/proc"
    facts_of: Callable[[str], FilesystemFacts] = facts
    lease: Callable[[str], bool] = lease_says_writing  # the lease test (a seam for tests)
    _lease_by_dev: dict[int, str] = field(default_factory=dict)  # st_dev -> why leases fail
    _facts_by_dev: dict[int, FilesystemFacts] = field(default_factory=dict)

    def check(self, path: str | os.PathLike[str]) -> WriterStatus:
        """The writer status of ``path``; raises FileNotFoundError when it is gone."""
        path = os.fspath(path)
        st = os.stat(path)
        fs = self._facts(path, st.st_dev)
        if fs.network:
            return WriterStatus(
                None, "none", f"{fs.fstype} client mount: writers on other machines are invisible"
            )
        notes: list[str] = []
        if "lease" in self.methods:
            found = self._by_lease(path, st, notes)
            if found is not None:
                return found
        if "proc" in self.methods and os.path.isdir(self.proc):
            return self._by_proc(path, notes)
        return WriterStatus(None, "none", "; ".join(notes) or "no method available")

    def method_for(self, path: str | os.PathLike[str]) -> Method:
        """The method that answers for ``path`` now (for a start-up log line per inbox)."""
        return self.check(path).method

    def _facts(self, path: str, dev: int) -> FilesystemFacts:
        if dev not in self._facts_by_dev:
            self._facts_by_dev[dev] = self.facts_of(path)
        return self._facts_by_dev[dev]

    def _by_lease(self, path: str, st: os.stat_result, notes: list[str]) -> WriterStatus | None:
        if st.st_dev in self._lease_by_dev:
            notes.append(f"lease: {self._lease_by_dev[st.st_dev]}")
            return None
        if os.geteuid() != st.st_uid and not has_cap_lease():
            notes.append("lease: not the file's owner and no CAP_LEASE")
            return None
        try:
            writing = self.lease(path)
        except LeaseUnavailable as err:
            notes.append(f"lease: {err}")
            if err.per_filesystem:
                self._lease_by_dev[st.st_dev] = str(err)
                log.info("leases unavailable on this filesystem", path=path, reason=str(err))
            return None
        what = "refused: open for writing" if writing else "granted: no writer"
        return WriterStatus(writing, "lease", f"read lease {what}")

    def _by_proc(self, path: str, notes: list[str]) -> WriterStatus:
        scan = scan_proc(path, self.proc)
        prefix = "; ".join(notes) + "; " if notes else ""
        if scan.writers:
            pids = ", ".join(map(str, scan.writers))
            return WriterStatus(
                True, "proc", f"{prefix}open for writing by pid {pids}", scan.writers
            )
        limit = (
            f"{scan.blind} processes of other users not inspectable, "
            f"{scan.blind_could_write} of them could write it"
        )
        if scan.blind_could_write:
            return WriterStatus(
                None, "proc", f"{prefix}no writer among {scan.inspected} processes; {limit}"
            )
        return WriterStatus(
            False, "proc", f"{prefix}no writer among {scan.inspected} processes ({limit})"
        )


def has_cap_lease() -> bool:
    """Whether this process has CAP_LEASE in its effective set."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> CAP_LEASE & 1)
    except (OSError, ValueError):
        pass
    return False


_DEFAULT = WriterProbe()


def open_for_writing(path: str | os.PathLike[str]) -> bool | None:
    """True if some process holds ``path`` open for writing, False if none, None if unknown."""
    return _DEFAULT.check(path).writing
