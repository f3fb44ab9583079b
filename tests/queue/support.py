"""Helpers shared by the tests of this folder (split from test_ledger.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from daemon.queue import Ledger
from daemon.version import Fingerprint

REPO = Path(__file__).resolve().parents[2]


SETTINGS = '{"language": null}'


FP1 = Fingerprint(size=100, mtime_ns=1_000, inode=7)


FP2 = Fingerprint(size=120, mtime_ns=2_000, inode=7)


def add(led: Ledger, path: str, fp: Fingerprint = FP1, *, model: str = "small", now: float = 0):
    job = led.enqueue(path, fp, model=model, settings_json=SETTINGS, now=now)
    assert job is not None
    return job


def run_python(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# A read-only reader in another process: counts, queue depth, and whether a write is refused.
READ_COUNTS = """
    import json, sys, time
    from pathlib import Path
    import structlog
    from daemon.errors import LedgerError
    from daemon.queue import Ledger
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    start = time.monotonic()
    with Ledger(Path(sys.argv[1]), readonly=True) as led:
        counts, depth = led.counts(), led.queue_depth(now=100)
        try:
            led.retry(now=1)
            refused = False
        except LedgerError:
            refused = True
    print(json.dumps({"counts": counts, "depth": depth, "refused": refused,
                      "seconds": time.monotonic() - start}))
"""
