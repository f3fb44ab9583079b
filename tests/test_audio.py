"""daemon.audio: real files written with PyAV, decoded with PyAV; no mocks."""

from __future__ import annotations

import os
import time
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np
import pytest

from daemon.audio import SAMPLE_RATE, Audio, decode, probe
from daemon.errors import (
    CorruptMediaError,
    EmptyMediaError,
    MediaError,
    NoAudioStreamError,
    NotMediaError,
    SourceReadError,
    WhisperdError,
)
from tests.media import (
    damage,
    dominant_frequency,
    make_audio,
    make_multi_audio,
    make_video,
    make_wav_header,
    truncate,
)

SPEECH = Path(__file__).resolve().parents[2] / "shared" / "speech"
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


# --- stream choice and probe ------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_default_audio_stream_is_picked(tmp_path: Path, suffix: str) -> None:
    path = make_multi_audio(tmp_path / f"two{suffix}", freqs=(440, 1000), default=1)
    audio = decode(path)
    assert audio.stream_index == 1
    assert dominant_frequency(audio.samples, SAMPLE_RATE) == pytest.approx(1000, abs=3)


@pytest.mark.parametrize("suffix", [".mkv", ".ogg"])
def test_first_audio_stream_without_default(tmp_path: Path, suffix: str) -> None:
    path = make_multi_audio(tmp_path / f"two{suffix}", freqs=(440, 1000), default=None)
    assert probe(path).selected_stream == 0
    audio = decode(path)
    assert audio.stream_index == 0
    assert dominant_frequency(audio.samples, SAMPLE_RATE) == pytest.approx(440, abs=3)


def test_explicit_stream_overrides_default(tmp_path: Path) -> None:
    path = make_multi_audio(tmp_path / "two.mkv", freqs=(440, 1000), default=1)
    audio = decode(path, stream=0)
    assert audio.stream_index == 0
    assert dominant_frequency(audio.samples, SAMPLE_RATE) == pytest.approx(440, abs=3)


@pytest.mark.parametrize("stream", [0, 7])  # 0 is the video stream
def test_explicit_stream_must_be_audio(tmp_path: Path, stream: int) -> None:
    path = make_video(tmp_path / "clip.mkv", seconds=1.0)
    with pytest.raises(NoAudioStreamError) as err:
        decode(path, stream=stream)
    assert f"stream {stream} is not an audio stream (audio streams: 1)" in str(err.value)


def test_probe_describes_streams_without_decoding(tmp_path: Path) -> None:
    path = make_multi_audio(
        tmp_path / "langs.mkv", freqs=(440, 1000), default=1, languages=("eng", "spa")
    )
    info = probe(path)
    assert info.path == str(path)
    assert info.format_name == "matroska,webm"
    assert info.has_video is False
    assert info.duration == pytest.approx(1.0, abs=0.06)
    assert [(s.index, s.codec, s.language, s.default) for s in info.audio_streams] == [
        (0, "aac", "eng", False),
        (1, "aac", "spa", True),
    ]
    assert info.audio_streams[0].sample_rate == 48000
    assert info.audio_streams[0].channels == 1
    assert info.selected_stream == 1


def test_probe_of_video_reports_video_and_audio(tmp_path: Path) -> None:
    info = probe(make_video(tmp_path / "clip.mp4", seconds=2.0))
    assert info.has_video is True
    assert [(s.index, s.codec, s.sample_rate, s.channels) for s in info.audio_streams] == [
        (1, "aac", 44100, 2)
    ]
    assert info.duration == pytest.approx(2.0, abs=0.06)
    assert info.audio_streams[0].language is None  # "und" is no language


def test_probe_of_mp3_has_no_video(tmp_path: Path) -> None:
    info = probe(make_audio(tmp_path / "a.mp3", seconds=1.0))
    assert (info.format_name, info.has_video, info.audio_streams[0].codec) == ("mp3", False, "mp3")


# --- bad input: one typed error per case --------------------------------------------------------


def _write(name: str, data: bytes) -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        path = tmp / name
        path.write_bytes(data)
        return path

    return build


def _truncated(name: str, seconds: float = 4.0, **kw: object) -> Callable[[Path], Path]:
    return lambda tmp: truncate(make_audio(tmp / name, seconds=seconds, **kw))  # type: ignore[arg-type]


def _garbage_after(name: str, start: float = 0.1, seconds: float = 4.0) -> Callable[[Path], Path]:
    return lambda tmp: damage(make_audio(tmp / name, seconds=seconds), start=start, end=1.0)


_RANDOM = np.random.default_rng(7).integers(0, 256, 20000, dtype=np.uint8).tobytes()

