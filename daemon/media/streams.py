"""What a video's streams say: its subtitle streams and their languages, and which audio
track to transcribe when the preferred language is known.

* :func:`inspect` opens the file once and describes its audio tracks and subtitle streams
  (language tags read as Whisper codes, titles, dispositions): what the skip decision and
  the track choice need, from the headers only.
* :func:`pick_audio` chooses a track: the first whose language tag matches the
  preferences, in preference order (among several of one language: not a commentary or
  audio-description track first, then the default one, then the lowest index); else the
  default-disposition track; else the first.

Where the chosen track sits on the playback clock is measured while decoding it
(:mod:`daemon.media.decode`). Errors are the typed ones of :mod:`daemon.media.probe`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import av

from daemon.config.languages import parse_language
from daemon.media.probe import describe, errors_mapped, open_container, require_audio

_D = av.stream.Disposition
_SIDE_TRACKS = _D.comment | _D.visual_impaired | _D.descriptions | _D.karaoke


@dataclass(frozen=True)
class Track:
    """One audio track: its index among all streams, its language and what kind it is."""

    index: int
    language: str | None  # Whisper code of the tag; None when untagged, "und" or unknown
    tag: str | None  # the tag as stored ("eng", "en-US")
    title: str | None
    default: bool
    side: bool  # commentary, audio description, karaoke: not the main sound track


@dataclass(frozen=True)
class SubtitleStream:
    """One embedded subtitle stream."""

    index: int
    language: str | None  # Whisper code; None when untagged, "und" or unknown
    tag: str | None
    codec: str  # FFmpeg's name: "subrip", "ass", "hdmv_pgs_subtitle", "mov_text", ...
    title: str | None
    forced: bool  # foreign parts only: does not subtitle the whole video


@dataclass(frozen=True)
class Streams:
    """The audio tracks and subtitle streams of one file, in container order."""

    path: str
    tracks: tuple[Track, ...]
    subtitles: tuple[SubtitleStream, ...]


@dataclass(frozen=True)
class Choice:
    """The track chosen for transcription, and why."""

    track: Track
    reason: str  # "language 'en' (preference 1)", "default track", "first track"


def _tag(stream: av.stream.Stream) -> str | None:
    value = (stream.metadata.get("language") or "").strip()
    return value or None


def _title(stream: av.stream.Stream) -> str | None:
    value = (stream.metadata.get("title") or stream.metadata.get("handler_name") or "").strip()
    return value if value and value not in ("SoundHandler", "SubtitleHandler") else None


def _track(s: av.stream.Stream) -> Track:
    title = _title(s)
    side = bool(s.disposition & _SIDE_TRACKS) or "commentary" in (title or "").lower()
    return Track(s.index, parse_language(_tag(s)), _tag(s), title,
                 bool(s.disposition & _D.default), side)  # fmt: skip


def _subtitle(s: av.stream.Stream) -> SubtitleStream:
    codec = s.codec_context.name if s.codec_context else "unknown"
    return SubtitleStream(s.index, parse_language(_tag(s)), _tag(s), codec, _title(s),
                          bool(s.disposition & _D.forced))  # fmt: skip


def inspect(path: str | os.PathLike[str]) -> Streams:
    """The audio tracks and subtitle streams of ``path``; raises like :func:`probe.probe`
    (a file without audio: :class:`~daemon.errors.NoAudioStreamError`)."""
    name = os.fspath(path)
    with errors_mapped(name), open_container(name) as container:
        require_audio(describe(container, name))
        tracks = tuple(_track(s) for s in container.streams if s.type == "audio")
        subtitles = tuple(_subtitle(s) for s in container.streams if s.type == "subtitle")
    return Streams(name, tracks, subtitles)


def _rank(track: Track) -> tuple[bool, bool, int]:
    """Among tracks of one language: main tracks, then the default one, then by index."""
    return (track.side, not track.default, track.index)


def pick_audio(streams: Streams, preferences: Sequence[str]) -> Choice:
    """The track to transcribe (see the module docstring); ``preferences`` are Whisper
    codes, or any form :func:`~daemon.config.languages.parse_language` reads."""
    for position, preference in enumerate(preferences, start=1):
        code = parse_language(preference)
        matches = [t for t in streams.tracks if code and t.language == code]
        if matches:
            return Choice(min(matches, key=_rank), f"language {code!r} (preference {position})")
    defaults = [t for t in streams.tracks if t.default]
    if defaults:
        return Choice(min(defaults, key=_rank), "the default track")
    return Choice(streams.tracks[0], "the first track")
