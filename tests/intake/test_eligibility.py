"""Which files are candidates: include/ignore patterns, symlinks, special files, names."""

from __future__ import annotations

import os
import shutil
import threading
import unicodedata
from collections.abc import Callable
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.config import WatchSettings
from daemon.intake import Watcher
from daemon.version import Fingerprint
from tests.intake.support import FAST, FakeClock, Recorder, stepped, wait_for, write

# watchdog warns when it re-adds a watch for a folder created while it was adding watches
# (nested mkdir -p); harmless, and the watcher's scans cover that race anyway.
pytestmark = pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")


# --- eligibility ---------------------------------------------------------------------------


def test_ignored_names_dotfiles_and_include(
    inbox: Path, running: Callable[..., tuple[Watcher, Recorder]]
) -> None:
    write(inbox / "@eaDir" / "thumb.mp3")  # present at start: the scan must not descend
    _, rec = running(inbox, poll="never", include=("*.mp3", "*.wav"))
    for name in [
        ".hidden.mp3", "x.mp3.PART", "y.partial", "z.tmp", "d.crdownload", "~$lock.mp3",
        "Thumbs.db", "desktop.ini", ".DS_Store", "._x.mp3", "notes.txt", ".git/inside.mp3",
        "@EADIR/again.mp3", "sub/.cache/deep.mp3",
    ]:  # fmt: skip
        write(inbox / name)
    write(inbox / "LOUD.MP3")
    write(inbox / "sub" / "ok.wav")
    wait_for(lambda: {"LOUD.MP3", "sub/ok.wav"} <= set(rec.names()))
    write(inbox / "sentinel.mp3")
    wait_for(lambda: rec.count("sentinel.mp3") == 1)
    assert sorted(rec.names()) == ["LOUD.MP3", "sentinel.mp3", "sub/ok.wav"]


def test_fifo_is_skipped_without_blocking(inbox: Path) -> None:
    os.mkfifo(inbox / "pipe.mp3")
    write(inbox / "real.mp3")
    clock, rec = FakeClock(), Recorder()
    watcher = stepped(inbox, clock, rec)
    done = threading.Event()

    def steps() -> None:  # opening the FIFO would block here forever
        watcher.step(now=0.0)
        watcher.step(now=1.0)
        done.set()

    threading.Thread(target=steps, daemon=True).start()
    assert done.wait(timeout=5), "step() blocked on a FIFO"
    assert rec.names() == ["real.mp3"]
    watcher.stop()


def test_symlinks_inside_accepted_outside_refused_once_dangling_ignored(
    inbox: Path, tmp_path: Path
) -> None:
    target = write(inbox / "store" / "real.mp3", b"r" * 10)
    os.symlink(target, inbox / "link.mp3")
    outside = write(tmp_path / "outside" / "secret.mp3")
    os.symlink(outside, inbox / "escape.mp3")
    os.symlink(inbox / "missing.mp3", inbox / "dangling.mp3")
    clock, rec = FakeClock(), Recorder()
    watcher = stepped(inbox, clock, rec, rescan_interval=1.0)
    with capture_logs() as logs:
        for now in (0.0, 1.0, 2.0, 3.0):
            watcher.step(now=now)
    assert sorted(rec.names()) == ["link.mp3", "store/real.mp3"]
    assert rec.candidate("link.mp3").fingerprint.size == 10  # the target's, not the link's
    refusals = [e for e in logs if "outside the inbox" in e["event"]]
    assert len(refusals) == 1
    assert refusals[0]["rel"] == "escape.mp3"
    assert refusals[0]["log_level"] == "warning"
    watcher.stop()


