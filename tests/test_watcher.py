"""Inbox watcher: real folders, real watchdog (inotify) and the directory poller, real writes.

Tests about stability arithmetic drive ``step(now=...)`` with a fake clock; tests about real
watchdog behaviour run ``Watcher.run`` in a thread on the real clock and wait for conditions.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.fsinfo import is_network_fs
from daemon.watcher import Candidate, Fingerprint, Watcher, WatchOptions

# watchdog warns when it re-adds a watch for a folder created while it was adding watches
# (nested mkdir -p); harmless, and the watcher's scans cover that race anyway.
pytestmark = pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")

FAST = {"poll_interval": 0.05, "stable_seconds": 0.2, "rescan_interval": 60.0}


def wait_for(predicate: Callable[[], object], timeout: float = 5.0, what: str = "") -> None:
    """Poll ``predicate`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.01)


class Recorder:
    """Collects callbacks (from the watcher's thread) with the real time they happened."""

    def __init__(self) -> None:
        self.ready: list[tuple[Candidate, float]] = []
        self.gone: list[str] = []
        self.known_calls: list[tuple[str, Fingerprint]] = []

    def on_ready(self, candidate: Candidate) -> None:
        self.ready.append((candidate, time.monotonic()))

    def on_gone(self, rel: str) -> None:
        self.gone.append(rel)

    def names(self) -> list[str]:
        return [c.rel_path for c, _ in self.ready]

    def count(self, rel: str) -> int:
        return self.names().count(rel)

    def candidate(self, rel: str) -> Candidate:
        return next(c for c, _ in self.ready if c.rel_path == rel)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def write(path: Path, data: bytes = b"ID3 audio bytes") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    return path


@pytest.fixture
def running() -> Iterator[Callable[..., tuple[Watcher, Recorder]]]:
    """Start a watcher on the real clock in its own thread, as the service does."""
    started: list[tuple[Watcher, threading.Event, threading.Thread]] = []

    def start(
        inbox: Path,
        is_known: Callable[[str, Fingerprint], bool] | None = None,
        **options: object,
    ) -> tuple[Watcher, Recorder]:
        rec = Recorder()
        watcher = Watcher(
            inbox,
            WatchOptions(**{**FAST, **options}),  # type: ignore[arg-type]
            on_ready=rec.on_ready,
            on_gone=rec.on_gone,
            is_known=is_known or (lambda r, f: False),
        )
        watcher.start()
        stop = threading.Event()
        thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
        thread.start()
        started.append((watcher, stop, thread))
        return watcher, rec

    yield start
    for watcher, stop, thread in started:
        stop.set()
        thread.join(timeout=5)
        assert not thread.is_alive(), "run() did not notice the stop request"
        watcher.stop()


def stepped(inbox: Path, clock: FakeClock, rec: Recorder, **options: object) -> Watcher:
    """A started watcher driven by hand with the fake clock (no run thread)."""
    watcher = Watcher(
        inbox,
        WatchOptions(**{**FAST, **options}),  # type: ignore[arg-type]
        on_ready=rec.on_ready,
        on_gone=rec.on_gone,
        clock=clock,
    )
    watcher.start()
    return watcher


# --- stability -----------------------------------------------------------------------------


def test_file_written_at_once_is_ready_after_stable_seconds_exactly_once(
    inbox: Path, running: Callable[..., tuple[Watcher, Recorder]]
) -> None:
    watcher, rec = running(inbox, poll="never")
    wait_for(watcher.healthy, what="start-up scan")
    assert watcher.mode == "inotify"
    written_at = time.monotonic()
    write(inbox / "talk.mp3", b"x" * 1000)
    wait_for(lambda: rec.count("talk.mp3") == 1, what="talk.mp3 ready")
    candidate, ready_at = rec.ready[0]
    assert ready_at - written_at >= 0.2
    assert candidate.path == inbox / "talk.mp3"
    assert candidate.fingerprint.size == 1000
    # A later file needs a full stability period; by then talk.mp3 had many more steps.
    write(inbox / "later.mp3")
    wait_for(lambda: rec.count("later.mp3") == 1, what="later.mp3 ready")
    assert rec.names() == ["talk.mp3", "later.mp3"]


def test_stability_uses_the_injected_clock(inbox: Path) -> None:
    clock, rec = FakeClock(), Recorder()
    watcher = stepped(inbox, clock, rec, stable_seconds=5.0)
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
    watcher = stepped(inbox, clock, rec, stable_seconds=1.0)
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
    watcher = stepped(inbox, clock, rec, stable_seconds=1.0)
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
    assert ready_at >= finished[0] + 0.3
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
    watcher = Watcher(inbox, WatchOptions(**FAST), on_ready=rec.on_ready, is_known=is_known,
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
    watcher = Watcher(inbox, WatchOptions(**{**FAST, "poll": "always"}),
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
    wait_for(lambda: watcher.step(now=1.0) >= 0 and watcher.pending_count == 1, what="event")
    assert watcher.step(now=2.0) == 1
    assert rec.names() == ["live.mp3"]
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


# --- scale ---------------------------------------------------------------------------------


def test_scan_rate_over_20k_known_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    inbox = tmp_path / "big"
    for d in range(100):
        folder = inbox / f"folder-{d:03d}"
        folder.mkdir(parents=True)
        source = write(folder / "recording-0000.mp3")
        for i in range(1, 200):  # hard links: creating 20k inodes takes ~15 s on this disk
            os.link(source, folder / f"recording-{i:04d}.mp3")
    watcher = Watcher(inbox, WatchOptions(**{**FAST, "poll": "always"}),
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


# --- mode ----------------------------------------------------------------------------------


def test_auto_mode_uses_inotify_on_a_local_inbox(inbox: Path) -> None:
    assert not is_network_fs(inbox)  # /tmp here is ext4
    watcher = Watcher(inbox, WatchOptions(**{**FAST, "poll": "auto"}), on_ready=lambda c: None)
    watcher.start()
    try:
        assert watcher.mode == "inotify"
    finally:
        watcher.stop()
