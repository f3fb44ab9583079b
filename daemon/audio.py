"""Decode any audio or video file to what Whisper eats: 16 kHz mono float32 samples.

:func:`decode` reads the file with PyAV (FFmpeg), picks one audio stream (the one marked
*default* in the container, else the first) and resamples it with swresample to 16 kHz mono
``float32``, mixed and clipped to [-1, 1] like ``whisper.audio.load_audio``'s s16 path
(same downmix gains; no 16-bit quantisation).
:func:`probe` describes a file cheaply without decoding it. Both raise only the typed
:mod:`daemon.errors` (never a raw PyAV/FFmpeg exception); each message names the file.

How bad input is classified:

* 0 bytes → :class:`EmptyMediaError`; decoded 0 samples (a wav header without data) →
  :class:`EmptyMediaError`, unless the header declared real audio (then corrupt, below).
* FFmpeg cannot open it and its first bytes are no known media signature, or it opens as
  an image / text "video" with no audio (a PNG, a .txt) → :class:`NotMediaError`.
* FFmpeg cannot open it but it starts like media (RIFF/WAVE, fLaC, OggS, ID3, EBML, an
  MP4 ``ftyp``…) → :class:`CorruptMediaError`; for MP4/MOV this is nearly always a file
  whose index (``moov``, written last) is missing: truncated or still being copied.
* A container with video but no audio stream → :class:`NoAudioStreamError`.
* Vanished, permission denied, I/O error (any ``OSError``) → :class:`SourceReadError`
  (transient: worth retrying).
* Any other FFmpeg error (or PyAV ValueError) → :class:`CorruptMediaError` with its message.

Truncation rule. Formats that decode partially (wav, flac, mp3, ogg, mkv/webm, mp4 with the
index in front) are checked against the duration their headers *declare*: if the decoded
audio is shorter than ``TRUNCATED_RATIO`` (90 %) of it *and* more than
``TRUNCATED_MIN_MISSING_S`` (1 s) is missing, the file is :class:`CorruptMediaError`
("truncated"). Only declarations that do not depend on the file size are trusted: the wav
``data`` chunk size (parsed here, because FFmpeg clamps it to the file size), FLAC
STREAMINFO, an MP3 Xing/Info/VBRI header, MP4/MOV track and Matroska durations, the Ogg
end granule; for other formats (raw AAC, MP3 without a VBR header: FFmpeg estimates these
from the bitrate) the check is skipped. The container duration stands in for the stream's
only when the chosen stream is the file's only stream (else video may be longer).

Damaged packets: like the ``ffmpeg`` CLI, a packet the decoder rejects is skipped and
counted (logged as a warning); more than ``MAX_BAD_PACKET_RATIO`` (5 %) of the stream's
packets rejected, or all of them, is :class:`CorruptMediaError`.

Thread safety: every call opens its own container and resampler; nothing is shared, so
decoding on a background thread while another thread transcribes is safe. Memory: decoded
chunks are collected in a list and concatenated once (peak ≈ 2 × the 64 kB/s output).
"""

from __future__ import annotations

import functools
import os
import stat
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import av
import av.error
import numpy as np
import structlog

from daemon.errors import (
    CorruptMediaError,
    EmptyMediaError,
    NoAudioStreamError,
    NotMediaError,
    SourceReadError,
)

log = structlog.get_logger(__name__)

SAMPLE_RATE = 16000
TRUNCATED_RATIO = 0.9
TRUNCATED_MIN_MISSING_S = 1.0
MAX_BAD_PACKET_RATIO = 0.05

