"""What a media file holds, from its headers, and how opening it fails.

:func:`probe` describes a file cheaply without decoding it (format, duration, audio streams
with codec, language and default flag, whether it has real video). Opening is shared with
:mod:`daemon.media.decode`: every PyAV/FFmpeg failure becomes one of the typed
:mod:`daemon.errors` (never a raw exception); each message names the file.

How bad input is classified:

* 0 bytes → :class:`EmptyMediaError`.
* FFmpeg cannot open it and its first bytes are no known media signature, or it opens as
  an image / text "video" with no audio (a PNG, a .txt) → :class:`NotMediaError`.
* FFmpeg cannot open it but it starts like media (RIFF/WAVE, fLaC, OggS, ID3, EBML, an
  MP4 ``ftyp``…) → :class:`CorruptMediaError`; for MP4/MOV this is nearly always a file
  whose index (``moov``, written last) is missing: truncated or still being copied.
* A container with video but no audio stream → :class:`NoAudioStreamError`.
* Vanished, permission denied, I/O error (any ``OSError``) → :class:`SourceReadError`
  (transient: worth retrying).
* Any other FFmpeg error (or PyAV ValueError) → :class:`CorruptMediaError` with its message.

Declared durations (:func:`declared_seconds`), for the decoder's truncation check: only
declarations that do not depend on the file size are trusted: the wav ``data`` chunk size
(parsed here, because FFmpeg clamps it to the file size), FLAC STREAMINFO, an MP3
Xing/Info/VBRI header, MP4/MOV track and Matroska durations, the Ogg end granule; for other
formats (raw AAC, MP3 without a VBR header: FFmpeg estimates these from the bitrate) none.
The container duration stands in for the stream's only when the chosen stream is the
file's only stream (else video may be longer).
"""

from __future__ import annotations

import functools
import os
import stat
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import av
import av.error

from daemon.errors import (
    CorruptMediaError,
    EmptyMediaError,
    NoAudioStreamError,
    NotMediaError,
    SourceReadError,
)

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
class AudioStreamInfo:
    """One audio stream as the container describes it."""

    index: int  # index among all the container's streams (what ``decode(stream=...)`` takes)
    codec: str
    sample_rate: int
    channels: int
    language: str | None  # the container's language tag; None when absent or "und"
    default: bool  # carries the container's default disposition
    duration: float | None  # seconds, when the container states it
    title: str | None = None  # the stream's title tag


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
    with errors_mapped(name), open_container(name) as container:
        info = describe(container, name)
    require_audio(info)
    return info


# --- opening and error mapping -------------------------------------------------------------


@functools.cache
def quiet_ffmpeg() -> None:
    """Keep FFmpeg off stderr: we report errors ourselves (PyAV >= 13 starts with it off)."""
    if av.logging.get_level() is not None:
        av.logging.set_level(av.logging.PANIC)


@contextmanager
def errors_mapped(name: str) -> Iterator[None]:
    """Turn PyAV/FFmpeg exceptions into the typed errors; ours pass through."""
    try:
        yield
    except OSError as err:  # av.error.FileNotFoundError etc. are OSErrors too
        raise read_error(name, err) from err
    except (av.error.FFmpegError, ValueError) as err:  # PyAV raises ValueError on odd frames
        raise CorruptMediaError(
            f"{name}: cannot decode: {ffmpeg_message(err)}",
            hint="the file is damaged; re-export or re-copy it",
        ) from err


@contextmanager
def open_container(name: str) -> Iterator[av.container.InputContainer]:
    quiet_ffmpeg()
    try:
        st = os.stat(name)
    except OSError as err:
        raise read_error(name, err) from err
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
        raise read_error(name, err) from err
    except av.error.FFmpegError as err:
        raise unopenable(name, err) from err
    try:
        yield container
    finally:
        container.close()


def read_error(name: str, err: OSError) -> SourceReadError | NotMediaError:
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


def unopenable(name: str, err: av.error.FFmpegError) -> NotMediaError | CorruptMediaError:
    """FFmpeg could not open the file: not media at all, or media that is damaged."""
    kind = sniff(name)
    if kind is None:
        return NotMediaError(
            f"{name}: not an audio or video file ({ffmpeg_message(err)})",
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
        f"{name}: looks like {kind} but cannot be opened: {ffmpeg_message(err)}",
        hint="the file is damaged or truncated; re-export or re-copy it",
    )


def sniff(name: str) -> str | None:
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


def ffmpeg_message(err: Exception) -> str:
    """FFmpeg's own words ("Invalid data found when processing input"), without errno noise."""
    return str(getattr(err, "strerror", None) or err)


# --- streams ----------------------------------------------------------------------------


def describe(container: av.container.InputContainer, name: str) -> MediaInfo:
    fmt = container.format.name
    audio = tuple(stream_info(s) for s in container.streams.audio)
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


def stream_info(s: av.audio.stream.AudioStream) -> AudioStreamInfo:
    language = s.metadata.get("language") or None
    return AudioStreamInfo(
        index=s.index,
        codec=s.codec_context.codec.canonical_name,
        sample_rate=s.codec_context.sample_rate,
        channels=s.codec_context.channels,
        language=None if language == "und" else language,
        default=bool(s.disposition & av.stream.Disposition.default),
        duration=stream_seconds(s),
        title=(s.metadata.get("title") or "").strip() or None,
    )


def stream_seconds(s: av.stream.Stream) -> float | None:
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


def require_audio(info: MediaInfo) -> None:
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


def choose(info: MediaInfo, stream: int | None) -> AudioStreamInfo:
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


# --- declared durations --------------------------------------------------------------------


def declared_seconds(
    name: str, container: av.container.InputContainer, stream: av.audio.stream.AudioStream
) -> float | None:
    """The audio duration the headers promise, when it does not come from the file size."""
    fmt = container.format.name
    if fmt == "wav":
        return wav_data_seconds(name)
    if fmt not in _TRUSTED_DURATION_FORMATS:
        return None
    if fmt == "mp3" and not mp3_has_vbr_header(name):
        return None
    seconds = stream_seconds(stream)
    if seconds is None and len(container.streams) == 1 and container.duration:
        seconds = container.duration / av.time_base
    return seconds


def wav_data_seconds(name: str) -> float | None:
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


def mp3_has_vbr_header(name: str) -> bool:
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
