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

The playback clock: players show time from the start of the earliest audio or video stream
(cover art aside), FFmpeg's container start. A track that starts later (a non-zero start,
an MP4 edit list, which the demuxer applies, a Matroska track whose first block comes
later) has its first sample ``Audio.offset`` seconds after that zero: measured from the
first decoded frame, so codec priming that the decoder plays is counted where the player
plays it. Cue times computed from the samples must be moved by it (the pipeline does).
Holes in a track's timestamps (longer than ``GAP_TOLERANCE``, up to ``GAP_MAX``) are filled
with the silence a player plays there, so cues after a hole stay on time.

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
GAP_TOLERANCE = 0.1  # seconds: smaller timestamp jitter is no hole
GAP_MAX = 600.0  # seconds: a longer jump is a broken timestamp, not silence to insert

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
    offset: float = 0.0  # seconds from playback 0:00 to the first sample (see the docstring)
    gap_seconds: float = 0.0  # silence inserted for holes in the timestamps
    language: str | None = None  # the stream's language tag, as stored
    title: str | None = None  # the stream's title tag


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
        clock = _Clock()
        samples, packets, bad, last_error = _decode_stream(container, av_stream, tick, clock)
        declared = declared_seconds(name, container, av_stream)
        zero = playback_zero(container, clock.first)
    duration = len(samples) / SAMPLE_RATE
    # A declared duration counts from the container's 0 (Matroska's DURATION tag of a track
    # that starts 2 s in says 2 s more than its samples): compare where the audio ends.
    ends = duration + max(0.0, clock.first or 0.0) if duration else 0.0
    _check_result(name, ends, declared, packets, bad, last_error)
    if bad:
        log.warning("audio.damaged_packets", path=name, bad=bad, packets=packets, error=last_error)
    if clock.gaps:
        log.info("audio.gaps_filled", path=name, gaps=clock.gaps,
                 seconds=round(clock.gap_seconds, 3))  # fmt: skip
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
        offset=max(0.0, clock.first - zero) if clock.first is not None else 0.0,
        gap_seconds=clock.gap_seconds,
        language=chosen.language,
        title=chosen.title,
    )


class _Clock:
    """Where the decoded frames sit in container time: the first one, and holes between."""

    def __init__(self) -> None:
        self.first: float | None = None  # container time of the first decoded sample
        self.expected: float | None = None  # right after the last decoded frame
        self.gaps = 0
        self.gap_seconds = 0.0

    def hole(self, frame: av.AudioFrame) -> float:
        """Seconds of silence a player plays before ``frame`` (0 when none)."""
        if frame.pts is None or frame.time_base is None:
            return 0.0
        start = float(frame.pts * frame.time_base)
        if self.first is None:
            self.first = start
        hole = start - self.expected if self.expected is not None else 0.0
        self.expected = start + frame.samples / frame.sample_rate
        if GAP_TOLERANCE < hole <= GAP_MAX:
            self.gaps += 1
            self.gap_seconds += hole
            return hole
        return 0.0


def playback_zero(container: av.container.InputContainer, first: float | None) -> float:
    """Container time shown as 0:00: the earliest start of the audio and real video streams."""
    pictures = av.stream.Disposition.attached_pic | av.stream.Disposition.still_image
    starts = [
        float(s.start_time * s.time_base)
        for s in container.streams
        if s.start_time is not None and s.time_base is not None
        and (s.type == "audio" or (s.type == "video" and not s.disposition & pictures))
    ]  # fmt: skip
    if first is not None:
        starts.append(first)
    return min(starts) if starts else 0.0


# --- decoding ------------------------------------------------------------------------------


def _decode_stream(
    container: av.container.InputContainer,
    stream: av.audio.stream.AudioStream,
    tick: Callable[[], None] | None = None,
    clock: _Clock | None = None,
) -> tuple[np.ndarray, int, int, str | None]:
    """Samples of one stream at 16 kHz mono, packets seen, packets rejected, last error."""
    clock = clock or _Clock()
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
            hole = clock.hole(frame)
            if hole:
                chunks.append(np.zeros(round(hole * SAMPLE_RATE), dtype=np.float32))
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