# swresample normalises a downmix (stereo → mono = (L + R) / 2) only for integer output; for
# float it keeps 0.707 · (L + R), 3 dB louder than whisper's `ffmpeg -ac 1 -f s16le` and
# clipping loud stereo. rematrix_maxval=1 gives the same mix as whisper's s16 path.
_RESAMPLER_OPTIONS = {"rematrix_maxval": "1.0"}
# Formats whose declared stream/container duration does not come from a bitrate estimate.
_TRUSTED_DURATION_FORMATS = {"flac", "mp3", "ogg", "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"}
# Demuxers that "succeed" on files that are not audio or video (text, still images).
_NOT_AV_FORMATS = {"tty", "image2", "image2pipe"}
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"fLaC", "FLAC"),
    (0, b"OggS", "Ogg"),
    (0, b"ID3", "MP3"),
    (0, b"\x1a\x45\xdf\xa3", "Matroska/WebM"),
    (0, b"RF64", "WAV"),
    (0, b"#!AMR", "AMR"),
    (0, b"caff", "CAF"),
    (0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "ASF/WMA"),
    (4, b"ftyp", "MP4/MOV"),
    (4, b"moov", "MP4/MOV"),
    (4, b"mdat", "MP4/MOV"),
    (4, b"wide", "MP4/MOV"),
    (4, b"free", "MP4/MOV"),
)


@dataclass(frozen=True)
class Audio:
    """Decoded audio: ``samples`` is 1-D, contiguous float32 at 16 kHz mono in [-1, 1]."""

    samples: np.ndarray
    duration: float  # seconds: len(samples) / SAMPLE_RATE
    source_codec: str  # e.g. "mp3", "aac", "opus", "pcm_s16le"
    source_rate: int
    source_channels: int
    stream_index: int  # index of the decoded stream among all the container's streams


@dataclass(frozen=True)
class AudioStreamInfo:
    """One audio stream as the container describes it."""

    index: int  # index among all the container's streams (what ``decode(stream=...)`` takes)
    codec: str
    sample_rate: int
    channels: int
    language: str | None  # the container's language tag; None when absent or "und"
    default: bool  # carries the container's default disposition
    duration: float | None  # seconds, when the container states it


@dataclass(frozen=True)
class MediaInfo:
    """What :func:`probe` learns from a file's headers, without decoding."""

    path: str
    format_name: str  # FFmpeg's demuxer name, e.g. "wav", "mov,mp4,m4a,3gp,3g2,mj2"
    duration: float | None  # seconds, when known
    audio_streams: tuple[AudioStreamInfo, ...]
    has_video: bool  # a real video stream (cover art and still images do not count)

    @property
    def selected_stream(self) -> int | None:
        """The stream :func:`decode` picks by default: the default-disposition one, else first."""
        for s in self.audio_streams:
            if s.default:
                return s.index
        return self.audio_streams[0].index if self.audio_streams else None


def probe(path: str | os.PathLike[str]) -> MediaInfo:
    """Describe a media file from its headers; raises what :func:`decode` would at open.

    A file without any audio stream raises :class:`NoAudioStreamError` (or
    :class:`NotMediaError` when it is not audio or video at all), so probe is a cheap gate.
    """
    name = os.fspath(path)
    with _errors_mapped(name), _open(name) as container:
        info = _describe(container, name)
    _require_audio(info)
    return info


def decode(path: str | os.PathLike[str], *, stream: int | None = None) -> Audio:
    """Decode one audio stream of ``path`` to 16 kHz mono float32.

    ``stream`` is a container stream index (see :attr:`AudioStreamInfo.index`); by default
    the default-disposition audio stream, else the first audio stream.
    """
    name = os.fspath(path)
    started = time.monotonic()
    with _errors_mapped(name), _open(name) as container:
        info = _describe(container, name)
        _require_audio(info)
        chosen = _choose(info, stream)
        av_stream = container.streams[chosen.index]
        samples, packets, bad, last_error = _decode_stream(container, av_stream)
        declared = _declared_seconds(name, container, av_stream)
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


# --- opening and error mapping -------------------------------------------------------------


@functools.cache
def _quiet_ffmpeg() -> None:
    """Keep FFmpeg off stderr: we report errors ourselves (PyAV >= 13 starts with it off)."""
    if av.logging.get_level() is not None:
        av.logging.set_level(av.logging.PANIC)


@contextmanager
def _errors_mapped(name: str) -> Iterator[None]:
    """Turn PyAV/FFmpeg exceptions into the typed errors; ours pass through."""
    try:
        yield
    except OSError as err:  # av.error.FileNotFoundError etc. are OSErrors too
        raise _read_error(name, err) from err
    except (av.error.FFmpegError, ValueError) as err:  # PyAV raises ValueError on odd frames
        raise CorruptMediaError(
            f"{name}: cannot decode: {_ffmpeg_message(err)}",
            hint="the file is damaged; re-export or re-copy it",
        ) from err


