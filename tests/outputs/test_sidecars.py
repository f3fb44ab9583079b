"""Subtitle files beside a video, on real folders: which count as subtitles of which video,
read by the rules the media servers use, and the names whisperd writes found again."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from daemon.config import JobSettings, name_matcher
from daemon.config.languages import WHISPER_CODES
from daemon.config.tables import MEDIA_PATTERNS
from daemon.outputs.sidecars import external_subtitles, find_sidecars, listing

IS_MEDIA = name_matcher(MEDIA_PATTERNS)


def touch(
    folder: Path, *names: str, content: str = "1\n00:00:01,000 --> 00:00:02,000\nHi\n"
) -> None:
    for name in names:
        (folder / name).write_text(content, encoding="utf-8")


def found(video: Path, language: str | None, **kw: object) -> list[str]:
    return sorted(p.name for p in external_subtitles(video, language, IS_MEDIA, **kw))  # type: ignore[arg-type]


ENGLISH = [
    "Movie (2004).en.srt",
    "Movie (2004).eng.srt",
    "Movie (2004).en.sdh.srt",
    "Movie (2004).English.srt",
    "Movie (2004).en.hi.srt",
    "Movie (2004).default.en.srt",
    "Movie (2004).EN.ass",
    "movie (2004).eng.SSA",
    "Movie (2004).en-US.vtt",
    "Movie (2004).Director's Cut.en.sub",
    "Movie (2004).whisper.en.srt",
]
NOT_ENGLISH = [
    "Movie (2004).en.forced.srt",  # forced: foreign parts only, not the whole film
    "Movie (2004).eng.foreign.srt",
    "Movie (2004).de.srt",
    "Movie (2004).hi.srt",  # Hindi: "hi" alone is a language
    "Movie (2004).pt-BR.srt",
    "Movie (2004).srt",  # no language in the name
    "Movie (2004).en.srt.bak",  # not a subtitle extension
    "Movie (2004).en.txt",
    "Movie (2004) - Extras.en.srt",  # a different stem
]


def test_the_target_language_with_any_flags_and_case(tmp_path: Path) -> None:
    video = tmp_path / "Movie (2004).mkv"
    touch(tmp_path, video.name, *ENGLISH, *NOT_ENGLISH)
    assert found(video, "en") == sorted(ENGLISH)
    assert found(video, "de") == ["Movie (2004).de.srt"]
    assert found(video, "hi") == ["Movie (2004).hi.srt"]


def test_without_a_language_any_full_subtitle_counts(tmp_path: Path) -> None:
    video = tmp_path / "Movie.mkv"
    touch(tmp_path, video.name, "Movie.en.forced.srt")
    assert found(video, None) == []  # forced only
    touch(tmp_path, "Movie.srt")
    assert found(video, None) == ["Movie.srt"]
    assert found(video, "en") == []  # an unlabelled file is no English subtitle


def test_flags_are_read_from_the_name(tmp_path: Path) -> None:
    video = tmp_path / "Movie.mkv"
    touch(tmp_path, video.name, "Movie.eng.forced.srt", "Movie.en.hi.srt",
          "Movie.default.en.sdh.srt", "Movie.Commentary.fr.srt")  # fmt: skip
    by_name = {s.path.name: s for s in find_sidecars(video, IS_MEDIA)}
    assert by_name["Movie.eng.forced.srt"].forced
    assert by_name["Movie.en.hi.srt"].hearing_impaired
    assert by_name["Movie.en.hi.srt"].languages == {"en"}
    sdh = by_name["Movie.default.en.sdh.srt"]
    assert sdh.default and sdh.hearing_impaired and sdh.languages == {"en"}
    assert by_name["Movie.Commentary.fr.srt"].extra == ("Commentary",)


def test_names_with_dots_keep_their_whole_stem(tmp_path: Path) -> None:
    video = tmp_path / "Mr. Smith Goes.to.Washington (1939).mkv"
    touch(tmp_path, video.name, "Mr. Smith Goes.to.Washington (1939).en.srt",
          "Mr. Smith Goes.srt", "Mr. Smith Goes.to.en.srt")  # fmt: skip
    assert found(video, "en") == ["Mr. Smith Goes.to.Washington (1939).en.srt"]


def test_episodes_sharing_a_prefix_do_not_share_subtitles(tmp_path: Path) -> None:
    season = tmp_path / "Show" / "Season 01"
    season.mkdir(parents=True)
    touch(season, "Show - S01E01.mkv", "Show - S01E010.mkv", "Show - S01E010.en.srt",
          "Show - S01E01 - Pilot.en.srt")  # fmt: skip
    assert found(season / "Show - S01E01.mkv", "en") == []
    assert found(season / "Show - S01E010.mkv", "en") == ["Show - S01E010.en.srt"]
    touch(season, "show - s01e01.EN.srt")
    assert found(season / "Show - S01E01.mkv", "en") == ["show - s01e01.EN.srt"]


def test_a_longer_media_name_claims_its_own_subtitles(tmp_path: Path) -> None:
    touch(tmp_path, "Movie.mkv", "Movie.Extended.mkv", "Movie.Extended.en.srt", "Movie.en.srt")
    assert found(tmp_path / "Movie.mkv", "en") == ["Movie.en.srt"]
    assert found(tmp_path / "Movie.Extended.mkv", "en") == ["Movie.Extended.en.srt"]


def test_collision_safe_stems_keep_two_videos_apart(tmp_path: Path) -> None:
    """Movie.mkv beside Movie.mp4: whisperd writes Movie.mkv.en.srt and Movie.mp4.en.srt
    (outputs.source_stem); each is the other video's, not a subtitle of both."""
    touch(tmp_path, "Movie.mkv", "Movie.mp4", "Movie.mkv.en.srt")
    assert found(tmp_path / "Movie.mkv", "en") == ["Movie.mkv.en.srt"]
    assert found(tmp_path / "Movie.mp4", "en") == []
    touch(tmp_path, "Movie.en.srt")  # a person's, for "Movie": both videos have it
    assert found(tmp_path / "Movie.mp4", "en") == ["Movie.en.srt"]


