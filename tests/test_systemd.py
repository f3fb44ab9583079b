"""sd_notify: a real AF_UNIX datagram socket plays systemd; the exact datagrams are checked."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.systemd import Notifier


class FakeSystemd:
    """The receiving end of NOTIFY_SOCKET, bound like systemd binds it."""

    def __init__(self, address: str | bytes) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(2.0)

    def recv(self) -> str:
        return self.sock.recv(4096).decode()

    def assert_silent(self) -> None:
        self.sock.settimeout(0.05)
        with pytest.raises(TimeoutError):
            self.sock.recv(4096)
        self.sock.settimeout(2.0)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A socket path must fit in sun_path (108 bytes); pytest's tmp_path can be longer."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="wd-") as d:
        yield Path(d)


@pytest.fixture
def systemd(short_tmp: Path) -> Iterator[tuple[FakeSystemd, dict[str, str]]]:
    path = short_tmp / "notify.sock"
    fake = FakeSystemd(str(path))
    yield fake, {"NOTIFY_SOCKET": str(path)}
    fake.sock.close()


def test_every_message_is_the_exact_datagram(systemd: tuple[FakeSystemd, dict[str, str]]) -> None:
    fake, env = systemd
    with Notifier(env) as n:
        assert n.enabled
        n.ready("watching /srv/inbox")
        assert fake.recv() == f"READY=1\nSTATUS=watching /srv/inbox\nMAINPID={os.getpid()}"
        n.ready()
        assert fake.recv() == f"READY=1\nMAINPID={os.getpid()}"
        n.status("3 queued, 1 running")
        assert fake.recv() == "STATUS=3 queued, 1 running"
        n.watchdog()
        assert fake.recv() == "WATCHDOG=1"
        n.stopping("finishing talk.mp3")
        assert fake.recv() == "STOPPING=1\nSTATUS=finishing talk.mp3"
        n.stopping()
        assert fake.recv() == "STOPPING=1"
        n.extend_timeout(61.5)
        assert fake.recv() == "EXTEND_TIMEOUT_USEC=61500000"
        n.extend_timeout(-3)
        assert fake.recv() == "EXTEND_TIMEOUT_USEC=0"
        with pytest.raises(ValueError):
            n.extend_timeout(float("nan"))
        fake.assert_silent()


def test_reload_sends_monotonic_usec_then_ready(
    systemd: tuple[FakeSystemd, dict[str, str]],
) -> None:
    fake, env = systemd
    n = Notifier(env)
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    n.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    first, second = fake.recv().split("\n")
    assert first == "RELOADING=1"
    key, _, value = second.partition("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after
    n.reloaded("config reloaded")
    assert fake.recv() == "READY=1\nSTATUS=config reloaded"
    n.close()


def test_status_cannot_inject_a_second_assignment(
    systemd: tuple[FakeSystemd, dict[str, str]],
) -> None:
    fake, env = systemd
    n = Notifier(env)
    n.status("transcribing evil\nREADY=1\r\nSTOPPING=1.mp3")
    assert fake.recv() == "STATUS=transcribing evil READY=1 STOPPING=1.mp3"
    n.close()


def test_abstract_socket() -> None:
    name = f"whisperd-test-{uuid.uuid4().hex}"
    fake = FakeSystemd(b"\0" + name.encode())
    try:
        n = Notifier({"NOTIFY_SOCKET": "@" + name})
        n.ready("ok")
        assert fake.recv() == f"READY=1\nSTATUS=ok\nMAINPID={os.getpid()}"
        n.close()
    finally:
        fake.sock.close()


def test_no_notify_socket_is_a_no_op() -> None:
    n = Notifier({"WATCHDOG_USEC": "120000000"})
    assert not n.enabled
    assert n.watchdog_interval is None
    n.ready("x")
    n.watchdog()
    n.extend_timeout(5)
    n.close()


def test_unsupported_address_disables_with_a_warning() -> None:
    with capture_logs() as logs:
        n = Notifier({"NOTIFY_SOCKET": "vsock:2:1234"})
    assert not n.enabled
    assert [e["event"] for e in logs] == ["unsupported NOTIFY_SOCKET; not notifying systemd"]


@pytest.mark.parametrize(
    ("extra", "interval"),
    [
        ({"WATCHDOG_USEC": "120000000"}, 60.0),
        ({"WATCHDOG_USEC": "120000000", "WATCHDOG_PID": str(os.getpid())}, 60.0),
        ({"WATCHDOG_USEC": "3000"}, 0.0015),
        ({"WATCHDOG_USEC": "120000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(
    systemd: tuple[FakeSystemd, dict[str, str]], extra: dict[str, str], interval: float | None
) -> None:
    _, env = systemd
    n = Notifier({**env, **extra})
    assert n.watchdog_interval == interval
    n.close()


def test_socket_removed_midway_logs_once_and_recovers(short_tmp: Path) -> None:
    path = short_tmp / "notify.sock"
    fake = FakeSystemd(str(path))
    n = Notifier({"NOTIFY_SOCKET": str(path)})
    n.status("one")
    assert fake.recv() == "STATUS=one"
    fake.sock.close()
    path.unlink()
    with capture_logs() as logs:
        for _ in range(3):
            n.watchdog()  # must not raise
        n.ready("still alive")
    assert [e["event"] for e in logs] == ["cannot notify systemd; carrying on"]
    assert logs[0]["notify_socket"] == str(path)

    # systemd comes back (e.g. after daemon-reexec): sends work again and that is logged.
    fake = FakeSystemd(str(path))
    with capture_logs() as logs:
        n.status("two")
    assert fake.recv() == "STATUS=two"
    assert [e["event"] for e in logs] == ["notifying systemd again"]
    n.close()
    n.status("after close")  # a no-op, not an error
    fake.assert_silent()
    fake.sock.close()


@pytest.mark.timeout(30)  # without the send timeout this blocks forever
def test_receiver_not_reading_neither_hangs_nor_spins(short_tmp: Path) -> None:
    """A full receive queue (systemd stuck): messages are dropped at once, no CPU burnt."""
    path = short_tmp / "notify.sock"
    fake = FakeSystemd(str(path))
    n = Notifier({"NOTIFY_SOCKET": str(path)})
    started, cpu = time.monotonic(), time.process_time()
    with capture_logs() as logs:
        for _ in range(2000):  # far more than the default datagram queue (max_dgram_qlen)
            n.watchdog()
    assert [e["event"] for e in logs] == ["cannot notify systemd; carrying on"]
    assert time.monotonic() - started < 2
    assert time.process_time() - cpu < 1  # the old 1 s send timeout spun for a second a send
    n.close()
    fake.sock.close()
