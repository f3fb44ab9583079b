"""Streams of real videos built with ffmpeg: subtitle streams and their languages, and the
audio track chosen by language, then by the default flag, then by order."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.errors import CorruptMediaError, NoAudioStreamError, SourceReadError
from daemon.media.streams import inspect, pick_audio
from tests.librarymedia import LibraryMedia


def test_subtitle_streams_and_their_languages(library_media: LibraryMedia) -> None:
    subs = inspect(library_media.subtitled_mkv).subtitles
    assert [(s.index, s.language, s.tag, s.codec, s.forced) for s in subs] == [
        (2, "en", "eng", "srt", False),
        (3, "de", "ger", "srt", True),
    ]
    assert inspect(library_media.two_audio_mkv).subtitles == ()


@pytest.mark.parametrize("preference", ["en", "eng", "English", "en-GB"])
def test_the_preferred_language_wins_over_the_default_track(
    library_media: LibraryMedia, preference: str
) -> None:
    choice = pick_audio(inspect(library_media.two_audio_mkv), [preference])
    assert (choice.track.index, choice.track.language, choice.track.tag) == (2, "en", "eng")
    assert choice.reason == "language 'en' (preference 1)"


def test_preferences_are_tried_in_order(library_media: LibraryMedia) -> None:
    streams = inspect(library_media.two_audio_mkv)
    assert pick_audio(streams, ["fr", "klingon", "en", "ja"]).reason == (
        "language 'en' (preference 3)"
    )
    assert pick_audio(streams, ["ja", "en"]).track.index == 1


def test_without_a_match_the_default_track_then_the_first(library_media: LibraryMedia) -> None:
    fallback = pick_audio(inspect(library_media.two_audio_mkv), ["fr"])
    assert (fallback.track.index, fallback.track.language, fallback.reason) == (
        1, "ja", "the default track")  # fmt: skip
    first = pick_audio(inspect(library_media.plain_mkv), ["en"])  # untagged, no default flag
    assert (first.track.index, first.track.language, first.reason) == (1, None, "the first track")


def test_a_commentary_track_is_not_chosen_over_the_main_one(library_media: LibraryMedia) -> None:
    streams = inspect(library_media.commentary_mkv)
    main = pick_audio(streams, ["en"])
    assert (main.track.index, main.track.title) == (2, None)
    fallback = pick_audio(streams, ["fr"])  # ...but it is still the default-flag fallback
    assert (fallback.track.index, fallback.track.title) == (1, "Director's Commentary")
    assert fallback.track.side


def test_typed_errors(library_media: LibraryMedia, tmp_path: Path) -> None:
    with pytest.raises(NoAudioStreamError, match="no audio stream"):
        inspect(library_media.video_only_mp4)
    with pytest.raises(SourceReadError):
        inspect(tmp_path / "missing.mkv")
    garbage = tmp_path / "garbage.mkv"
    garbage.write_bytes(b"\x1a\x45\xdf\xa3 not a video at all" * 100)
    with pytest.raises(CorruptMediaError):
        inspect(garbage)
