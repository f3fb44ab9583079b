"""Progress, cancellation and the watchdog heartbeat with the real openai-whisper engine.

The fake engine reports progress and honours cancel by itself; these tests prove that the
real openai-whisper, transcribing a two-minute file with the real tiny.en model, does too:
openai-whisper's own progress reaches ``whisperd status`` and STATUS=, the worker's
heartbeat keeps systemd's watchdog fed for longer than the stall limit, and SIGTERM aborts
the job within ``stop_timeout`` and puts it back in the queue without counting an attempt.
"""

from __future__ import annotations

import time
import wave
from pathlib import Path

import numpy as np
import pytest

from daemon.media import decode
from tests.e2e.service_harness import Service, wait_for
from tests.speech import clips

pytestmark = pytest.mark.real_model


def long_recording(path: Path, seconds: float) -> float:
    """English speech clips one after another, with short pauses: a WAV of ``seconds``+."""
    pieces, total = [], 0.0
    pause = np.zeros(8000, dtype=np.float32)
    while total < seconds:
        for clip in clips("en"):
            pieces += [decode(clip.path).samples, pause]
            total += clip.duration + 0.5
            if total >= seconds:
                break
    samples = np.concatenate(pieces)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes((samples * 32767).astype("<i2").tobytes())
    return len(samples) / 16000


@pytest.fixture
def service(tmp_path: Path, model_dir: Path):
    svc = Service(tmp_path, fake=False)
    yield svc
    svc.close()


def progress_of(service: Service, rel: str) -> float:
    running = [j for j in service.status()["running"] if j["path"] == rel]
    return running[0]["progress"] if running else 0.0


def test_progress_heartbeat_and_abort_with_the_real_engine(service: Service) -> None:
    # A stall limit of 8 s: far above one 30 s window of tiny.en here (2-4 s), far below
    # the job (minutes). Before the fix the heartbeat stopped at the claim: pings stopped
    # 8 s into the job and never came back.
    service.write_config(jobs={"stop_timeout": 2, "stall_timeout": 8})
    long_recording(service.inbox / "long.wav", seconds=300)
    service.start(env={"WATCHDOG_USEC": "1000000"})  # a ping is due every 0.5 s
    wait_for(lambda: service.states().get("long.wav") == "running", timeout=60)
    # openai-whisper's own progress reaches the ledger (status) and STATUS=.
    wait_for(lambda: progress_of(service, "long.wav") > 0, timeout=120)
    wait_for(lambda: any("running: long.wav (" in m and "(0%)" not in m
                         for m in service.drain()), timeout=30)  # fmt: skip
    # The heartbeat keeps the watchdog fed for twice the stall limit while the job runs.
    service.messages.clear()
    window_start = time.monotonic()
    gaps, last = [], time.monotonic()
    while time.monotonic() - window_start < 16:  # observe: pings must keep coming
        if any("WATCHDOG=1" in m.splitlines() for m in service.drain()):
            gaps.append(time.monotonic() - last)
            last = time.monotonic()
        service.messages.clear()
        time.sleep(0.05)
    assert service.states()["long.wav"] == "running", "the job ended too soon to tell"
    assert len(gaps) >= 16 and max(gaps) < 8, f"{len(gaps)} pings, longest gap {max(gaps):.1f} s"
    # SIGTERM: the engine is cancelled between windows; the job goes back to the queue.
    started = time.monotonic()
    assert service.stop(timeout=60) == 0
    assert time.monotonic() - started < 2 + 8  # stop_timeout, then one window at most
    job = service.jobs()[0]
    assert (job.state, job.attempts, job.crashes) == ("queued", 0, 0)
    assert service.events("job_requeued")
