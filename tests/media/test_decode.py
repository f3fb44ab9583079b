"""Decoding real files written with PyAV: round trips, real speech, long files and threads."""

from __future__ import annotations

import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np
import pytest

from daemon.media import SAMPLE_RATE, decode
from tests.media.support import (
    AUDIO_SUFFIXES,
    SPEECH,
    VIDEO_SUFFIXES,
    assert_whisper_ready,
    needs_speech,
    rms,
)
from tests.synth import (
    dominant_frequency,
    make_audio,
    make_video,
)

# --- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", AUDIO_SUFFIXES)
def test_every_audio_container_round_trips(tmp_path: Path, suffix: str) -> None:
    path = make_audio(tmp_path / f"tone{suffix}", seconds=2.0, rate=44100, channels=2, freq=440)
    audio = decode(path)
    assert_whisper_ready(audio)
    assert audio.duration == pytest.approx(2.0, abs=0.06)  # AAC/Opus pad up to one frame
    assert dominant_frequency(audio.samples, SAMPLE_RATE) == pytest.approx(440, abs=3)
    # Identical channels downmix to the same sine: amplitude 0.5 → RMS 0.354, not 3 dB louder.
    assert rms(audio.samples[1600:-1600]) == pytest.approx(0.5 / np.sqrt(2), rel=0.05)
    assert audio.source_channels == 2
    assert audio.source_rate == (48000 if suffix in {".ogg", ".opus", ".webm", ".mka"} else 44100)
    assert audio.stream_index == 0


@pytest.mark.parametrize("suffix", VIDEO_SUFFIXES)
def test_audio_track_of_a_video_is_decoded(tmp_path: Path, suffix: str) -> None:
    path = make_video(tmp_path / f"clip{suffix}", seconds=2.0, freq=660)
    audio = decode(path)
    assert_whisper_ready(audio)
    assert audio.stream_index == 1  # stream 0 is the video
    assert audio.duration == pytest.approx(2.0, abs=0.06)
    assert dominant_frequency(audio.samples, SAMPLE_RATE) == pytest.approx(660, abs=3)


@pytest.mark.parametrize(
    ("rate", "channels", "freq"),
    [(8000, 1, 300), (22050, 1, 1000), (48000, 2, 2000), (96000, 6, 500)],
)
def test_any_rate_and_layout_becomes_16k_mono(
    tmp_path: Path, rate: int, channels: int, freq: float
) -> None:
    path = make_audio(tmp_path / "x.wav", seconds=1.5, rate=rate, channels=channels, freq=freq)
    audio = decode(path)
    assert_whisper_ready(audio)
    assert len(audio.samples) == pytest.approx(1.5 * SAMPLE_RATE, abs=2)
    assert (audio.source_rate, audio.source_channels) == (rate, channels)
    assert dominant_frequency(audio.samples, SAMPLE_RATE) == pytest.approx(freq, abs=3)


def test_full_scale_stereo_is_not_clipped_by_the_downmix(tmp_path: Path) -> None:
    """whisper's ffmpeg s16 path mixes (L + R) / 2; a float downmix must not add 3 dB."""
    path = make_audio(tmp_path / "loud.flac", seconds=1.0, channels=2, amplitude=0.95)
    audio = decode(path)
    assert float(np.abs(audio.samples).max()) == pytest.approx(0.95, abs=0.02)


def test_noise_round_trips_in_range(tmp_path: Path) -> None:
    path = make_audio(tmp_path / "noise.mp3", seconds=1.0, noise=True, amplitude=1.0)
    audio = decode(path)
    assert_whisper_ready(audio)
    assert rms(audio.samples) > 0.1


# --- real speech -------------------------------------------------------------------------


def _whisper_reference(path: Path) -> np.ndarray:
    """What whisper.audio.load_audio returns (ffmpeg -ac 1 -ar 16000 -f s16le), via PyAV."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    with av.open(str(path)) as container:
        frames = [f for frame in container.decode(audio=0) for f in resampler.resample(frame)]
    frames += resampler.resample(None)
    return np.concatenate([f.to_ndarray().reshape(-1) for f in frames]) / 32768.0


def _numpy_reference(path: Path) -> np.ndarray:
    """An independent reference: mean of the channels, FFT resampled to 16 kHz."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        resampler = av.AudioResampler(format="dblp", layout=stream.codec_context.layout)
        planes = [
            f.to_ndarray() for frame in container.decode(stream) for f in resampler.resample(frame)
        ]
    mono = np.concatenate(planes, axis=1).mean(axis=0)
    n = round(len(mono) * SAMPLE_RATE / rate)
    return np.fft.irfft(np.fft.rfft(mono)[: n // 2 + 1], n) * n / len(mono)


@needs_speech
@pytest.mark.parametrize(
    ("clip", "seconds", "rate", "channels"),
    [
        ("openai_whisper/jfk.flac", 11.0, 44100, 2),
        ("librispeech/1272-128104-0004-8k.wav", 29.4, 8000, 1),
        ("fleurs_en/fleurs-en-001.ogg", 8.76, 48000, 1),
    ],
)
def test_real_speech_matches_whisper_semantics(
    clip: str, seconds: float, rate: int, channels: int
) -> None:
    path = SPEECH / clip
    audio = decode(path)
    assert_whisper_ready(audio)
    assert abs(len(audio.samples) - seconds * SAMPLE_RATE) <= 160  # one 10 ms Whisper frame
    assert (audio.source_rate, audio.source_channels) == (rate, channels)
    assert 0.02 < rms(audio.samples) < 0.5
    whisper = _whisper_reference(path)
    assert len(whisper) == len(audio.samples)
    assert np.abs(whisper - audio.samples).max() < 3 / 32768  # only s16 rounding differs
    independent = _numpy_reference(path)
    k = min(len(independent), len(audio.samples))
    assert np.corrcoef(independent[:k], audio.samples[:k])[0, 1] > 0.999
    assert rms(audio.samples) == pytest.approx(rms(independent), rel=0.02)


# --- long files and threads ---------------------------------------------------------------


def test_ten_minutes_decode_with_bounded_memory(tmp_path: Path) -> None:
    path = make_audio(tmp_path / "long.flac", seconds=600, rate=44100, channels=2)
    tracemalloc.start()
    try:
        started = time.monotonic()
        audio = decode(path)
        took = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(audio.samples) == 600 * SAMPLE_RATE
    # Chunks + one concatenation: about twice the output, no per-frame regrowth or float64 copy.
    assert peak < 2.5 * audio.samples.nbytes
    assert took < 60, f"decoding 10 minutes took {took:.1f} s"


def test_decoding_in_threads_gives_the_same_samples(tmp_path: Path) -> None:
    paths = [
        make_audio(tmp_path / "a.flac", seconds=3.0, freq=300),
        make_audio(tmp_path / "b.mp3", seconds=3.0, freq=500),
        make_audio(tmp_path / "c.ogg", seconds=3.0, freq=700),
        make_video(tmp_path / "d.mp4", seconds=3.0, freq=900),
    ]
    expected = [decode(p).samples for p in paths]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda p: decode(p).samples, paths * 3))
    for i, samples in enumerate(results):
        np.testing.assert_array_equal(samples, expected[i % len(paths)])
