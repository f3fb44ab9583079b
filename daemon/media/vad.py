"""Where a file's audio holds speech: Silero VAD on the decoded 16 kHz samples.

:func:`detect_speech` gives sorted, disjoint ``(start, end)`` seconds, padded so that no
word onset or tail is clipped (never past the middle of a pause, so padding alone never
joins two regions). The engines then transcribe only those regions
(:mod:`daemon.engines.speech`), the guard compares words with them, and the cues snap to
them; the JSON stores them, so outputs can be rendered again without the audio.

The model is the JIT one inside the ``silero-vad`` wheel (torch only, offline), loaded once
per process on first use and shared under one lock: it keeps recurrent state between
calls. It runs frame by frame (32 ms), on one intra-op thread: on a busy CPU, torch's
thread pool costs 20-40 times more than the work of such small steps (measured: 0.4 ms a
frame on one thread, 9-24 ms on two, on a loaded 2-core machine). The setting is
process-wide; it is restored after each file.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import structlog

from daemon.config import VadSettings
from daemon.errors import SpeechDetectionError

log = structlog.get_logger(__name__)

RATE = 16000
Region = tuple[float, float]
TICK_PERCENT = 2.0  # call tick every this many percent of the file

_model: Any = None
_lock = threading.Lock()  # loading AND every use: the JIT model is stateful


def _load() -> Any:
    """The Silero JIT model (once per process; the caller holds the lock)."""
    global _model
    if _model is None:
        try:
            from silero_vad import load_silero_vad

            with warnings.catch_warnings():  # importlib.resources.path, torch.jit.load
                warnings.simplefilter("ignore", DeprecationWarning)
                _model = load_silero_vad(onnx=False)
        except ImportError:
            raise SpeechDetectionError(
                "speech detection (vad.enabled) needs the silero-vad package",
                hint="pip install silero-vad, or set vad: {enabled: false}",
            ) from None
        except (OSError, RuntimeError) as err:
            raise SpeechDetectionError(f"the Silero VAD model cannot be loaded ({err})") from None
        log.debug("speech detection model loaded", model="silero-vad jit")
    return _model


def detect_speech(
    samples: np.ndarray, settings: VadSettings, *, tick: Callable[[], None] | None = None
) -> tuple[Region, ...]:
    """Speech regions of 16 kHz mono float32 ``samples``; ``()`` when nobody speaks.

    ``tick`` is called every few percent of the file (the worker's heartbeat); an exception
    it raises (a cancelled job) stops detection.
    """
    import torch
    from silero_vad import get_speech_timestamps

    audio = np.ascontiguousarray(np.asarray(samples, dtype=np.float32).reshape(-1))
    if len(audio) < 512:  # shorter than one Silero frame
        return ()
    progress = {"next": TICK_PERCENT}

    def tracked(percent: float) -> None:
        if tick is not None and percent >= progress["next"]:
            progress["next"] = percent + TICK_PERCENT
            tick()

    with _lock:
        model = _load()
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.inference_mode():
                stamps = get_speech_timestamps(
                    torch.from_numpy(audio),
                    model,
                    threshold=settings.threshold,
                    neg_threshold=settings.neg_threshold,
                    sampling_rate=RATE,
                    min_speech_duration_ms=settings.min_speech_ms,
                    max_speech_duration_s=settings.max_speech_s,
                    min_silence_duration_ms=settings.min_silence_ms,
                    speech_pad_ms=0,  # padded below: symmetric, clamped, never joining regions
                    progress_tracking_callback=tracked,
                )
        finally:
            torch.set_num_threads(threads)
    raw = [(s["start"] / RATE, s["end"] / RATE) for s in stamps]
    return pad(raw, len(audio) / RATE, settings.speech_pad_ms / 1000)


def pad(regions: Sequence[Region], duration: float, padding: float) -> tuple[Region, ...]:
    """Sorted ``regions``, each widened by ``padding`` within [0, duration] and at most
    half-way into the pause to its neighbour; overlapping ones are joined first."""
    merged: list[list[float]] = []
    for start, end in sorted(regions):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        elif end > start:
            merged.append([start, end])
    out: list[Region] = []
    for k, (start, end) in enumerate(merged):
        before = (merged[k - 1][1] + start) / 2 if k else 0.0
        after = (end + merged[k + 1][0]) / 2 if k + 1 < len(merged) else duration
        out.append((round(max(start - padding, before), 3), round(min(end + padding, after), 3)))
    return tuple(out)


def speech_seconds(regions: Sequence[Region]) -> float:
    """Total length of ``regions`` in seconds."""
    return sum(end - start for start, end in regions)