@contextmanager
def _open(name: str) -> Iterator[av.container.InputContainer]:
    _quiet_ffmpeg()
    try:
        st = os.stat(name)
    except OSError as err:
        raise _read_error(name, err) from err
    if not stat.S_ISREG(st.st_mode):  # a directory, FIFO or device: reading could block
        raise NotMediaError(f"{name}: not a regular file", hint="only media files are decoded")
    if st.st_size == 0:
        raise EmptyMediaError(
            f"{name}: the file is empty (0 bytes)",
            hint="if it is still being copied, wait until the copy has finished",
        )
    try:
        container = av.open(name, metadata_errors="replace")
    except OSError as err:
        raise _read_error(name, err) from err
    except av.error.FFmpegError as err:
        raise _unopenable(name, err) from err
    try:
        yield container
    finally:
        container.close()


def _read_error(name: str, err: OSError) -> SourceReadError | NotMediaError:
    if isinstance(err, IsADirectoryError):
        return NotMediaError(f"{name}: is a directory, not a media file")
    if isinstance(err, FileNotFoundError):
        what = "the file vanished (no such file)"
    elif isinstance(err, PermissionError):
        what = "permission denied"
    else:
        what = f"read error: {err.strerror or err}"
    return SourceReadError(
        f"{name}: cannot read: {what}",
        hint="may work later; check the file's permissions and the storage it is on",
    )


def _unopenable(name: str, err: av.error.FFmpegError) -> NotMediaError | CorruptMediaError:
    """FFmpeg could not open the file: not media at all, or media that is damaged."""
    kind = _sniff(name)
    if kind is None:
        return NotMediaError(
            f"{name}: not an audio or video file ({_ffmpeg_message(err)})",
            hint="remove it from the inbox",
        )
    if kind == "MP4/MOV":
        return CorruptMediaError(
            f"{name}: the MP4/MOV file looks truncated or incomplete: its index (moov) is "
            "missing or unreadable",
            hint="maybe it is still being copied or the recording was not finished; "
            "copy it again once complete",
        )
    return CorruptMediaError(
        f"{name}: looks like {kind} but cannot be opened: {_ffmpeg_message(err)}",
        hint="the file is damaged or truncated; re-export or re-copy it",
    )


def _sniff(name: str) -> str | None:
    """The media kind the first bytes announce, or None (text, images, random bytes)."""
    try:
        with open(name, "rb") as f:
            head = f.read(16)
    except OSError:
        return None
    if head[:4] == b"RIFF" and head[8:12] in (b"WAVE", b"AVI "):
        return "WAV" if head[8:12] == b"WAVE" else "AVI"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "AIFF"
    for offset, magic, kind in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return kind
    return None


def _ffmpeg_message(err: Exception) -> str:
    """FFmpeg's own words ("Invalid data found when processing input"), without errno noise."""
    return str(getattr(err, "strerror", None) or err)


# --- streams ----------------------------------------------------------------------------


def _describe(container: av.container.InputContainer, name: str) -> MediaInfo:
    fmt = container.format.name
    audio = tuple(_stream_info(s) for s in container.streams.audio)
    has_video = (
        fmt not in _NOT_AV_FORMATS
        and not fmt.endswith("_pipe")
        and any(
            not (s.disposition & av.stream.Disposition.attached_pic)
            for s in container.streams.video
        )
    )
    duration = container.duration / av.time_base if container.duration else None
    return MediaInfo(name, fmt, duration, audio, has_video)


def _stream_info(s: av.audio.stream.AudioStream) -> AudioStreamInfo:
    language = s.metadata.get("language") or None
    return AudioStreamInfo(
        index=s.index,
        codec=s.codec_context.codec.canonical_name,
        sample_rate=s.codec_context.sample_rate,
        channels=s.codec_context.channels,
        language=None if language == "und" else language,
        default=bool(s.disposition & av.stream.Disposition.default),
        duration=_stream_seconds(s),
    )


