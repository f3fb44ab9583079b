"""Run `whisperd run` as a real subprocess on a temporary inbox, with a NOTIFY_SOCKET."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05) -> Any:
    """Poll until ``predicate()`` is truthy; fail the test with a clear message on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {predicate}")
        time.sleep(interval)


FAST_WATCH = {"stable_seconds": 0.3, "poll_interval": 0.1, "rescan_interval": 2}


def stays_false(predicate: Callable[[], Any], seconds: float, interval: float = 0.05) -> None:
    """Fail the test if ``predicate()`` becomes truthy within ``seconds`` (a negative check)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            raise AssertionError(f"condition became true within {seconds} s: {value!r}")
        time.sleep(interval)


class Service:
    """One whisperd service on ``root``/inbox → ``root``/outbox, state in ``root``/var."""

    def __init__(self, root: Path, *, config: str = "", fake: bool = True,
                 env: dict[str, str] | None = None, inbox: Path | None = None,
                 outbox: Path | None = None, dsn: str | None = None) -> None:  # fmt: skip
        self.root = root
        self.inbox, self.outbox = inbox or root / "inbox", outbox or root / "outbox"
        self.state = root / "var"
        self.dsn = dsn  # a shared PostgreSQL ledger: the test's config names it too
        self.inbox.mkdir(parents=True, exist_ok=True)
        root.mkdir(parents=True, exist_ok=True)
        self.config = root / "whisperd.yaml"
        self.fake = fake
        self.write_config(config)
        self.entry = "tests.e2e.fake_whisperd" if fake else "daemon"
        self.extra_env = env or {}
        self.proc: subprocess.Popen | None = None
        self.log_path = root / "service.log"
        self.notify_path = root / "notify.sock"
        self.notify: socket.socket | None = None
        self.messages: list[str] = []

    def base_defaults(self) -> dict:
        """The ``defaults`` every config of this service starts from: tiny.en, and with the
        fake engine speech detection off (sine tones hold no speech: a job would skip the
        engine and end in milliseconds)."""
        return {"model": "tiny.en", **({"vad": {"enabled": False}} if self.fake else {})}

    def write_config(
        self,
        extra: str = "",
        jobs: dict | None = None,
        defaults: dict | None = None,
        watch: dict | None = None,
    ) -> None:
        """The test config; ``extra``: more top-level YAML; ``jobs``, ``defaults`` and
        ``watch``: overrides in those sections. The listener takes a free port (tests run
        side by side) unless ``extra`` sets ``metrics:``; :meth:`url` finds it.

        With the fake engine, speech detection is off unless ``defaults`` turns it on: these
        services hear sine tones (no speech), and their tests are about the service.
        """
        settings = {"retry_backoff": 0.1, "retry_backoff_max": 0.2, "stop_timeout": 10,
                    **(jobs or {})}  # fmt: skip
        base = self.base_defaults()
        self.config.write_text(
            f"inbox: {self.inbox}\noutbox: {self.outbox}\nstate_dir: {self.state}\n"
            f"model_dir: {ROOT / 'models'}\n"
            f"defaults: {json.dumps({**base, **(defaults or {})})}\n"
            f"watch: {json.dumps({**FAST_WATCH, **(watch or {})})}\n"
            f"jobs: {json.dumps(settings)}\n"
            + ("" if "metrics:" in extra else 'metrics: {listen: "127.0.0.1:0"}\n')
            + extra,
            encoding="utf-8",
        )

    def start(self, *, wait_ready: bool = True, env: dict[str, str] | None = None) -> None:
        if self.notify is None:
            self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.notify.bind(str(self.notify_path))
            self.notify.setblocking(False)
        full_env = {**os.environ, "NOTIFY_SOCKET": str(self.notify_path), **self.extra_env,
                    **(env or {})}  # fmt: skip
        full_env["PYTHONPATH"] = str(ROOT)
        log = open(self.log_path, "a", encoding="utf-8")  # noqa: SIM115 - closed by the child exit
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.entry, "run", "-c", str(self.config)],
            stdout=log, stderr=subprocess.STDOUT, env=full_env, cwd=self.root,
        )  # fmt: skip
        log.close()
        if wait_ready:
            wait_for(lambda: self.received("READY=1") or self._died(), timeout=60)
            assert self.proc.poll() is None, self.log()

    def _died(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"whisperd exited with {self.proc.returncode}:\n{self.log()}")
        return False

    def received(self, line: str) -> bool:
        self.drain()
        return any(line in m.splitlines() for m in self.messages)

    def drain(self) -> list[str]:
        while self.notify is not None:
            try:
                self.messages.append(self.notify.recv(65536).decode())
            except BlockingIOError:
                break
        return self.messages

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 30) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        return code

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.notify is not None:
            self.notify.close()
            self.notify = None

    def log(self) -> str:
        return (
            self.log_path.read_text(encoding="utf-8", errors="replace")
            if self.log_path.exists()
            else ""
        )

    def events(self, name: str) -> list[dict]:
        found = []
        for line in self.log().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("event") == name:
                found.append(record)
        return found

    def cli_command(self, *args: str) -> list[str]:
        """The argv of a ``whisperd`` command on this service's configuration."""
        return [sys.executable, "-m", "daemon", *args, "-c", str(self.config)]

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.cli_command(*args),
            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=120,
        )  # fmt: skip

    def status(self) -> dict:
        result = self.cli("status", "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def url(self, timeout: float = 30) -> str:
        """The status page's URL, as the running service recorded it (``http://host:port/``)."""
        return wait_for(lambda: self.status()["service_status"].get("status_page"), timeout)

    def reader(self):
        """The ledger, read-only: the state_dir's SQLite file, or the shared database."""
        from daemon.queue import open_ledger

        if self.dsn is not None:
            from daemon.queue.postgres import PgLedger

            return PgLedger(self.dsn, node="test-reader", readonly=True)
        return open_ledger(self.state, readonly=True)

    def jobs(self) -> list:
        """Each path's newest version, read straight from the ledger (read-only)."""
        from daemon.queue import FILENAME

        if self.dsn is None and not (self.state / FILENAME).exists():
            return []
        with self.reader() as ledger:
            return ledger.latest_per_path()

    def error_text(self, path: str) -> str:
        """The ``.error.txt`` of failed inbox file ``path`` in the outbox, once written: the
        failure is recorded in the ledger first, the file written a moment after."""
        error_file = self.outbox / f"{Path(path).with_suffix('').as_posix()}.error.txt"
        wait_for(error_file.is_file)
        return error_file.read_text(encoding="utf-8")

    def history(self, path: str | None = None) -> list:
        with self.reader() as ledger:
            return ledger.history(path)

    def states(self) -> dict[str, str]:
        return {job.path: job.state for job in self.jobs()}

    def all_settled(self, expected: int) -> bool:
        states = self.states()
        return len(states) >= expected and all(s in ("done", "failed") for s in states.values())
