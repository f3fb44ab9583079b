"""Helpers shared by the tests of this folder (split from test_decode.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from daemon.media import SAMPLE_RATE, Audio

SPEECH = Path(__file__).resolve().parents[3] / "shared" / "speech"


needs_speech = pytest.mark.skipif(
    not SPEECH.is_dir(), reason=f"shared speech clips not found at {SPEECH}"
)


AUDIO_SUFFIXES = [".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".opus", ".webm", ".mkv"]


AUDIO_SUFFIXES += [".mka", ".mp4", ".mov"]


VIDEO_SUFFIXES = [".mp4", ".mov", ".mkv", ".webm"]


def assert_whisper_ready(audio: Audio) -> None:
    """What the engine relies on: 1-D contiguous float32 at 16 kHz in [-1, 1]."""
    s = audio.samples
    assert s.dtype == np.float32
    assert s.ndim == 1
    assert s.flags["C_CONTIGUOUS"]
    assert audio.duration == len(s) / SAMPLE_RATE
    assert float(s.min()) >= -1.0 and float(s.max()) <= 1.0
    assert np.isfinite(s).all()


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
