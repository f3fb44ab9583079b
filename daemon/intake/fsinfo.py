"""Which filesystem a path lives on, and whether it is a network filesystem.

SQLite's locking (and WAL's shared memory) is unreliable on network filesystems, inotify
sees no changes made by other clients of a share, and inode numbers on a share may change
between mounts. :func:`facts` is the one policy for all three: the watcher polls where
``network`` is true, the service warns about a state_dir there and leaves inodes out of a
version's identity (:class:`daemon.version.VersionPolicy`).

:func:`filesystem_type` reads ``/proc/self/mountinfo`` (Linux) and picks the mount whose
mount point is the longest prefix of the resolved path. Mount points in that file escape
space, tab, newline and backslash as octal (``\\040``, ``\\011``, ``\\012``, ``\\134``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")

#: Filesystem types (as the kernel names them in mountinfo) that live on another machine.
NETWORK_FS: frozenset[str] = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "ncpfs",
        "9p",  # also WSL2's /mnt/c
        "virtiofs",
        "fuse.sshfs",
        "sshfs",
        "ceph",
        "fuse.ceph",
        "glusterfs",
        "fuse.glusterfs",
        "lustre",
        "afs",
        "openafs",
        "coda",
        "davfs",
        "fuse.davfs2",
        "fuse.rclone",
        "fuse.s3fs",
        "fuse.gcsfuse",
        "fuse.juicefs",
        "beegfs",
        "gpfs",
        "ocfs2",
        "gfs2",
    }
)

_OCTAL = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class Mount:
    """One line of mountinfo: where it is mounted and what it is."""

    mount_point: str
    fstype: str
    source: str


def _unescape(field: str) -> str:
    """Undo mountinfo's octal escapes (``\\040`` → space)."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[Mount]:
    """Parse mountinfo text into mounts, in file order; malformed lines are skipped."""
    mounts: list[Mount] = []
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            sep = fields.index("-", 6)  # optional fields end with a lone "-"
            mount_point, fstype = fields[4], fields[sep + 1]
            source = fields[sep + 2] if len(fields) > sep + 2 else ""
        except (ValueError, IndexError):
            continue
        mounts.append(Mount(_unescape(mount_point), _unescape(fstype), _unescape(source)))
    return mounts


def _read_mountinfo() -> str | None:
    try:
        return os.fsdecode(MOUNTINFO.read_bytes())
    except OSError:
        return None


def find_mount(path: Path | str, mountinfo: str | None = None) -> Mount | None:
    """The mount holding ``path`` (resolved), or None when mountinfo cannot be read.

    The longest mount point that is a prefix of the path wins; among equal ones the last
    (the mount stacked on top) wins. ``mountinfo`` is the file's text, for tests.
    """
    text = _read_mountinfo() if mountinfo is None else mountinfo
    if text is None:
        return None
    target = os.path.realpath(os.fspath(path))
    best: Mount | None = None
    for mount in parse_mountinfo(text):
        mp = mount.mount_point
        inside = mp == "/" or target == mp or target.startswith(mp.rstrip("/") + "/")
        if inside and (best is None or len(mp) >= len(best.mount_point)):
            best = mount
    return best


def filesystem_type(path: Path | str, mountinfo: str | None = None) -> str:
    """The filesystem type of ``path`` (``"ext4"``, ``"nfs4"``, …), or ``"unknown"``."""
    mount = find_mount(path, mountinfo)
    return mount.fstype if mount else "unknown"


def is_network_fs(path: Path | str, mountinfo: str | None = None) -> bool:
    """True when ``path`` is on a filesystem in :data:`NETWORK_FS`."""
    return filesystem_type(path, mountinfo) in NETWORK_FS


@dataclass(frozen=True)
class FilesystemFacts:
    """What whisperd needs to know about the filesystem holding a path."""

    path: str
    fstype: str  # as the kernel names it, or "unknown"
    network: bool  # on another machine: poll instead of inotify, no inodes, no SQLite

    @property
    def stable_inodes(self) -> bool:
        """Whether an inode number identifies a file across remounts (not on shares)."""
        return not self.network


def facts(path: Path | str, mountinfo: str | None = None) -> FilesystemFacts:
    """The filesystem facts of ``path`` (``mountinfo``: the file's text, for tests)."""
    fstype = filesystem_type(path, mountinfo)
    return FilesystemFacts(os.fspath(path), fstype, fstype in NETWORK_FS)
