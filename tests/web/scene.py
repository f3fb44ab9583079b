"""A real ledger in a real state_dir, filled through the ledger's own transitions, with the
clock set per step: what the status report, the listener and the page are tested on.

Folders (inbox-relative): ``es/`` (two waiting, one with a name that is not UTF-8; one
failed whose error names the inbox's absolute path; one done 20 minutes ago; one running),
``en/meetings/`` (a ``<script>`` and an ``<img onerror>`` name, a transient failure backing
off, one done 5 minutes ago), ``old/`` (done three days ago: a quiet folder) and the inbox
itself (``root.wav``, done a minute ago).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from daemon.config import Config, load_config
from daemon.queue import Ledger, RetryPolicy, open_ledger
from daemon.version import Fingerprint
from daemon.web import collect
from daemon.web.summary import midnight

# "/" cannot be in a file name, so this is file "script>.mp3" in folder "...<script>alert(1)<"
SCRIPT_NAME = "en/meetings/<script>alert(1)</script>.mp3"
IMG_NAME = "en/meetings/<img src=x onerror=alert(2)>.mp3"
LATIN1_NAME = os.fsdecode(b"es/caf\xe9 con leche.mp3")  # not UTF-8: surrogate-escaped
RUNNING_PATH = "es/entrevista larga.mp3"
FOREVER = RetryPolicy(max_attempts=1, backoff=60.0, backoff_max=60.0)
LATER = RetryPolicy(max_attempts=3, backoff=3600.0, backoff_max=3600.0)
TODAY_SPAN = 1200.0  # s: the oldest age in the scene that must still be today


class Scene:
    """The ledger of ``root``/var and a status provider over it (``provider(files)``)."""

    def __init__(self, root: Path, *, now: float | None = None) -> None:
        self.root = root
        self.now = time.time() if now is None else now
        # On the real clock every "today" of the scene lies after midnight: in the first
        # minutes of a day the ages shrink (in proportion, so their order holds), or "done
        # today" would be 0. A given ``now`` keeps the ages as they are.
        since = self.now - midnight(self.now)
        self._squeeze = 1.0 if now is not None else min(1.0, 0.9 * since / TODAY_SPAN)
        for name in ("inbox", "outbox"):
            (root / name).mkdir(parents=True, exist_ok=True)
        path = root / "whisperd.yaml"
        path.write_text(
            f"inbox: {root / 'inbox'}\noutbox: {root / 'outbox'}\nstate_dir: {root / 'var'}\n",
            encoding="utf-8",
        )
        self.cfg: Config = load_config(path)
        self.calls = 0
        self.fail_with: Exception | None = None
        self._lock = threading.Lock()
        self._n = 0
        with open_ledger(self.cfg.state_dir) as ledger:
            self._fill(ledger)

    def provider(self, files: bool = False) -> dict[str, Any]:
        """``collect()`` of the scene (counts calls; raises ``fail_with`` when set)."""
        with self._lock:
            self.calls += 1
        if self.fail_with is not None:
            raise self.fail_with
        return collect(self.cfg, 4242, files=files)

    def set_progress(self, fraction: float) -> None:
        """Move the running job on, as its worker would."""
        with open_ledger(self.cfg.state_dir) as ledger:
            [job] = ledger.running()
            ledger.set_progress(job.id, fraction)

    def _enqueue(self, ledger: Ledger, path: str, at: float) -> int:
        self._n += 1
        job = ledger.enqueue(path, Fingerprint(self._n, self._n, self._n), model="base",
                             settings_json="{}", now=at)  # fmt: skip
        assert job is not None
        return job.id

    def _ago(self, ago: float) -> float:
        return ago if ago > TODAY_SPAN else ago * self._squeeze

    def _done(self, ledger: Ledger, path: str, ago: float, audio: float, outputs: list[str]):
        at = self.now - self._ago(ago)
        self._enqueue(ledger, path, at - 120)
        job = ledger.claim("0:cpu", now=at - 100)
        assert job is not None and job.path == path
        ledger.complete(job.id, outputs=outputs, audio_seconds=audio,
                        processing_seconds=audio / 6, language="es", now=at)  # fmt: skip

    def _failed(self, ledger: Ledger, path: str, ago: float, error: str, policy: RetryPolicy):
        at = self.now - self._ago(ago)
        self._enqueue(ledger, path, at - 60)
        job = ledger.claim("0:cpu", now=at - 30)
        assert job is not None and job.path == path
        ledger.fail(job.id, error=error, transient=policy is LATER, policy=policy, now=at)

    def _fill(self, ledger: Ledger) -> None:
        inbox = self.cfg.inbox
        self._done(ledger, "old/archive.mp3", 3 * 86400, 60.0, ["old/archive.txt"])
        self._done(ledger, "es/ayer.mp3", 1200, 600.0, ["es/ayer.txt", "es/ayer.srt"])
        self._done(ledger, "en/meetings/standup.m4a", 300, 900.0, ["en/meetings/standup.txt"])
        self._done(ledger, "root.wav", 60, 30.0, ["root.txt"])
        self._failed(ledger, "es/ruido.wav", 600, f"cannot decode {inbox}/es/ruido.wav: "
                     "invalid data found (the file is damaged; replace it)", FOREVER)  # fmt: skip
        self._failed(ledger, SCRIPT_NAME, 500, "not an audio or video file", FOREVER)
        full = f"disk full while writing {self.cfg.outbox}/en/meetings/retro.txt"
        self._failed(ledger, "en/meetings/retro.m4a", 400, full, LATER)
        self._enqueue(ledger, RUNNING_PATH, self.now - 300)
        running = ledger.claim("0:cpu", now=self.now - 120)
        assert running is not None and running.path == RUNNING_PATH
        ledger.set_progress(running.id, 0.30, now=self.now)
        for ago, path in ((60, "es/hola.mp3"), (50, LATIN1_NAME), (20, IMG_NAME)):
            self._enqueue(ledger, path, self.now - ago)
