"""Decode any audio or video file to what Whisper eats: 16 kHz mono float32 samples.

:func:`decode` reads the file with PyAV (FFmpeg), picks one audio stream (the one marked
*default* in the container, else the first) and resamples it with swresample to 16 kHz mono
``float32``, mixed and clipped to [-1, 1] like ``whisper.audio.load_audio``'s s16 path
(same downmix gains; no 16-bit quantisation). Opening and the classification of bad input
are in :mod:`daemon.media.probe`; decoded 0 samples (a wav header without data) is
:class:`EmptyMediaError`, unless the header declared real audio (then corrupt).

Truncation rule. Formats that decode partially (wav, flac, mp3, ogg, mkv/webm, mp4 with the
index in front) are checked against the duration their headers *declare*
(:func:`daemon.media.probe.declared_seconds`): if the decoded audio is shorter than
``TRUNCATED_RATIO`` (90 %) of it *and* more than ``TRUNCATED_MIN_MISSING_S`` (1 s) is
missing, the file is :class:`CorruptMediaError` ("truncated").

Damaged packets: like the ``ffmpeg`` CLI, a packet the decoder rejects is skipped and
counted (logged as a warning); more than ``MAX_BAD_PACKET_RATIO`` (5 %) of the stream's
packets rejected, or all of them, is :class:`CorruptMediaError`.

Thread safety: every call opens its own container and resampler; nothing is shared, so
decoding on a background thread while another thread transcribes is safe. Memory: decoded
chunks are collected in a list and concatenated once (peak ≈ 2 × the 64 kB/s output).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import av
import av.error
import numpy as np
import structlog

from daemon.errors import CorruptMediaError, EmptyMediaError
from daemon.media.probe import (
    choose,
    declared_seconds,
    describe,
    errors_mapped,
    ffmpeg_message,
    open_container,
    require_audio,
)

log = structlog.get_logger(__name__)

SAMPLE_RATE = 16000
TRUNCATED_RATIO = 0.9
TRUNCATED_MIN_MISSING_S = 1.0
MAX_BAD_PACKET_RATIO = 0.05
TICK_EVERY = 500  # packets between two calls of decode's tick (about 10 s of most codecs)

# swresample normalises a downmix (stereo → mono = (L + R) / 2) only for integer output; for
# float it keeps 0.707 · (L + R), 3 dB louder than whisper's `ffmpeg -ac 1 -f s16le` and
# clipping loud stereo. rematrix_maxval=1 gives the same mix as whisper's s16 path.
_RESAMPLER_OPTIONS = {"rematrix_maxval": "1.0"}


@dataclass(frozen=True)
class Audio:
    """Decoded audio: ``samples`` is 1-D, contiguous float32 at 16 kHz mono in [-1, 1]."""

    samples: np.ndarray
    duration: float  # seconds: len(samples) / SAMPLE_RATE
    source_codec: str  # e.g. "mp3", "aac", "opus", "pcm_s16le"
    source_rate: int
    source_channels: int
    stream_index: int  # index of the decoded stream among all the container's streams


def decode(
    path: str | os.PathLike[str],
    *,
    stream: int | None = None,
    tick: Callable[[], None] | None = None,
) -> Audio:
    """Decode one audio stream of ``path`` to 16 kHz mono float32.

    ``stream`` is a container stream index (see :attr:`AudioStreamInfo.index`); by default
    the default-disposition audio stream, else the first audio stream. ``tick`` is called
    every few hundred packets: a sign of life while a long file decodes.
    """
    name = os.fspath(path)
    started = time.monotonic()
    with errors_mapped(name), open_container(name) as container:
        info = describe(container, name)
        require_audio(info)
        chosen = choose(info, stream)
        av_stream = container.streams[chosen.index]
        samples, packets, bad, last_error = _decode_stream(container, av_stream, tick)
        declared = declared_seconds(name, container, av_stream)
    duration = len(samples) / SAMPLE_RATE
    _check_result(name, duration, declared, packets, bad, last_error)
    if bad:
        log.warning("audio.damaged_packets", path=name, bad=bad, packets=packets, error=last_error)
    log.debug(
        "audio.decoded",
        path=name,
        codec=chosen.codec,
        stream=chosen.index,
        seconds=round(duration, 3),
        took=round(time.monotonic() - started, 3),
    )
    return Audio(
        samples=samples,
        duration=duration,
        source_codec=chosen.codec,
        source_rate=chosen.sample_rate,
        source_channels=chosen.channels,
        stream_index=chosen.index,
    )


# --- decoding ------------------------------------------------------------------------------


def _decode_stream(
    container: av.container.InputContainer,
    stream: av.audio.stream.AudioStream,
    tick: Callable[[], None] | None = None,
) -> tuple[np.ndarray, int, int, str | None]:
    """Samples of one stream at 16 kHz mono, packets seen, packets rejected, last error."""
    chunks: list[np.ndarray] = []
    resampler: av.AudioResampler | None = None
    source: tuple[str, str, int] | None = None
    packets = bad = 0
    last_error: str | None = None
    for packet in _demux(container, stream, chunks):
        if packet.size:
            packets += 1
            if tick is not None and packets % TICK_EVERY == 0:
                tick()
        try:
            frames = packet.decode()
        except av.error.FFmpegError as err:
            if isinstance(err, OSError):
                raise
            bad += 1
            last_error = ffmpeg_message(err)
            continue
        for frame in frames:
            # A stream may change rate or layout midway; swresample needs a new setup then.
            key = (frame.format.name, frame.layout.name, frame.sample_rate)
            if key != source:
                if resampler is not None:
                    chunks.extend(_mono(f) for f in resampler.resample(None))
                resampler = av.AudioResampler(
                    format="flt", layout="mono", rate=SAMPLE_RATE, options=_RESAMPLER_OPTIONS
                )
                source = key
            chunks.extend(_mono(f) for f in resampler.resample(frame))
    if resampler is not None:
        chunks.extend(_mono(f) for f in resampler.resample(None))
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    np.clip(samples, -1.0, 1.0, out=samples)
    return np.ascontiguousarray(samples, dtype=np.float32), packets, bad, last_error


def _demux(
    container: av.container.InputContainer,
    stream: av.audio.stream.AudioStream,
    chunks: list[np.ndarray],
) -> Iterator[av.Packet]:
    """The stream's packets; a demuxer error midway says how far decoding got."""
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.error.FFmpegError as err:
            if isinstance(err, OSError):
                raise
            seconds = sum(len(c) for c in chunks) / SAMPLE_RATE
            raise CorruptMediaError(
                f"{container.name}: damaged data after {seconds:.1f} s of audio: "
                f"{ffmpeg_message(err)}",
                hint="re-export or re-copy it",
            ) from err
        yield packet


