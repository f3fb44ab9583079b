"""Filesystem facts from /proc/self/mountinfo: the one network-filesystem policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.intake.fsinfo import facts, filesystem_type, find_mount, is_network_fs, parse_mountinfo

SAMPLE_MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
40 27 0:50 / /srv/media rw,relatime shared:7 master:2 - nfs4 nas:/media rw,vers=4.2
41 40 0:51 / /srv/media/local\\040disk rw,relatime - xfs /dev/sdb1 rw
42 27 0:52 /share /mnt/my\\040share rw - cifs //nas/share rw
43 27 0:53 / /mnt/stack rw - ext4 /dev/sdc1 rw
44 43 0:54 / /mnt/stack rw - fuse.sshfs me@host:/ rw
garbage line
"""


@pytest.mark.parametrize(
    ("path", "fstype"),
    [
        ("/srv/media/inbox/a.wav", "nfs4"),
        ("/srv/media", "nfs4"),
        ("/srv/mediaX/a", "ext4"),  # a prefix of the name is not a parent folder
        ("/srv/media/local disk/state", "xfs"),
        ("/mnt/my share/x", "cifs"),
        ("/mnt/stack/x", "fuse.sshfs"),  # the mount on top wins
        ("/proc/self", "proc"),
        ("/home", "ext4"),
    ],
)
def test_filesystem_type_from_sample_mountinfo(path: str, fstype: str) -> None:
    assert filesystem_type(path, SAMPLE_MOUNTINFO) == fstype


def test_network_filesystems_in_sample() -> None:
    assert is_network_fs("/srv/media/x", SAMPLE_MOUNTINFO)
    assert is_network_fs("/mnt/stack", SAMPLE_MOUNTINFO)
    assert not is_network_fs("/srv/media/local disk", SAMPLE_MOUNTINFO)
    assert len(parse_mountinfo(SAMPLE_MOUNTINFO)) == 7
    assert find_mount("/mnt/my share", SAMPLE_MOUNTINFO).source == "//nas/share"
    assert filesystem_type("/x", "") == "unknown"


def test_filesystem_type_on_real_mountinfo(tmp_path: Path) -> None:
    assert filesystem_type("/proc/self") == "proc"
    fstype = filesystem_type(tmp_path)
    assert fstype != "unknown"
    mounts = (Path("/proc/self/mountinfo").read_text()).split()
    assert fstype in mounts


def test_facts_say_what_the_policy_needs() -> None:
    nfs = facts("/srv/media/inbox", SAMPLE_MOUNTINFO)
    assert (nfs.fstype, nfs.network, nfs.stable_inodes) == ("nfs4", True, False)
    local = facts("/srv/media/local disk/inbox", SAMPLE_MOUNTINFO)
    assert (local.fstype, local.network, local.stable_inodes) == ("xfs", False, True)
