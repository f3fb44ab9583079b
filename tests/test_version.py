"""What identifies a version of a file: the fingerprint and the inode policy."""

from __future__ import annotations

from pathlib import Path

from daemon.version import Fingerprint, VersionPolicy


def test_fingerprint_of_a_stat_and_the_inode_policy(tmp_path: Path) -> None:
    f = tmp_path / "a.wav"
    f.write_bytes(b"12345")
    st = f.stat()
    full = Fingerprint(5, st.st_mtime_ns, st.st_ino)
    assert Fingerprint.of(st) == full
    assert VersionPolicy(use_inode=True).of(st) == full
    assert VersionPolicy(use_inode=False).of(st) == Fingerprint(5, st.st_mtime_ns, None)
    assert VersionPolicy(use_inode=False).identity(full).inode is None


def test_a_file_replaced_by_a_copy_is_a_new_version_only_where_inodes_count(
    tmp_path: Path,
) -> None:
    """A re-export renamed over the old file keeps size and mtime but not the inode."""
    a = tmp_path / "a.wav"
    a.write_bytes(b"12345")
    before = a.stat()
    b = tmp_path / "b.wav"
    b.write_bytes(b"12345")
    import os

    os.utime(b, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(b, a)
    after = a.stat()
    assert VersionPolicy(use_inode=True).of(before) != VersionPolicy(use_inode=True).of(after)
    assert VersionPolicy(use_inode=False).of(before) == VersionPolicy(use_inode=False).of(after)