def test_is_known_skips_without_waiting_and_changed_file_is_new(inbox: Path) -> None:
    done = write(inbox / "done.mp3", b"d" * 7)
    st = done.stat()
    known = {("done.mp3", Fingerprint(st.st_size, st.st_mtime_ns, st.st_ino))}
    calls: list[tuple[str, Fingerprint]] = []

    def is_known(rel: str, fp: Fingerprint) -> bool:
        calls.append((rel, fp))
        return (rel, fp) in known

    rec = Recorder()
    watcher = Watcher(inbox, WatchSettings(**FAST, poll="always"), on_ready=rec.on_ready,
                      is_known=is_known,
                      clock=FakeClock())  # fmt: skip
    watcher.start()
    write(inbox / "new.mp3")
    watcher.step(now=0.0)
    assert watcher.pending_count == 1  # only new.mp3 waits; done.mp3 was skipped at once
    assert ("done.mp3", next(iter(known))[1]) in calls
    watcher.step(now=1.0)
    assert rec.names() == ["new.mp3"]
    done.write_bytes(b"changed content")  # a new version is not known: goes through again
    watcher.step(now=61.0)  # full rescan due
    watcher.step(now=62.0)
    assert rec.names() == ["new.mp3", "done.mp3"]
    assert rec.candidate("done.mp3").fingerprint.size == len(b"changed content")
    watcher.stop()


def test_rewritten_file_is_emitted_again(
    inbox: Path, running: Callable[..., tuple[Watcher, Recorder]]
) -> None:
    _, rec = running(inbox, poll="never")  # rescan_interval 60 s: only inotify hints can see it
    path = write(inbox / "memo.mp3", b"first")
    wait_for(lambda: rec.count("memo.mp3") == 1)
    first = rec.candidate("memo.mp3").fingerprint
    path.write_bytes(b"second version")
    wait_for(lambda: rec.count("memo.mp3") == 2, what="memo.mp3 again")
    second = rec.ready[-1][0].fingerprint
    assert (second.size, first.size) == (len(b"second version"), len(b"first"))
    assert second != first


def test_deleted_pending_file_calls_on_gone(inbox: Path) -> None:
    clock, rec = FakeClock(), Recorder()
    watcher = stepped(inbox, clock, rec, stable_seconds=5.0)
    path = write(inbox / "oops.mp3")
    watcher.step(now=0.0)
    assert watcher.pending_count == 1
    path.unlink()
    watcher.step(now=1.0)
    assert rec.gone == ["oops.mp3"]
    assert watcher.pending_count == 0
    watcher.step(now=10.0)
    assert rec.names() == []
    watcher.stop()


def test_deleted_emitted_file_calls_on_gone_from_the_event(
    inbox: Path, running: Callable[..., tuple[Watcher, Recorder]]
) -> None:
    _, rec = running(inbox, poll="never")
    path = write(inbox / "sub" / "done.mp3")
    wait_for(lambda: rec.count("sub/done.mp3") == 1)
    shutil.rmtree(inbox / "sub")
    wait_for(lambda: rec.gone == ["sub/done.mp3"], what="on_gone")
    assert not path.exists()


# --- names ---------------------------------------------------------------------------------


def test_odd_names(inbox: Path, running: Callable[..., tuple[Watcher, Recorder]]) -> None:
    latin1 = os.fsdecode(b"caf\xe9.mp3")
    nfd = unicodedata.normalize("NFD", "café-nfd.mp3")
    names = [latin1, nfd, " spaced name .mp3", "-leading-dash.mp3", "x" * 251 + ".mp3"]
    sub = os.fsdecode(b"dir-\xff")
    write(inbox / "pre-existing.mp3")
    _, rec = running(inbox, poll="never")
    for name in names:
        write(inbox / name)
    write(inbox / sub / nfd)
    expected = {*names, f"{sub}/{nfd}", "pre-existing.mp3"}
    wait_for(lambda: expected <= set(rec.names()), what="odd names")
    assert len(rec.ready) == len(expected)
    assert os.fsencode(rec.candidate(latin1).rel_path) == b"caf\xe9.mp3"
    assert rec.candidate(nfd).rel_path == nfd  # not normalised to NFC
    for candidate, _ in rec.ready:
        assert candidate.path.is_file()