def test_an_external_audio_track_is_no_other_video(tmp_path: Path) -> None:
    touch(tmp_path, "Movie.mkv", "Movie.en.mka", "Movie.en.srt")
    assert found(tmp_path / "Movie.mkv", "en") == ["Movie.en.srt"]


def test_empty_hidden_and_directory_entries_are_not_subtitles(tmp_path: Path) -> None:
    video = tmp_path / "Movie.mkv"
    touch(tmp_path, video.name, "._Movie.en.srt", ".Movie.en.srt",
          ".Movie.en.srt.1a2b3c4d.whisperd-tmp")  # fmt: skip
    (tmp_path / "Movie.en.srt").write_bytes(b"")  # a failed or running write
    (tmp_path / "Movie.eng.srt").mkdir()
    assert found(video, "en") == []


def test_excluded_files_do_not_count(tmp_path: Path) -> None:
    """whisperd's own outputs of an earlier version are not a reason to skip the new one."""
    video = tmp_path / "Movie.mkv"
    touch(tmp_path, video.name, "Movie.en.srt")
    assert found(video, "en", exclude=[tmp_path / "Movie.en.srt"]) == []


def test_nfd_names_on_disk_match_an_nfc_video_name(tmp_path: Path) -> None:
    nfc = "Amélie (2001)"
    touch(tmp_path, nfc + ".mkv", unicodedata.normalize("NFD", nfc) + ".fr.srt")
    assert len(found(tmp_path / (nfc + ".mkv"), "fr")) == 1


def test_vobsub_without_a_language_in_its_name_reads_the_idx(tmp_path: Path) -> None:
    video = tmp_path / "Movie.mkv"
    touch(tmp_path, video.name, "Movie.sub")
    touch(tmp_path, "Movie.idx",
          content="# VobSub index file, v7\nid: en, index: 0\nid: de, index: 1\n")  # fmt: skip
    assert found(video, "en") == ["Movie.idx", "Movie.sub"]
    assert found(video, "fr") == []


def test_one_listing_serves_every_video_of_a_folder(tmp_path: Path) -> None:
    touch(tmp_path, "A.mkv", "B.mkv", "A.en.srt")
    entries = listing(tmp_path)
    (tmp_path / "A.en.srt").unlink()  # the listing is what counts
    assert found(tmp_path / "A.mkv", "en", entries=entries) == ["A.en.srt"]
    assert found(tmp_path / "B.mkv", "en", entries=entries) == []


@pytest.mark.parametrize("style", ["iso639-1", "iso639-2"])
def test_every_name_whisperd_writes_is_found_again(tmp_path: Path, style: str) -> None:
    """For every Whisper language, the sidecar whisperd names beside the video (plain, with a
    tag before the language, with flags after it) is read back in that language."""
    for template in ("{stem}.{language}", "{stem}.whisper.{language}", "{stem}.{language}.sdh"):
        settings = JobSettings(outputs_beside_source=True, language_code=style,
                               output_name=template)  # fmt: skip
        folder = tmp_path / style / template.replace("{", "").replace("}", "")
        folder.mkdir(parents=True)
        for i, code in enumerate(WHISPER_CODES):
            video = folder / f"Show.{i:03d} - S01E{i:02d}.mkv"
            touch(folder, video.name, settings.output_stem(video.stem, ".mkv", code) + ".srt")
            expected = "zh" if code == "yue" else code  # yue is written as Chinese
            assert found(video, expected) != [], (template, code)