def _mono(frame: av.AudioFrame) -> np.ndarray:
    return frame.to_ndarray().reshape(-1)  # packed flt mono: shape (1, n); a copy


def _check_result(
    name: str,
    duration: float,
    declared: float | None,
    packets: int,
    bad: int,
    last_error: str | None,
) -> None:
    """Raise if what was decoded is not the whole, undamaged audio (see module docstring)."""
    if duration == 0:
        if bad:
            raise CorruptMediaError(
                f"{name}: none of its {packets} audio packets could be decoded: {last_error}",
                hint="the file is damaged; re-export or re-copy it",
            )
        if declared:
            raise CorruptMediaError(
                f"{name}: declares {declared:.1f} s of audio but none could be decoded",
                hint="the file is damaged or truncated; re-export or re-copy it",
            )
        raise EmptyMediaError(
            f"{name}: holds no audio samples (0 s of audio)", hint="nothing to transcribe"
        )
    if (
        declared is not None
        and duration < TRUNCATED_RATIO * declared
        and declared - duration > TRUNCATED_MIN_MISSING_S
    ):
        raise CorruptMediaError(
            f"{name}: truncated{' or damaged' if bad else ''}: declared {declared:.1f} s but "
            f"only {duration:.1f} s of audio could be decoded",
            hint="maybe it is still being copied, or it is damaged; copy it again once complete",
        )
    if bad > MAX_BAD_PACKET_RATIO * packets:
        raise CorruptMediaError(
            f"{name}: damaged: {bad} of {packets} audio packets could not be decoded: {last_error}",
            hint="re-export or re-copy it",
        )
