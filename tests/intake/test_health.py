"""The watcher's health: inbox removed and re-created, observer death, stop."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.intake import Watcher
from tests.intake.support import FakeClock, Recorder, stepped, wait_for, write

# watchdog warns when it re-adds a watch for a folder created while it was adding watches
# (nested mkdir -p); harmless, and the watcher's scans cover that race anyway.
pytestmark = pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")


# --- health and recovery -------------------------------------------------------------------


@pytest.mark.parametrize("poll", ["never", "always"])
def test_inbox_removed_and_recreated_resumes(
    inbox: Path, running: Callable[..., tuple[Watcher, Recorder]], poll: str
) -> None:
    watcher, rec = running(inbox, poll=poll)
    write(inbox / "before.mp3")
    wait_for(lambda: rec.count("before.mp3") == 1)
    assert watcher.healthy()
    shutil.rmtree(inbox)
    wait_for(lambda: watcher.stats["inbox_missing"], what="step notices the missing inbox")
    assert not watcher.healthy()
    inbox.mkdir()
    write(inbox / "after.mp3")
    write(inbox / "sub" / "after2.mp3")
    wait_for(lambda: {"after.mp3", "sub/after2.mp3"} <= set(rec.names()), what="resumed")
    wait_for(watcher.healthy, what="healthy again")
    assert rec.gone == ["before.mp3"]
    write(inbox / "later.mp3")  # the new observer (or poller) sees live writes again
    wait_for(lambda: rec.count("later.mp3") == 1)
    assert watcher.mode == ("inotify" if poll == "never" else "polling")


def test_dead_observer_is_logged_once_and_replaced(inbox: Path) -> None:
    clock, rec = FakeClock(), Recorder()
    watcher = stepped(inbox, clock, rec, poll="never")
    watcher.step(now=0.0)
    assert watcher.healthy(now=0.0)
    crashed = watcher._observer  # end the real observer thread, as an exception in it would
    crashed.stop()
    crashed.join(timeout=5)
    assert not watcher.healthy(now=0.0)
    with capture_logs() as logs:
        watcher.step(now=0.1)
        watcher.step(now=0.2)
    errors = [e for e in logs if e["log_level"] == "error"]
    assert [e["event"] for e in errors] == ["inbox observer stopped; restarting it and rescanning"]
    assert "stopped" in errors[0]["reason"]
    assert watcher.healthy(now=0.2)
    assert (watcher.mode, watcher.stats["restarts"]) == ("inotify", 1)
    write(inbox / "live.mp3")  # next full rescan is at 60.1: only the new observer can see it
    # Its close event makes it ready at once (its writer is gone): no window to wait for.
    wait_for(lambda: watcher.step(now=1.0) >= 0 and rec.names() == ["live.mp3"], what="event")
    watcher.stop()


def test_inbox_missing_at_start_logs_once_and_waits(inbox: Path) -> None:
    shutil.rmtree(inbox)
    clock, rec = FakeClock(), Recorder()
    with capture_logs() as logs:
        watcher = stepped(inbox, clock, rec)
        for now in (0.0, 0.1, 0.2):
            assert watcher.step(now=now) == 0
    assert [e["event"] for e in logs].count("inbox missing; waiting for it to come back") == 1
    write(inbox / "a.mp3")
    watcher.step(now=1.0)
    watcher.step(now=2.0)
    assert rec.names() == ["a.mp3"]
    assert watcher.healthy(now=2.0)
    watcher.stop()


def test_files_added_while_down_are_found_by_the_start_up_scan(
    inbox: Path, running: Callable[..., tuple[Watcher, Recorder]]
) -> None:
    write(inbox / "one.mp3")
    write(inbox / "nested" / "two.mp3")
    _, rec = running(inbox, poll="never")
    wait_for(lambda: len(rec.ready) == 2)
    assert sorted(rec.names()) == ["nested/two.mp3", "one.mp3"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads unreadable folders anyway")
def test_unreadable_subfolder_is_skipped(inbox: Path) -> None:
    locked = inbox / "locked"
    write(locked / "x.mp3")
    write(inbox / "ok.mp3")
    locked.chmod(0)
    try:
        clock, rec = FakeClock(), Recorder()
        watcher = stepped(inbox, clock, rec)
        watcher.step(now=0.0)
        watcher.step(now=1.0)
        assert rec.names() == ["ok.mp3"]
        watcher.stop()
    finally:
        locked.chmod(0o755)
