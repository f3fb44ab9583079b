"""The writer probe against real processes holding real files open (ext4, tmpfs, overlayfs).

The writer is a separate Python process that copies half a file, then holds it open (size and
mtime still, which fools a stability window) until told to go on, copies the rest, closes it
and stays alive. Other users are real uids (nobody) reached by fork + setresuid, so
capabilities are really dropped. The last tests pin what the watcher can build on: watchdog's
inotify observer reports the writer's close as a ``closed`` event, and our own probes as
``opened``/``closed_no_write`` unless the watch filters them out.
"""

from __future__ import annotations

import json
import os
import queue
import selectors
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import pytest
from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.inotify import InotifyObserver

from daemon.intake import writers
from daemon.intake.fsinfo import facts, filesystem_type
from daemon.intake.writers import WriterProbe
from daemon.media import completeness
from tests.synth import make_audio

ROOT = Path(__file__).resolve().parents[2]
NOBODY = 65534
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown, setresuid, mount)")

COPIER = """
import sys
src, dst = open(sys.argv[1], "rb").read(), open(sys.argv[2], "wb")
dst.write(src[: len(src) // 2]); dst.flush()
print("paused", flush=True)
sys.stdin.readline()                 # a writer that pauses with the file open
dst.write(src[len(src) // 2 :]); dst.close()
print("closed", flush=True)
sys.stdin.readline()                 # stays alive after closing
"""
READER = """
import sys
f = open(sys.argv[1], "rb")
print("open", flush=True)
sys.stdin.readline()
"""


