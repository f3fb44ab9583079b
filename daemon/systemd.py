"""sd_notify(3) without libsystemd: tell systemd that whisperd is ready, alive, reloading, stopping.

systemd passes ``NOTIFY_SOCKET`` (a filesystem path, or ``@name`` for an abstract socket) to a
``Type=notify`` service; each notification is one datagram of ``KEY=VALUE`` lines sent there.
With ``WatchdogSec=`` it also passes ``WATCHDOG_USEC`` (and ``WATCHDOG_PID``): the service must
send ``WATCHDOG=1`` more often than that, or systemd kills and restarts it.

The service must never die because of this channel: when ``NOTIFY_SOCKET`` is unset every
method is a no-op, and a send that fails (socket gone, systemd busy) is logged once per outage
and otherwise ignored. One :class:`Notifier` may be shared by threads (the watchdog pinger,
the main loop); sends are serialised by a lock.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from collections.abc import Mapping

import structlog

log = structlog.get_logger(__name__)

# A send blocks only while systemd's receive queue is full; never hang the service on it.


def _one_line(text: str) -> str:
    """A value fit for one ``KEY=VALUE`` line: systemd splits a datagram at newlines, so a file
    name holding ``\\nREADY=1`` must not become a second assignment."""
    return " ".join(text.splitlines())


def _address(value: str) -> str | bytes | None:
    """The socket address named by NOTIFY_SOCKET, or None when it is not one we can use."""
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return b"\0" + value[1:].encode()
    return None  # e.g. systemd >= 254's "vsock:CID:PORT", used only inside VMs


def _watchdog_interval(env: Mapping[str, str], pid: int) -> float | None:
    """Seconds between pings: half of WATCHDOG_USEC, as sd_watchdog_enabled(3) recommends."""
    raw = env.get("WATCHDOG_USEC", "")
    if not raw:
        return None
    owner = env.get("WATCHDOG_PID", "")
    if owner and owner != str(pid):
        return None  # inherited from a parent; the watchdog is not ours to feed
    try:
        usec = int(raw)
    except ValueError:
        usec = 0
    if usec <= 0:
        log.warning("ignoring an invalid WATCHDOG_USEC", value=raw)
        return None
    return usec / 2 / 1_000_000


class Notifier:
    """Notifications to systemd through ``NOTIFY_SOCKET``, read from ``env`` (pass os.environ)."""

    enabled: bool
    watchdog_interval: float | None

    def __init__(self, env: Mapping[str, str]) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._failing = False
        raw = env.get("NOTIFY_SOCKET", "")
        self._addr = _address(raw) if raw else None
        if raw and self._addr is None:
            log.warning("unsupported NOTIFY_SOCKET; not notifying systemd", notify_socket=raw)
        self.enabled = self._addr is not None
        self.watchdog_interval = _watchdog_interval(env, os.getpid()) if self.enabled else None
        if self.enabled:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # close-on-exec
            # Non-blocking: with a full receive queue (systemd not reading) a message is
            # dropped at once. A send timeout would spin: Python waits for POLLOUT, which an
            # AF_UNIX datagram socket reports while the peer's queue is full, so the retry
            # loop burns a core for the whole timeout.
            self._sock.setblocking(False)

    def ready(self, status: str = "") -> None:
        """Startup finished (Type=notify: systemctl start returns now)."""
        self._send("READY=1", *self._status(status), f"MAINPID={os.getpid()}")

    def status(self, text: str) -> None:
        """Free-form status line shown by ``systemctl status``."""
        self._send(*self._status(text))

    def watchdog(self) -> None:
        """Keep-alive; call every :attr:`watchdog_interval` seconds while healthy."""
        self._send("WATCHDOG=1")

    def stopping(self, status: str = "") -> None:
        """Shutdown has begun."""
        self._send("STOPPING=1", *self._status(status))

    def reloading(self, status: str = "") -> None:
        """A configuration reload has begun; follow with :meth:`reloaded` when it is done.

        MONOTONIC_USEC (CLOCK_MONOTONIC) is required by Type=notify-reload (systemd >= 253)."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self._send("RELOADING=1", f"MONOTONIC_USEC={usec}", *self._status(status))

    def reloaded(self, status: str = "") -> None:
        """The reload is done (whether the new configuration was taken or rejected)."""
        self._send("READY=1", *self._status(status))

    def extend_timeout(self, seconds: float) -> None:
        """Ask for ``seconds`` more before the current start/stop timeout kills the service.

        Extends the deadline to now + seconds; send it again before that runs out."""
        if not math.isfinite(seconds):
            raise ValueError(f"extend_timeout: {seconds!r} is not a number of seconds")
        usec = max(0, math.ceil(seconds * 1_000_000))
        self._send(f"EXTEND_TIMEOUT_USEC={usec}")

    def close(self) -> None:
        """Close the socket; later calls do nothing."""
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _status(text: str) -> list[str]:
        return [f"STATUS={_one_line(text)}"] if text else []

    def _send(self, *lines: str) -> None:
        if not lines:
            return
        # A name that is not UTF-8 (a lone surrogate) must never stop a notification.
        message = "\n".join(lines).encode("utf-8", "backslashreplace")
        with self._lock:
            if self._sock is None or self._addr is None:
                return
            try:
                self._sock.sendto(message, self._addr)
            except OSError as err:
                if not self._failing:
                    # Once per outage: the watchdog pinger would otherwise log every minute.
                    log.warning("cannot notify systemd; carrying on", error=str(err),
                                notify_socket=self._display_addr())  # fmt: skip
                self._failing = True
            else:
                if self._failing:
                    log.info("notifying systemd again", notify_socket=self._display_addr())
                self._failing = False

    def _display_addr(self) -> str:
        addr = self._addr
        if isinstance(addr, bytes):
            return "@" + addr[1:].decode(errors="replace")
        return str(addr)
