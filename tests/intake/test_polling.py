"""Polling mode, the mode choice and the cost of scanning large trees."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from daemon.config import WatchSettings
from daemon.intake import Watcher
from daemon.intake.fsinfo import is_network_fs
from tests.intake.support import FAST, FakeClock, Recorder, wait_for, write

# watchdog warns when it re-adds a watch for a folder created while it was adding watches
# (nested mkdir -p); harmless, and the watcher's scans cover that race anyway.
pytestmark = pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")


# --- polling -------------------------------------------------------------------------------


def test_polling_mode_finds_files_in_scanned_and_new_directories(
    inbox: Path, running: Callable[..., tuple[Watcher, Recorder]]
) -> None:
    (inbox / "old").mkdir()
    watcher, rec = running(inbox, poll="always")  # rescan 60 s: only the directory poller
    wait_for(watcher.healthy, what="start-up scan")
    assert watcher.mode == "polling"
    write(inbox / "root.mp3")
    write(inbox / "old" / "in-old.mp3")
    write(inbox / "new" / "deeper" / "in-new.mp3")
    wait_for(lambda: {"root.mp3", "old/in-old.mp3", "new/deeper/in-new.mp3"} <= set(rec.names()))
    (inbox / "old" / "in-old.mp3").rename(inbox / "old" / "renamed.mp3")
    wait_for(lambda: rec.count("old/renamed.mp3") == 1 and rec.gone == ["old/in-old.mp3"])
    assert watcher.stats["scans"] == 1
    assert sorted(rec.names()) == [
        "new/deeper/in-new.mp3", "old/in-old.mp3", "old/renamed.mp3", "root.mp3"
    ]  # fmt: skip


def test_idle_polls_list_nothing(inbox: Path) -> None:
    for d in range(10):
        for i in range(50):
            write(inbox / f"d{d}" / f"f{i}.mp3")
    calls: list[str] = []
    watcher = Watcher(inbox, WatchSettings(**{**FAST, "poll": "always"}),
                      on_ready=lambda c: None, is_known=lambda r, f: calls.append(r) or True,
                      clock=FakeClock())  # fmt: skip
    watcher.start()
    watcher.step(now=0.0)
    assert len(calls) == 500  # the start-up scan looks at everything once
    for i in range(1, 21):
        watcher.step(now=i * 0.1)
    assert watcher.stats["polls"] == 20
    assert len(calls) == 500  # idle polls stat 11 directories and look up no file
    write(inbox / "d3" / "fresh.mp3")
    watcher.step(now=3.0)
    assert calls[500:].count("d3/fresh.mp3") == 1  # only the changed directory was listed
    assert all(rel.startswith("d3/") for rel in calls[500:])
    watcher.stop()


# --- mode ----------------------------------------------------------------------------------


def test_auto_mode_uses_inotify_on_a_local_inbox(inbox: Path) -> None:
    assert not is_network_fs(inbox)  # /tmp here is ext4
    watcher = Watcher(inbox, WatchSettings(**{**FAST, "poll": "auto"}), on_ready=lambda c: None)
    watcher.start()
    try:
        assert watcher.mode == "inotify"
    finally:
        watcher.stop()


# --- scale ---------------------------------------------------------------------------------


def test_scan_rate_over_20k_known_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    inbox = tmp_path / "big"
    for d in range(100):
        folder = inbox / f"folder-{d:03d}"
        folder.mkdir(parents=True)
        source = write(folder / "recording-0000.mp3")
        for i in range(1, 200):  # hard links: creating 20k inodes takes ~15 s on this disk
            os.link(source, folder / f"recording-{i:04d}.mp3")
    watcher = Watcher(inbox, WatchSettings(**{**FAST, "poll": "always"}),
                      on_ready=lambda c: None, is_known=lambda r, f: True,
                      clock=FakeClock())  # fmt: skip
    watcher.start()
    started = time.perf_counter()
    watcher.step(now=0.0)
    seconds = time.perf_counter() - started
    assert watcher.pending_count == 0
    poll_started = time.perf_counter()
    for i in range(1, 21):
        watcher.step(now=i * 0.1)
    assert watcher.stats["polls"] == 20
    poll_seconds = (time.perf_counter() - poll_started) / 20
    watcher.stop()
    rate = 20_000 / seconds
    with capsys.disabled():
        print(
            f"\nscan: 20000 known files in {seconds:.3f}s = {rate:,.0f} files/s; "
            f"100k extrapolated: {100_000 / rate:.2f}s; idle poll of 101 dirs: "
            f"{poll_seconds * 1000:.2f} ms (~{poll_seconds * 5 / 2 * 100:.3f}% CPU for 100k "
            f"files in 505 dirs at poll_interval 2 s)"
        )
    assert 100_000 / rate < 30