@contextmanager
def helper(script: str, *paths: Path) -> Iterator[subprocess.Popen[str]]:
    """A Python process running ``script`` on ``paths``; talk to it by lines."""
    proc = subprocess.Popen([sys.executable, "-c", script, *map(str, paths)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        yield proc
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(timeout=10)


def said(proc: subprocess.Popen[str], timeout: float = 10.0) -> str:
    """The helper's next line; fails when it says nothing within ``timeout`` seconds."""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)  # type: ignore[arg-type]
        assert sel.select(timeout), "the helper process said nothing in time"
    return proc.stdout.readline().strip()  # type: ignore[union-attr]


def go_on(proc: subprocess.Popen[str]) -> None:
    proc.stdin.write("go\n")  # type: ignore[union-attr]
    proc.stdin.flush()  # type: ignore[union-attr]


@pytest.fixture
def overlay_dir(tmp_path: Path) -> Iterator[Path]:
    """A real overlayfs mount (root only); skipped where it cannot be mounted."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("overlayfs needs root")
    for d in ("lower", "upper", "work", "merged"):
        (tmp_path / d).mkdir()
    opts = f"lowerdir={tmp_path}/lower,upperdir={tmp_path}/upper,workdir={tmp_path}/work"
    cmd = ["mount", "-t", "overlay", "overlay", "-o", opts, str(tmp_path / "merged")]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount overlayfs: {done.stderr.strip()}")
    try:
        yield tmp_path / "merged"
    finally:
        subprocess.run(["umount", str(tmp_path / "merged")], check=True)


@pytest.fixture(params=["tmp", "tmpfs", "overlay"])
def folder(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """A folder on each local filesystem type available here."""
    if request.param == "tmpfs":
        if filesystem_type("/dev/shm") != "tmpfs":
            pytest.skip("/dev/shm is not a tmpfs here")
        d = Path("/dev/shm") / f"writers-test-{os.getpid()}"
        d.mkdir()
        yield d
        shutil.rmtree(d)
    elif request.param == "overlay":
        yield request.getfixturevalue("overlay_dir")
    else:
        yield tmp_path


def test_paused_writer_is_seen_until_it_closes(folder: Path, tmp_path: Path) -> None:
    src, path = tmp_path / "src.wav", folder / "recording.wav"
    src.write_bytes(os.urandom(256 * 1024))
    lease, proc_only = WriterProbe(methods=("lease",)), WriterProbe(methods=("proc",))
    with helper(COPIER, src, path) as writer:
        assert said(writer) == "paused"
        still = (path.stat().st_size, path.stat().st_mtime_ns)
        during = [(lease.check(path), proc_only.check(path)) for _ in range(3)]
        assert all(a.writing is True and a.method == "lease" for a, _ in during), during
        assert all(b.writing is True and b.pids == (writer.pid,) for _, b in during), during
        assert "open for writing by pid" in during[0][1].reason
        assert writers.open_for_writing(path) is True
        assert (path.stat().st_size, path.stat().st_mtime_ns) == still  # "stable", yet open
        go_on(writer)
        assert said(writer) == "closed"
        assert writer.poll() is None  # the process lives on; only its file is closed
        assert lease.check(path).writing is False
        assert proc_only.check(path).writing is False
        assert writers.open_for_writing(path) is False


def test_file_open_only_for_reading_is_not_being_written(folder: Path) -> None:
    path = folder / "done.mp3"
    path.write_bytes(b"\xff" * 1000)
    with helper(READER, path) as reader:
        assert said(reader) == "open"
        assert WriterProbe(methods=("lease",)).check(path).writing is False
        assert WriterProbe(methods=("proc",)).check(path).writing is False


def test_network_client_mount_cannot_tell(tmp_path: Path) -> None:
    """The folder mounted over NFS (per mountinfo): writers on other machines are invisible."""
    mountinfo = (
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
        f"95 22 0:52 / {os.path.realpath(tmp_path)} rw,relatime shared:60 - nfs4 nas:/rec rw\n"
    )
    path = tmp_path / "a.wav"
    path.write_bytes(b"x")
    status = WriterProbe(facts_of=lambda p: facts(p, mountinfo)).check(path)
    assert (status.writing, status.method) == (None, "none")
    assert "nfs4 client mount" in status.reason


def test_gone_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        writers.open_for_writing(tmp_path / "missing.wav")


# --- other users: real uids through fork + setresuid ----------------------------------------


def _become(uid: int) -> None:
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)


def _as_user(uid: int, func: Callable[[], object]) -> object:
    """Run ``func`` in a forked child with uid/gid ``uid`` (capabilities dropped); its result."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(r)
        try:
            _become(uid)
            out = json.dumps(func())
        except BaseException as err:  # report anything to the parent
            out = json.dumps({"error": repr(err)})
        os.write(w, out.encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        data = f.read()
    os.waitpid(pid, 0)
    return json.loads(data)


@contextmanager
def _held_open_by(uid: int, path: Path) -> Iterator[None]:
    """A forked child running as ``uid`` holds ``path`` open for appending until exit."""
    ready_r, ready_w = os.pipe()
    stop_r, stop_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.close(ready_r)
            os.close(stop_w)
            _become(uid)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            os.write(ready_w, b"1")
            os.read(stop_r, 1)
            os.close(fd)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(stop_r)
    try:
        assert os.read(ready_r, 1) == b"1", f"uid {uid} could not open {path}"
        yield
    finally:
        os.close(stop_w)
        os.close(ready_r)
        os.waitpid(pid, 0)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder every user may enter (pytest's tmp_path is private to root)."""
    d = Path("/tmp") / f"writers-shared-{os.getpid()}"
    d.mkdir()
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d)


def _owned_by_nobody(path: Path) -> Path:
    path.write_bytes(b"x")
    os.chown(path, NOBODY, NOBODY)
    return path


@root_only
def test_root_takes_a_lease_on_another_users_file(shared_dir: Path) -> None:
    path = _owned_by_nobody(shared_dir / "theirs.wav")
    probe = WriterProbe(methods=("lease",))
    with _held_open_by(NOBODY, path):
        status = probe.check(path)
        assert (status.writing, status.method) == (True, "lease"), status.reason
    assert probe.check(path).writing is False


@root_only
def test_owner_without_capabilities_uses_the_lease(shared_dir: Path) -> None:
    path = _owned_by_nobody(shared_dir / "mine.wav")
    check = lambda: asdict(WriterProbe().check(path))  # noqa: E731
    with _held_open_by(NOBODY, path):
        seen = _as_user(NOBODY, check)
        assert (seen["writing"], seen["method"]) == (True, "lease"), seen
    seen = _as_user(NOBODY, check)
    assert (seen["writing"], seen["method"]) == (False, "lease"), seen


@root_only
def test_non_owner_without_cap_lease_reports_what_it_cannot_see(shared_dir: Path) -> None:
    """As nobody, a root-owned file: no lease, and root's processes cannot be inspected."""
    path = shared_dir / "roots.wav"
    path.write_bytes(b"x")
    os.chmod(path, 0o644)
    with _held_open_by(0, path):
        seen = _as_user(NOBODY, lambda: asdict(WriterProbe().check(path)))
    assert seen["writing"] is None and seen["method"] == "proc", seen
    assert "no CAP_LEASE" in seen["reason"] and "not inspectable" in seen["reason"], seen


# --- the lease itself ---------------------------------------------------------------------------

OPENER = """
import sys
while True:
    open(sys.argv[1], "ab").close()
"""
PROBER = """
import collections, sys, time
from daemon.intake.writers import lease_says_writing
seen, end = collections.Counter(), time.monotonic() + 10
while time.monotonic() < end and min(seen[True], seen[False]) < 10_000:
    seen[lease_says_writing(sys.argv[1])] += 1
print(seen[True], seen[False])
"""


def test_probing_during_concurrent_opens_never_kills_the_prober(tmp_path: Path) -> None:
    """A lease break signals the holder; without F_SETSIG the default SIGIO would kill it."""
    path = tmp_path / "busy.wav"
    path.write_bytes(b"x")
    opener = subprocess.Popen([sys.executable, "-c", OPENER, str(path)])
    try:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        prober = subprocess.run([sys.executable, "-c", PROBER, str(path)], env=env,
                                capture_output=True, text=True, timeout=60)  # fmt: skip
    finally:
        opener.kill()
        opener.wait(timeout=10)
    died = prober.returncode < 0 and signal.Signals(-prober.returncode).name
    assert prober.returncode == 0, f"the prober died: {died or prober.stderr}"
    writing, free = map(int, prober.stdout.split())
    assert writing >= 10_000 and free >= 10_000  # it probed the opener both in and out of its open


def test_filesystem_without_leases_falls_back_to_proc_and_is_remembered(tmp_path: Path) -> None:
    """No local filesystem here lacks leases, so the lease test is replaced by one that fails
    the way the kernel does there (EINVAL); the writer itself is a real process."""
    calls: list[str] = []

    def no_leases(path: str) -> bool:
        calls.append(path)
        raise writers.LeaseUnavailable(
            "leases unsupported here (Invalid argument)", per_filesystem=True
        )

    probe = WriterProbe(lease=no_leases)
    src, path = tmp_path / "src.wav", tmp_path / "talk.wav"
    src.write_bytes(os.urandom(1000))
    with helper(COPIER, src, path) as writer:
        assert said(writer) == "paused"
        first = probe.check(path)
        assert (first.writing, first.method, first.pids) == (True, "proc", (writer.pid,))
        assert "leases unsupported" in first.reason
        go_on(writer)
        assert said(writer) == "closed"
        second = probe.check(path)
        assert (second.writing, second.method) == (False, "proc")
    assert len(calls) == 1  # the filesystem's answer was cached: no second lease attempt


# --- watchdog: the writer's close is an event; our probes are not, once filtered ------------


class Events(FileSystemEventHandler):
    """Puts every event on a queue for the test thread."""

    def __init__(self) -> None:
        self.queue: queue.Queue[FileSystemEvent] = queue.Queue()

    def on_any_event(self, event: FileSystemEvent) -> None:
        self.queue.put(event)

    def until(self, kind: str, path: Path, timeout: float = 5.0) -> list[FileSystemEvent]:
        """Events up to the first ``kind`` event for ``path`` (queue.Empty on timeout)."""
        seen = []
        while not seen or (seen[-1].event_type, Path(seen[-1].src_path)) != (kind, path):
            seen.append(self.queue.get(timeout=timeout))
        return seen


@contextmanager
def observing(folder: Path, **options: object) -> Iterator[Events]:
    events, observer = Events(), InotifyObserver()
    observer.schedule(events, str(folder), recursive=True, **options)  # type: ignore[arg-type]
    observer.start()
    try:
        yield events
    finally:
        observer.stop()
        observer.join(timeout=5)


def test_closed_event_arrives_when_the_writer_closes(tmp_path: Path) -> None:
    src = make_audio(tmp_path / "src.mp4", seconds=3.0, noise=True)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    dst = inbox / "talk.mp4"
    only = [FileClosedEvent, FileCreatedEvent]  # as the watcher should: not opened/no-write
    with observing(inbox, event_filter=only) as events, helper(COPIER, src, dst) as copier:
        assert said(copier) == "paused"
        events.until("created", dst)
        assert writers.open_for_writing(dst) is True
        assert completeness.check(dst).state == "incomplete"
        with pytest.raises(queue.Empty):  # no close while the writer holds it; probes are silent
            events.queue.get(timeout=0.3)
        go_on(copier)
        assert said(copier) == "closed"
        events.until("closed", dst)
        # on the event: no writer left, and the file is whole: it can be queued now
        assert writers.open_for_writing(dst) is False
        verdict = completeness.check(dst)
        assert (verdict.state, verdict.conclusive) == ("complete", True), verdict.reason


def test_unfiltered_watch_sees_our_own_probe(tmp_path: Path) -> None:
    """The probe opens the file: a watch without a filter gets opened + closed_no_write."""
    path = tmp_path / "a.wav"
    path.write_bytes(b"RIFF")
    with observing(tmp_path) as events:
        writers.open_for_writing(path)
        seen = [e.event_type for e in events.until("closed_no_write", path)]
    assert "opened" in seen, seen