def _stream_seconds(s: av.stream.Stream) -> float | None:
    """The stream's own duration: its header field, else Matroska's DURATION tag."""
    if s.duration and s.time_base:
        return float(s.duration * s.time_base)
    tag = s.metadata.get("DURATION")  # "HH:MM:SS.nnnnnnnnn"
    if tag:
        try:
            h, m, sec = tag.split(":")
            return int(h) * 3600 + int(m) * 60 + float(sec)
        except ValueError:
            return None
    return None


def _require_audio(info: MediaInfo) -> None:
    if info.audio_streams:
        return
    if info.has_video:
        raise NoAudioStreamError(
            f"{info.path}: no audio stream (video only); nothing to transcribe",
            hint="check that the export kept the sound track",
        )
    raise NotMediaError(
        f"{info.path}: not an audio or video file (FFmpeg reads it as '{info.format_name}' "
        "without any audio or video stream)",
        hint="remove it from the inbox",
    )


def _choose(info: MediaInfo, stream: int | None) -> AudioStreamInfo:
    if stream is None:
        stream = info.selected_stream
    for s in info.audio_streams:
        if s.index == stream:
            return s
    available = ", ".join(str(s.index) for s in info.audio_streams)
    raise NoAudioStreamError(
        f"{info.path}: stream {stream} is not an audio stream (audio streams: {available})",
        hint="pick one of the listed stream indexes",
    )


# --- decoding ------------------------------------------------------------------------------


def _decode_stream(
    container: av.container.InputContainer, stream: av.audio.stream.AudioStream
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
        try:
            frames = packet.decode()
        except av.error.FFmpegError as err:
            if isinstance(err, OSError):
                raise
            bad += 1
            last_error = _ffmpeg_message(err)
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
                f"{_ffmpeg_message(err)}",
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


# --- declared durations --------------------------------------------------------------------


def _declared_seconds(
    name: str, container: av.container.InputContainer, stream: av.audio.stream.AudioStream
) -> float | None:
    """The audio duration the headers promise, when it does not come from the file size."""
    fmt = container.format.name
    if fmt == "wav":
        return _wav_data_seconds(name)
    if fmt not in _TRUSTED_DURATION_FORMATS:
        return None
    if fmt == "mp3" and not _mp3_has_vbr_header(name):
        return None
    seconds = _stream_seconds(stream)
    if seconds is None and len(container.streams) == 1 and container.duration:
        seconds = container.duration / av.time_base
    return seconds


def _wav_data_seconds(name: str) -> float | None:
    """Seconds the RIFF ``data`` chunk size announces (FFmpeg clamps it to the file size)."""
    with open(name, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        byte_rate = 0
        for _ in range(64):  # a wav has a handful of chunks; bound the walk anyway
            chunk = f.read(8)
            if len(chunk) < 8:
                return None
            cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"fmt ":
                fmt = f.read(size + (size & 1))
                if len(fmt) < 12:
                    return None
                byte_rate = struct.unpack("<I", fmt[8:12])[0]
            elif cid == b"data":
                # 0 and 0xFFFFFFFF mean "unknown" (a streamed wav): nothing declared.
                if not byte_rate or size in (0, 0xFFFFFFFF):
                    return None
                return size / byte_rate
            else:
                f.seek(size + (size & 1), os.SEEK_CUR)
    return None


def _mp3_has_vbr_header(name: str) -> bool:
    """Whether the first MP3 frame carries a Xing/Info/VBRI header (an exact frame count)."""
    with open(name, "rb") as f:
        head = f.read(10)
        offset = 0
        if head[:3] == b"ID3" and len(head) == 10:
            size = 0
            for byte in head[6:10]:  # syncsafe integer: 7 bits per byte
                size = (size << 7) | (byte & 0x7F)
            offset = 10 + size + (10 if head[5] & 0x10 else 0)
        f.seek(offset)
        frame = f.read(4096)
    start = frame.find(b"\xff")
    window = frame[max(start, 0) : max(start, 0) + 200]
    return any(tag in window for tag in (b"Xing", b"Info", b"VBRI"))
