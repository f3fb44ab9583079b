"""The skip decision and the track plan on real videos: subtitles beside the video or inside
it, in which language, and which track is transcribed in which language."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.config import JobSettings, name_matcher
from daemon.config.tables import MEDIA_PATTERNS
from daemon.jobs.library import plan_track, subtitled, target_language
from tests.librarymedia import LibraryMedia, srt

IS_MEDIA = name_matcher(MEDIA_PATTERNS)


def beside(**settings: object) -> JobSettings:
    return JobSettings(outputs_beside_source=True, model="base", **settings)  # type: ignore[arg-type]


def test_a_sidecar_in_the_language_skips_the_video(
    library_media: LibraryMedia, tmp_path: Path
) -> None:
    video = library_media.copy("plain_mp4", tmp_path / "Movie.mp4")
    assert subtitled(video, beside(language="en"), IS_MEDIA) is None
    srt(tmp_path / "Movie.de.srt", "Hallo.")
    assert subtitled(video, beside(language="en"), IS_MEDIA) is None
    srt(tmp_path / "Movie.en.forced.srt", "Hi.")  # forced only: the film is not subtitled
    assert subtitled(video, beside(language="en"), IS_MEDIA) is None
    srt(tmp_path / "Movie.eng.srt", "Hello.")
    assert subtitled(video, beside(language="en"), IS_MEDIA) == (
        "already has subtitles in English: Movie.eng.srt"
    )
    assert subtitled(video, beside(language="de"), IS_MEDIA) == (
        "already has subtitles in German: Movie.de.srt"
    )
    ours = [tmp_path / "Movie.eng.srt"]  # whisperd's own, from an earlier version
    assert subtitled(video, beside(language="en"), IS_MEDIA, ours=ours) is None


def test_an_embedded_stream_in_the_language_skips_the_video(
    library_media: LibraryMedia, tmp_path: Path
) -> None:
    video = library_media.copy("subtitled_mkv", tmp_path / "Film.mkv")
    assert subtitled(video, beside(language="en"), IS_MEDIA) == (
        "already has an embedded subtitle stream in English (stream 2, srt)"
    )
    assert subtitled(video, beside(language="de"), IS_MEDIA) is None  # the German one is forced
    assert subtitled(video, beside(language="fr"), IS_MEDIA) is None
    forced = library_media.copy("forced_only_mkv", tmp_path / "Forced.mkv")
    assert subtitled(forced, beside(language="en"), IS_MEDIA) is None


def test_with_the_language_unknown_any_subtitle_counts(
    library_media: LibraryMedia, tmp_path: Path
) -> None:
    unknown = beside()
    video = library_media.copy("plain_mkv", tmp_path / "Film.mkv")
    assert subtitled(video, unknown, IS_MEDIA) is None
    srt(tmp_path / "Film.srt", "Hallo.")
    reason = subtitled(video, unknown, IS_MEDIA)
    assert reason is not None and reason.startswith("already has subtitles (its language is not")
    assert reason.endswith(": Film.srt")
    embedded = library_media.copy("subtitled_mkv", tmp_path / "Other.mkv")
    assert subtitled(embedded, unknown, IS_MEDIA) == (
        "already has an embedded subtitle stream (its language is not known before "
        "transcribing, so any subtitle counts) (stream 2, srt, tagged eng)"
    )


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"language": "de"}, "de"),
        ({}, None),
        ({"task": "translate"}, "en"),  # the transcript is English whatever is spoken
        ({"model": "tiny.en"}, "en"),  # an English-only model writes English
    ],
)
def test_the_target_language(settings: dict, expected: str | None) -> None:
    assert target_language(JobSettings(**{"model": "base", **settings}), None) == expected


def test_a_trusted_track_tag_is_the_language(library_media: LibraryMedia, tmp_path: Path) -> None:
    video = library_media.copy("two_audio_mkv", tmp_path / "Film.mkv")
    srt(tmp_path / "Film.ja.srt", "こんにちは")
    trusting = beside(trust_track_language=True)
    assert subtitled(video, trusting, IS_MEDIA) == "already has subtitles in Japanese: Film.ja.srt"
    english = beside(trust_track_language=True, audio_language=("en",))
    assert subtitled(video, english, IS_MEDIA) is None  # the English track has none


def test_the_track_plan(library_media: LibraryMedia) -> None:
    video = library_media.two_audio_mkv
    assert plan_track(video, beside()).stream is None  # nothing to choose: the decoder's pick
    plan = plan_track(video, beside(audio_language=("en",), trust_track_language=True))
    assert (plan.stream, plan.settings.language, plan.chosen_by) == (
        2, "en", "language 'en' (preference 1)")  # fmt: skip
    default = plan_track(video, beside(trust_track_language=True))
    assert (default.stream, default.settings.language) == (1, "ja")
    english_only = JobSettings(model="tiny.en", trust_track_language=True)
    assert plan_track(video, english_only).settings.language is None  # ja: not for tiny.en
    told = plan_track(video, beside(language="fr", trust_track_language=True))
    assert told.stream is None and told.settings.language == "fr"  # configured wins


def test_our_outputs_are_the_done_ones_and_a_commit_in_progress(tmp_path: Path) -> None:
    """A subtitle whisperd has just renamed into place, before its job is recorded done, is
    its own: a new version found in that instant is not skipped for it."""
    from daemon.jobs.library import our_outputs
    from daemon.queue import Ledger
    from daemon.version import Fingerprint

    outbox, beside = tmp_path / "outbox", tmp_path / "in" / "Film.en.srt"
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        job = ledger.enqueue("Film.mkv", Fingerprint(1, 1, 1), model="m", settings_json="{}",
                             now=0)  # fmt: skip
        assert job is not None and ledger.claim("w", now=1) is not None
        record = {"files": [{"path": str(beside), "temp": str(beside) + ".tmp", "sha256": "0"}]}
        ledger.stage(job.id, {**record, "audio_seconds": 1, "processing_seconds": 1,
                              "language": "en"}, now=2)  # fmt: skip
        assert our_outputs(outbox, ledger.history("Film.mkv")) == [beside]
        ledger.complete(job.id, outputs=["Film.txt", str(beside)], audio_seconds=1,
                        processing_seconds=1, language="en", now=3)  # fmt: skip
        assert our_outputs(outbox, ledger.history("Film.mkv")) == [outbox / "Film.txt", beside]
