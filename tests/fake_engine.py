"""A fast engine behind the real Engine interface, for service tests.

The test suite registers it (:func:`install`) in its own process, or runs ``whisperd`` as
``python -m tests.e2e.fake_whisperd`` (which installs it, then runs the real CLI). Decoding
and writing stay real; only recognition is faked: the text names the language and the audio
length, so tests can check which settings and which file were used; given speech regions,
one segment per region. Environment knobs:

* ``WHISPERD_FAKE_DELAY``: seconds per job (default 0), slow enough to signal mid-job;
* ``WHISPERD_FAKE_CRASH_SECONDS``: a file of this many seconds of audio (±0.05) kills the
  whole process with SIGKILL, as an out-of-memory kill or a segfault in a decoder would;
* ``WHISPERD_FAKE_STUCK``: every job sleeps this many seconds without looking at the
  cancel event, as a step that cannot be cancelled (a model load, a long decode) does.
"""

from __future__ import annotations

import os
import signal
import threading
import time

from daemon import engines
from daemon.engines import Cancelled, ProgressCallback
from daemon.transcript import Segment, Transcript


class FakeEngine:
    name = "fake"

    def __init__(self, cache) -> None:
        self.cache = cache
        self.delay = float(os.environ.get("WHISPERD_FAKE_DELAY", "0"))
        crash = os.environ.get("WHISPERD_FAKE_CRASH_SECONDS")
        self.crash_seconds = float(crash) if crash else None
        self.stuck = float(os.environ.get("WHISPERD_FAKE_STUCK", "0"))

    def loaded_models(self) -> set[str]:
        return set()

    def close(self) -> None:
        pass

    def transcribe(
        self,
        audio,
        settings,
        *,
        speech=None,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> Transcript:
        if self.crash_seconds is not None and abs(audio.duration - self.crash_seconds) < 0.05:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.stuck:
            time.sleep(self.stuck)  # deaf to the cancel event, like a non-cancellable step
        deadline = time.monotonic() + self.delay
        while time.monotonic() < deadline:
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled")
            if progress is not None:
                progress(1 - (deadline - time.monotonic()) / self.delay)
            time.sleep(0.02)
        language = settings.language or "en"
        text = f"fake {language} transcript of {audio.duration:.2f} seconds"
        step = max(audio.duration / 2, 0.01)
        spans = [(i * step, min((i + 1) * step, audio.duration)) for i in range(2)]
        if speech is not None:  # like the real engines: text only where there is speech
            spans = list(speech)
        segments = tuple(
            Segment(id=i, start=start, end=end, text=f" {text} part {i}")
            for i, (start, end) in enumerate(spans)
        )
        return Transcript(
            text=text,
            language=language,
            language_probability=None,
            segments=segments,
            duration=audio.duration,
            model=settings.model,
            engine="openai-whisper",  # the fake stands in for the configured engine
        )


def install() -> None:
    """Make every engine name create the fake (in this process only)."""
    for name in engines.names():
        engines.register(name, FakeEngine)
