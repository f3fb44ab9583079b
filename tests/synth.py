"""Synthesise real media files with PyAV for tests (no ffmpeg binary needed).

Every helper writes a real file through PyAV's bundled FFmpeg and returns its path::

    make_audio(tmp_path / "a.mp3", seconds=2.0)             # 440 Hz sine, stereo, 44.1 kHz
    make_audio(tmp_path / "a.ogg", rate=48000, channels=1)  # codec picked from the suffix
    make_video(tmp_path / "v.mp4", with_audio=False)        # a video without any audio stream
    make_multi_audio(tmp_path / "m.mkv", freqs=(440, 1000), default=1)
    make_wav_header(tmp_path / "w.wav", claimed_seconds=60, actual_seconds=30)
    truncate(path, 0.5); damage(path, start=0.3, end=0.31)   # in place: a cut or scratched file

The container is picked from the suffix; the codec from :data:`AUDIO_CODECS` unless given.
Signals are sines (or white noise) so a test can tell streams apart by their frequency with
:func:`dominant_frequency`.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path

import av
import numpy as np

#: Default audio encoder per file suffix.
AUDIO_CODECS: dict[str, str] = {
    ".wav": "pcm_s16le",
    ".flac": "flac",
    ".mp3": "libmp3lame",
    ".m4a": "aac",
    ".aac": "aac",
    ".mp4": "aac",
    ".mov": "aac",
    ".mkv": "aac",
    ".mka": "libopus",
    ".ogg": "libopus",
    ".opus": "libopus",
    ".webm": "libopus",
}

#: Default video encoder per file suffix (cheap ones: these files only need to be valid).
VIDEO_CODECS: dict[str, str] = {
    ".mp4": "mpeg4",
    ".mov": "mpeg4",
    ".mkv": "mpeg4",
    ".webm": "libvpx",
}

#: Audio encoder used next to a video stream, per suffix.
VIDEO_AUDIO_CODECS: dict[str, str] = {
    ".mp4": "aac",
    ".mov": "aac",
    ".mkv": "aac",
    ".webm": "libopus",
}

_CHUNK_SECONDS = 1.0  # generate long files a second at a time, never all at once


def signal(
    seconds: float,
    rate: int,
    channels: int = 1,
    *,
    freq: float = 440.0,
    amplitude: float = 0.5,
    noise: bool = False,
    start: int = 0,
) -> np.ndarray:
    """Planar float32 samples of shape (channels, n): a sine at ``freq``, or white noise."""
    n = round(seconds * rate)
    if noise:
        rng = np.random.default_rng(start)
        mono = rng.uniform(-amplitude, amplitude, n)
    else:
        t = (np.arange(n) + start) / rate
        mono = amplitude * np.sin(2 * np.pi * freq * t)
    return np.ascontiguousarray(np.tile(mono.astype(np.float32), (channels, 1)))


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    """The strongest frequency (Hz) in a 1-D signal."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def _layout(channels: int) -> str:
    return {1: "mono", 2: "stereo"}.get(channels, f"{channels}c")


def _chunks(seconds: float, rate: int, channels: int, **kw: object) -> Iterator[av.AudioFrame]:
    """Planar float frames of at most a second each, with running pts."""
    total = round(seconds * rate)
    step = round(_CHUNK_SECONDS * rate)
    for start in range(0, total, step):
        n = min(step, total - start)
        data = signal(n / rate, rate, channels, start=start, **kw)  # type: ignore[arg-type]
        frame = av.AudioFrame.from_ndarray(data, format="fltp", layout=_layout(channels))
        frame.sample_rate = rate
        frame.pts = start
        yield frame


def _add_audio_stream(
    container: av.container.OutputContainer, codec: str, rate: int, channels: int
) -> av.audio.stream.AudioStream:
    info = av.codec.Codec(codec, "w")
    enc_rate = rate
    if info.audio_rates and rate not in info.audio_rates:
        enc_rate = 48000 if 48000 in info.audio_rates else info.audio_rates[0]
    stream = container.add_stream(codec, rate=enc_rate, layout=_layout(channels))
    formats = [f.name for f in info.audio_formats or []]
    if formats:
        stream.codec_context.format = formats[0]
    return stream


def _encoder(stream: av.audio.stream.AudioStream) -> av.AudioResampler:
    ctx = stream.codec_context
    return av.AudioResampler(
        format=ctx.format.name,
        layout=ctx.layout.name,
        rate=ctx.sample_rate,
        frame_size=ctx.frame_size or None,
    )


def _encode(
    container: av.container.OutputContainer,
    stream: av.audio.stream.AudioStream,
    resampler: av.AudioResampler,
    frame: av.AudioFrame | None,
) -> None:
    """Resample ``frame`` (None: flush) to what the encoder wants, encode and mux it."""
    for out in resampler.resample(frame):
        out.pts = None
        container.mux(stream.encode(out))
    if frame is None:
        container.mux(stream.encode(None))


