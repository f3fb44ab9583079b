"""Probing and bad input: stream choice, and one typed error per kind of bad file."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from daemon.errors import (
    CorruptMediaError,
    EmptyMediaError,
    MediaError,
    NoAudioStreamError,
    NotMediaError,
    SourceReadError,
    WhisperdError,
)
from daemon.media import SAMPLE_RATE, decode, probe
from tests.media.support import assert_whisper_ready
from tests.synth import (
    damage,
    dominant_frequency,
    make_audio,
    make_multi_audio,
    make_video,
    make_wav_header,
    truncate,
)

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