BAD_INPUT = {
    "empty": (_write("empty.wav", b""), EmptyMediaError, "the file is empty (0 bytes)"),
    "text": (_write("notes.txt", b"hello world\n" * 50), NotMediaError, "not an audio or video"),
    "text without suffix": (_write("notes", b"hi\n" * 50), NotMediaError, "not an audio or video"),
    "random bytes": (_write("noise.mp3", _RANDOM), NotMediaError, "not an audio or video"),
    "pdf": (_write("doc.pdf", b"%PDF-1.4\n" + _RANDOM), NotMediaError, "not an audio or video"),
    "png": (_write("img.png", b"\x89PNG\r\n\x1a\n" + _RANDOM), NotMediaError, "png_pipe"),
    "png named wav": (_write("img.wav", b"\x89PNG\r\n\x1a\n" + _RANDOM), NotMediaError, "png"),
    "video only mp4": (
        lambda tmp: make_video(tmp / "silent.mp4", with_audio=False),
        NoAudioStreamError,
        "no audio stream (video only); nothing to transcribe",
    ),
    "video only webm": (
        lambda tmp: make_video(tmp / "silent.webm", with_audio=False),
        NoAudioStreamError,
        "no audio stream (video only)",
    ),
    "wav header without samples": (
        lambda tmp: make_wav_header(tmp / "hollow.wav"),
        EmptyMediaError,
        "no audio samples",
    ),
    "wav header claims more": (
        lambda tmp: make_wav_header(tmp / "short.wav", claimed_seconds=60, actual_seconds=30),
        CorruptMediaError,
        "truncated: declared 60.0 s but only 30.0 s of audio could be decoded",
    ),
    "truncated wav": (_truncated("cut.wav"), CorruptMediaError, "truncated: declared 4.0 s"),
    "truncated flac": (_truncated("cut.flac"), CorruptMediaError, "declared 4.0 s but only 1."),
    "truncated mp3": (_truncated("cut.mp3"), CorruptMediaError, "truncated: declared 4.0 s"),
    "truncated webm": (_truncated("cut.webm"), CorruptMediaError, "truncated: declared 4.0 s"),
    "truncated mkv": (_truncated("cut.mkv"), CorruptMediaError, "truncated: declared 4.0 s"),
    "truncated mp4": (_truncated("cut.mp4"), CorruptMediaError, "looks truncated or incomplete"),
    "truncated m4a": (_truncated("cut.m4a"), CorruptMediaError, "looks truncated or incomplete"),
    "truncated mov": (_truncated("cut.mov"), CorruptMediaError, "looks truncated or incomplete"),
    "truncated video mkv": (
        lambda tmp: truncate(make_video(tmp / "cut.mkv", seconds=4.0)),
        CorruptMediaError,
        "truncated: declared 4.0 s",
    ),
    "flac header then garbage": (
        _garbage_after("junk.flac"),
        CorruptMediaError,
        "declares 4.0 s of audio but none could be decoded",
    ),
    "flac half garbage": (
        _garbage_after("junk.flac", start=0.5),
        CorruptMediaError,
        "truncated or damaged: declared 4.0 s",
    ),
    "ogg header then garbage": (
        _garbage_after("junk.ogg"),
        CorruptMediaError,
        "looks like Ogg but cannot be opened",
    ),
    "ogg garbage midway": (
        _garbage_after("junk.ogg", seconds=20.0),
        CorruptMediaError,
        "damaged data after 1.0 s of audio",
    ),
    "mp3 without length header, damaged": (
        lambda tmp: damage(
            make_audio(tmp / "junk.mp3", seconds=4.0, muxer_options={"write_xing": "0"}),
            start=0.1,
        ),
        CorruptMediaError,
        "audio packets could not be decoded",
    ),
    "mp4 header cut short": (
        lambda tmp: truncate(make_audio(tmp / "stub.mp4", seconds=1.0), 0.002),
        CorruptMediaError,
        "MP4/MOV",
    ),
    "wav header cut short": (
        _write("stub.wav", b"RIFF\x00\x10\x00\x00WAVEfmt "),
        CorruptMediaError,
        "WAV",
    ),
    "missing": (lambda tmp: tmp / "gone.wav", SourceReadError, "the file vanished"),
    "directory": (lambda tmp: tmp, NotMediaError, "not a regular file"),
}


@pytest.mark.parametrize(("build", "error", "fragment"), BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_raises_typed_error(
    tmp_path: Path,
    build: Callable[[Path], Path],
    error: type[WhisperdError],
    fragment: str,
) -> None:
    path = build(tmp_path)
    with pytest.raises(error) as caught:
        decode(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert fragment in message
    assert caught.value.hint  # every error says what to do
    assert type(caught.value).__module__ == "daemon.errors"


@pytest.mark.parametrize(
    "case",
    ["empty", "random bytes", "png", "video only mp4", "truncated mp4", "missing", "directory"],
)
def test_probe_raises_the_same_errors_as_decode(tmp_path: Path, case: str) -> None:
    build, error, fragment = BAD_INPUT[case]
    with pytest.raises(
        error,
    ) as caught:
        probe(build(tmp_path))
    assert fragment in str(caught.value)


def test_read_errors_are_transient_media_errors_are_not(tmp_path: Path) -> None:
    with pytest.raises(SourceReadError) as gone:
        decode(tmp_path / "gone.flac")
    assert gone.value.transient is True
    with pytest.raises(MediaError) as empty:
        decode(_write("empty.flac", b"")(tmp_path))
    assert empty.value.transient is False


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_denied_is_a_read_error(tmp_path: Path) -> None:
    path = make_audio(tmp_path / "locked.wav")
    path.chmod(0)
    try:
        with pytest.raises(SourceReadError, match="permission denied"):
            decode(path)
    finally:
        path.chmod(0o644)


def test_isolated_damage_is_skipped_like_ffmpeg_does(tmp_path: Path) -> None:
    """One damaged frame in a long file costs that frame, not the whole transcript."""
    path = damage(make_audio(tmp_path / "scratch.mp3", seconds=4.0), start=0.3, end=0.31)
    audio = decode(path)
    assert_whisper_ready(audio)
    assert audio.duration == pytest.approx(4.0, abs=0.2)


def test_ffmpeg_writes_nothing_to_stderr(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    broken = truncate(make_audio(tmp_path / "cut.mp4", seconds=2.0))
    scratched = damage(make_audio(tmp_path / "scratch.mp3", seconds=2.0), 0.3, 0.31)
    with pytest.raises(CorruptMediaError):
        decode(broken)
    decode(scratched)
    assert capfd.readouterr().err == ""


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
