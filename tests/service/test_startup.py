"""Start-up: the version identity policy is recorded once and kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.intake import fsinfo
from daemon.queue import Ledger
from daemon.service.startup import IDENTITY_KEY, version_policy


def mountinfo_with(tmp_path: Path, folder: Path, fstype: str) -> Path:
    path = tmp_path / f"mountinfo-{fstype}"
    mp = str(folder).replace(" ", "\\040")
    path.write_text(f"27 1 254:0 / / rw - ext4 /dev/vda rw\n50 27 0:60 / {mp} rw - {fstype} x rw\n")
    return path


def test_the_identity_policy_is_recorded_and_survives_a_change_of_filesystem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        monkeypatch.setattr(fsinfo, "MOUNTINFO", mountinfo_with(tmp_path, inbox, "xfs"))
        assert version_policy(ledger, inbox).use_inode is True
        assert ledger.get_meta(IDENTITY_KEY) == "inode"
        # The same inbox, now a share (mounted after the first start): keep the policy.
        monkeypatch.setattr(fsinfo, "MOUNTINFO", mountinfo_with(tmp_path, inbox, "nfs4"))
        with capture_logs() as logs:
            assert version_policy(ledger, inbox).use_inode is True
        assert any("keeping the recorded version identity" in e["event"] for e in logs)


def test_a_share_from_the_start_leaves_inodes_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    monkeypatch.setattr(fsinfo, "MOUNTINFO", mountinfo_with(tmp_path, inbox, "cifs"))
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        assert version_policy(ledger, inbox).use_inode is False
        assert ledger.get_meta(IDENTITY_KEY) == "no-inode"
