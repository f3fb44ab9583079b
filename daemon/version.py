"""What identifies one version of a file: the one :class:`Fingerprint`, and the policy for it.

A version is ``(path, size, mtime_ns, inode)``: a change to any of them means new content,
to be transcribed again. The inode is part of a version only where it is stable: on a local
filesystem a file replaced by another (a re-export renamed over the old one) gets a new
inode even when size and mtime match; on network shares (SMB, some NFS servers) inode
numbers may change from one mount to the next, so there the version leaves it out
(:class:`VersionPolicy`). The watcher always tracks the full fingerprint while a file
settles; the policy decides what the ledger stores.

A leaf: imports nothing from whisperd.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """One version of a file's content: size, modification time and (maybe) inode."""

    size: int
    mtime_ns: int
    inode: int | None

    @classmethod
    def of(cls, st: os.stat_result) -> Fingerprint:
        """The full fingerprint of a stat result (inode included)."""
        return cls(st.st_size, st.st_mtime_ns, st.st_ino)


@dataclass(frozen=True)
class VersionPolicy:
    """Which fields identify a version on this inbox: inodes only where they are stable."""

    use_inode: bool = True

    def identity(self, fp: Fingerprint) -> Fingerprint:
        """The fingerprint as the ledger stores it (inode dropped when not used)."""
        return fp if self.use_inode or fp.inode is None else Fingerprint(fp.size, fp.mtime_ns, None)

    def of(self, st: os.stat_result) -> Fingerprint:
        """The stored fingerprint of a stat result."""
        return self.identity(Fingerprint.of(st))