def make_audio(
    path: str | os.PathLike[str],
    seconds: float = 1.0,
    rate: int = 44100,
    channels: int = 2,
    codec: str | None = None,
    *,
    freq: float = 440.0,
    amplitude: float = 0.5,
    noise: bool = False,
    muxer_options: dict[str, str] | None = None,
) -> Path:
    """Write an audio-only file (container from the suffix) holding a sine or noise.

    Encoders that do not support ``rate`` (Opus: 8/12/16/24/48 kHz) get 48 kHz.
    ``muxer_options`` go to FFmpeg's muxer, e.g. ``{"write_xing": "0"}`` for an MP3 without
    a Xing/Info header.
    """
    path = Path(path)
    codec = codec or AUDIO_CODECS[path.suffix.lower()]
    with av.open(str(path), "w", options=muxer_options or {}) as container:
        stream = _add_audio_stream(container, codec, rate, channels)
        resampler = _encoder(stream)
        for frame in _chunks(seconds, rate, channels, freq=freq, amplitude=amplitude, noise=noise):
            _encode(container, stream, resampler, frame)
        _encode(container, stream, resampler, None)
    return path


def make_video(
    path: str | os.PathLike[str],
    seconds: float = 1.0,
    with_audio: bool = True,
    *,
    rate: int = 44100,
    channels: int = 2,
    freq: float = 440.0,
    fps: int = 10,
    video_codec: str | None = None,
    audio_codec: str | None = None,
) -> Path:
    """Write a small video (64x48 gray frames), with a sine audio track unless told not to."""
    path = Path(path)
    suffix = path.suffix.lower()
    with av.open(str(path), "w") as container:
        video = container.add_stream(video_codec or VIDEO_CODECS[suffix], rate=fps)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = resampler = None
        if with_audio:
            audio = _add_audio_stream(
                container, audio_codec or VIDEO_AUDIO_CODECS[suffix], rate, channels
            )
            resampler = _encoder(audio)
        for i in range(round(seconds * fps)):
            image = np.full((48, 64, 3), i * 7 % 256, dtype=np.uint8)
            picture = av.VideoFrame.from_ndarray(image, format="rgb24")
            picture.pts = i
            container.mux(video.encode(picture))
        container.mux(video.encode(None))
        if audio is not None and resampler is not None:
            for frame in _chunks(seconds, rate, channels, freq=freq):
                _encode(container, audio, resampler, frame)
            _encode(container, audio, resampler, None)
    return path


def make_multi_audio(
    path: str | os.PathLike[str],
    freqs: Sequence[float] = (440.0, 1000.0),
    *,
    default: int | None = None,
    seconds: float = 1.0,
    rate: int = 48000,
    codec: str | None = None,
    languages: Sequence[str | None] | None = None,
) -> Path:
    """Write one mono audio stream per frequency; ``default`` marks that one as the default.

    With ``default=None`` no stream carries the default disposition.
    """
    path = Path(path)
    codec = codec or AUDIO_CODECS[path.suffix.lower()]
    with av.open(str(path), "w") as container:
        streams = []
        for i, _ in enumerate(freqs):
            stream = _add_audio_stream(container, codec, rate, 1)
            stream.disposition = (
                av.stream.Disposition.default if i == default else av.stream.Disposition(0)
            )
            if languages and languages[i]:
                stream.metadata["language"] = languages[i]
            streams.append((stream, _encoder(stream)))
        generators = [_chunks(seconds, rate, 1, freq=f) for f in freqs]
        for chunk in zip(*generators, strict=True):
            for (stream, resampler), frame in zip(streams, chunk, strict=True):
                _encode(container, stream, resampler, frame)
        for stream, resampler in streams:
            _encode(container, stream, resampler, None)
    return path


def make_wav_header(
    path: str | os.PathLike[str],
    *,
    claimed_seconds: float = 0.0,
    actual_seconds: float = 0.0,
    rate: int = 16000,
    channels: int = 1,
) -> Path:
    """Write a 16-bit PCM wav whose header claims ``claimed_seconds`` of data.

    ``actual_seconds`` of (sine) data follow the header: fewer than claimed makes a wav cut
    short, zero of both makes a valid wav with no samples.
    """
    claimed = round(claimed_seconds * rate) * channels * 2
    data = (signal(actual_seconds, rate, channels).T.reshape(-1) * 32767).astype("<i2").tobytes()
    header = b"RIFF" + struct.pack("<I", 36 + claimed) + b"WAVE"
    header += b"fmt " + struct.pack(
        "<IHHIIHH", 16, 1, channels, rate, rate * channels * 2, 2 * channels, 16
    )
    header += b"data" + struct.pack("<I", claimed)
    path = Path(path)
    path.write_bytes(header + data)
    return path


def truncate(path: str | os.PathLike[str], fraction: float = 0.5) -> Path:
    """Cut a file to ``fraction`` of its size, in place (a copy that stopped half-way)."""
    path = Path(path)
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.truncate(int(size * fraction))
    return path


def damage(
    path: str | os.PathLike[str], start: float = 0.25, end: float = 1.0, seed: int = 0
) -> Path:
    """Overwrite the bytes from ``start`` to ``end`` (fractions of the size) with random bytes."""
    path = Path(path)
    data = bytearray(path.read_bytes())
    lo, hi = int(len(data) * start), int(len(data) * end)
    data[lo:hi] = np.random.default_rng(seed).integers(0, 256, hi - lo, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path
