"""When a file is handed on: the stability window, slow copies, renames, bursts."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from daemon.intake import Watcher
from tests.intake.support import FakeClock, Recorder, stays_false, stepped, wait_for, write

# watchdog warns when it re-adds a watch for a folder created while it was adding watches
# (nested mkdir -p); harmless, and the watcher's scans cover that race anyway.
pytestmark = pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")


# --- stability -----------------------------------------------------------------------------


def test_file_closed_by_its_writer_is_ready_at_once_exactly_once(
    inbox: Path, running: Callable[..., tuple[Watcher, Recorder]]
) -> None:
    # No stability window for a local file whose writer closed it and holds it no more.
    watcher, rec = running(inbox, poll="never", stable_seconds=5.0)
    wait_for(watcher.healthy, what="start-up scan")
    assert watcher.mode == "inotify"
    written_at = time.monotonic()
    write(inbox / "talk.mp3", b"x" * 1000)
    wait_for(lambda: rec.count("talk.mp3") == 1, what="talk.mp3 ready")
    candidate, ready_at = rec.ready[0]
    assert ready_at - written_at < 2.5  # well within the 5 s window
    assert candidate.path == inbox / "talk.mp3"
    assert candidate.fingerprint.size == 1000
    write(inbox / "later.mp3")
    wait_for(lambda: rec.count("later.mp3") == 1, what="later.mp3 ready")
    assert rec.names() == ["talk.mp3", "later.mp3"]


def test_a_writer_that_pauses_longer_than_the_window_holds_the_file(
    inbox: Path, running: Callable[..., tuple[Watcher, Recorder]]
) -> None:
    """A stalled upload: size and mtime still for 4 windows, but the file is open."""
    watcher, rec = running(inbox, poll="never", stable_seconds=0.2)
    wait_for(watcher.healthy, what="start-up scan")
    with open(inbox / "upload.mp3", "wb") as fh:
        fh.write(b"x" * 1000)
        fh.flush()
        stays_false(lambda: rec.count("upload.mp3"), seconds=0.8)
        assert watcher.waiting() == {"open for writing": 1}
        fh.write(b"y" * 1000)
    wait_for(lambda: rec.count("upload.mp3") == 1, what="upload.mp3 ready after close")
    assert rec.candidate("upload.mp3").fingerprint.size == 2000


def test_stability_uses_the_injected_clock(inbox: Path) -> None:
    # Polling: no close event tells that the writer is done, so the window decides.
    clock, rec = FakeClock(), Recorder()
    watcher = stepped(inbox, clock, rec, stable_seconds=5.0, poll="always")
    write(inbox / "a.mp3")
    assert watcher.step(now=100.0) == 0
    assert watcher.pending_count == 1
    assert watcher.step(now=104.9) == 0
    assert watcher.step(now=105.0) == 1
    assert rec.names() == ["a.mp3"]
    assert watcher.step(now=500.0) == 0  # a full rescan too: not handed on again
    assert rec.names() == ["a.mp3"]
    watcher.stop()


def test_growing_file_resets_the_stability_clock(inbox: Path) -> None:
    clock, rec = FakeClock(), Recorder()
    watcher = stepped(inbox, clock, rec, stable_seconds=1.0, poll="always")
    path = write(inbox / "slow.wav", b"a")
    watcher.step(now=0.0)
    with path.open("ab") as f:
        f.write(b"b")
    assert watcher.step(now=0.5) == 0
    assert watcher.step(now=1.25) == 0  # size changed at 0.5: clock restarted there
    assert watcher.step(now=1.5) == 1
    assert rec.candidate("slow.wav").fingerprint.size == 2
    watcher.stop()


def test_empty_file_is_handed_on_once_stable(inbox: Path) -> None:
    clock, rec = FakeClock(), Recorder()
    watcher = stepped(inbox, clock, rec, stable_seconds=1.0, poll="always")
    write(inbox / "empty.mp3", b"")
    watcher.step(now=0.0)
    assert watcher.step(now=0.5) == 0
    assert watcher.step(now=1.0) == 1
    assert rec.candidate("empty.mp3").fingerprint.size == 0
    watcher.stop()


def test_slow_copy_is_emitted_once_after_the_last_chunk(
    inbox: Path, running: Callable[..., tuple[Watcher, Recorder]]
) -> None:
    _, rec = running(inbox, poll="never", stable_seconds=0.3)
    finished: list[float] = []

    def copy() -> None:
        fd = os.open(inbox / "lecture.mp3", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            for i in range(20):
                if i:
                    time.sleep(0.05)  # the copier's pace, not a wait in the test
                os.write(fd, b"c" * 4096)
            finished.append(time.monotonic())  # the last chunk is on disk
        finally:
            os.close(fd)

    writer = threading.Thread(target=copy)
    writer.start()
    writer.join(timeout=10)
    wait_for(lambda: rec.count("lecture.mp3") == 1, what="lecture.mp3 ready")
    candidate, ready_at = rec.ready[0]
    assert candidate.fingerprint.size == 20 * 4096
    # Open for writing the whole time: never before the last chunk; once its writer closed
    # it, no stability window is needed any more.
    assert ready_at >= finished[0]
    write(inbox / "sentinel.mp3")
    wait_for(lambda: rec.count("sentinel.mp3") == 1)
    assert rec.count("lecture.mp3") == 1


def test_part_file_renamed_into_place_is_emitted_once_under_the_final_name(
    inbox: Path, running: Callable[..., tuple[Watcher, Recorder]]
) -> None:
    _, rec = running(inbox, poll="never")
    part = write(inbox / "x.mp3.part", b"p" * 500)
    old = time.time() - 3600
    os.utime(part, (old, old))  # an old mtime still waits stable_seconds after the rename
    renamed_at = time.monotonic()
    part.rename(inbox / "x.mp3")
    wait_for(lambda: rec.count("x.mp3") == 1, what="x.mp3 ready")
    assert rec.ready[0][1] - renamed_at >= 0.2
    write(inbox / "sentinel.mp3")
    wait_for(lambda: rec.count("sentinel.mp3") == 1)
    assert rec.names() == ["x.mp3", "sentinel.mp3"]


def test_burst_of_200_files_each_emitted_once(
    inbox: Path, running: Callable[..., tuple[Watcher, Recorder]]
) -> None:
    _, rec = running(inbox, poll="never")
    names = [f"burst-{i:03d}.mp3" for i in range(200)]
    for name in names:
        write(inbox / name)
    wait_for(lambda: len(rec.ready) >= 200, timeout=10, what="200 files")
    write(inbox / "sentinel.mp3")
    wait_for(lambda: rec.count("sentinel.mp3") == 1)
    assert sorted(rec.names()) == sorted([*names, "sentinel.mp3"])


def test_nested_folders_created_after_start(
    inbox: Path, running: Callable[..., tuple[Watcher, Recorder]]
) -> None:
    _, rec = running(inbox, poll="never")
    write(inbox / "a" / "b" / "c" / "deep.mp3")
    (inbox / "moved").mkdir()
    write(inbox.parent / "elsewhere" / "inside.mp3")
    (inbox.parent / "elsewhere").rename(inbox / "moved" / "in")  # a tree moved in at once
    wait_for(lambda: {"a/b/c/deep.mp3", "moved/in/inside.mp3"} <= set(rec.names()))
    assert rec.candidate("a/b/c/deep.mp3").path == inbox / "a" / "b" / "c" / "deep.mp3"
