"""What a chaos run acts on: the service with its chaos settings, an outbox that can fill up.

:class:`ChaosService` is the harness's ``whisperd run`` subprocess (tests/e2e/service_harness.py)
with the outbox on a filesystem of its own and the job settings of a chaos plan;
:class:`OutboxFs` mounts that filesystem (a small tmpfs, as root), fills it to ENOSPC and
frees it. Used by tests/e2e/chaos_driver.py.
"""

from __future__ import annotations

import errno
import json
import subprocess
import time
from pathlib import Path

from tests.e2e.service_harness import ROOT, Service


class OutboxFs:
    """The outbox on a small tmpfs of its own, so that "disk full" is real (needs root)."""

    def __init__(self, mount: Path, size_mb: int) -> None:
        self.mount, self.size_mb = mount, size_mb
        self.outbox, self.filler = mount / "outbox", mount / "filler.bin"
        self.mounted = False
        self.skip_reason: str | None = None  # why there is no tmpfs (disk full not tested)

    def setup(self) -> None:
        """Mount the tmpfs (or note why not) and create the outbox in it."""
        self.mount.mkdir(parents=True, exist_ok=True)
        try:
            result = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m", "tmpfs", str(self.mount)],
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as err:
            self.skip_reason = f"mount -t tmpfs failed: {err}"
        else:
            if result.returncode == 0:
                self.mounted = True
            else:
                self.skip_reason = f"mount -t tmpfs failed: {result.stderr.strip()}"
        self.outbox.mkdir(parents=True, exist_ok=True)

    def fill(self) -> int:
        """Write the filler until the filesystem refuses (ENOSPC); the bytes written."""
        if not self.mounted:
            return 0
        written = 0
        with open(self.filler, "ab", buffering=0) as fh:  # unbuffered: nothing left to flush
            for chunk in (1 << 20, 1 << 12, 1 << 9):
                try:
                    while True:
                        written += fh.write(b"\0" * chunk) or 0
                except OSError as err:
                    if err.errno != errno.ENOSPC:
                        raise
        return written

    def free(self) -> None:
        """Delete the filler: the outbox has room again."""
        self.filler.unlink(missing_ok=True)

    def teardown(self) -> None:
        """Unmount (lazily if something still holds it)."""
        if self.mounted:
            result = subprocess.run(["umount", str(self.mount)], capture_output=True, timeout=30)
            if result.returncode != 0:
                subprocess.run(["umount", "-l", str(self.mount)], capture_output=True, timeout=30)
            self.mounted = False


class ChaosService(Service):
    """The harness's service with the outbox elsewhere and a chaos plan's job settings."""

    def __init__(self, root: Path, outbox: Path, settings: dict, *, fake: bool,
                 model: str, fake_delay: float, defaults: dict | None = None) -> None:  # fmt: skip
        self.chaos_outbox, self.chaos_jobs = outbox, settings
        self.chaos_defaults = {"model": model, "language": "en", **(defaults or {})}
        self.started_wall = 0.0  # time.time() of the latest start
        env = {"WHISPERD_FAKE_DELAY": str(fake_delay)} if fake else {}
        super().__init__(root, fake=fake, env=env)
        self.outbox = outbox

    def write_config(
        self, extra: str = "", jobs: dict | None = None, defaults: dict | None = None
    ) -> None:
        """The chaos config: quick watch and retry settings, the plan's jobs section."""
        settings = {"retry_backoff": 0.2, "retry_backoff_max": 1.0, **self.chaos_jobs,
                    **(jobs or {})}  # fmt: skip
        chosen = {**self.base_defaults(), **self.chaos_defaults, **(defaults or {})}
        self.config.write_text(
            f"inbox: {self.inbox}\noutbox: {self.chaos_outbox}\nstate_dir: {self.state}\n"
            f"model_dir: {ROOT / 'models'}\n"
            f"defaults: {json.dumps(chosen)}\n"
            "watch: {stable_seconds: 0.3, poll_interval: 0.1, rescan_interval: 2}\n"
            f"jobs: {json.dumps(settings)}\n" + extra,
            encoding="utf-8",
        )

    def rows(self) -> list | None:
        """Every ledger row, or None when the ledger cannot be read right now."""
        from daemon.queue import FILENAME

        if not (self.state / FILENAME).exists():
            return []
        try:
            return self.history()
        except Exception:
            return None

    def running(self) -> bool:
        """The process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def ready(self) -> bool:
        """The current process has sent READY=1 (messages are cleared at each start)."""
        return self.received("READY=1")

    def restart(self) -> None:
        """Start a new process without waiting for READY (kills may land in start-up)."""
        self.messages.clear()
        self.started_wall = time.time()
        self.start(wait_ready=False)

    def mine(self, row) -> bool:
        """A running row claimed by the current process (not one left by a killed one)."""
        return row.state == "running" and (row.started_at or 0) >= self.started_wall
