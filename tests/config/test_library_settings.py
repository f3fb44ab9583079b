"""The media-library settings: defaults that follow the output mode, per folder, located errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.config import FORMATS, JobSettings, Resolver
from tests.config.support import errors_of, load


def test_beside_the_source_changes_four_defaults() -> None:
    mirrored, beside = JobSettings(), JobSettings(outputs_beside_source=True)
    assert (mirrored.output_name, mirrored.formats) == ("{stem}", FORMATS)
    assert (mirrored.language_code, mirrored.skip_if_subtitles) == ("whisper", False)
    assert (beside.output_name, beside.formats) == ("{stem}.{language}", ("srt",))
    assert (beside.language_code, beside.skip_if_subtitles) == ("iso639-1", True)
    assert beside.output_stem("Movie (2004)", ".mkv", "en") == "Movie (2004).en"
    assert beside.raw()["formats"] is None  # "auto" stays auto when rules are merged


def test_language_codes_in_names() -> None:
    for style, expected in (("whisper", "de"), ("iso639-1", "de"), ("iso639-2", "ger")):
        settings = JobSettings(output_name="{stem}.{language}", language_code=style)
        assert settings.output_stem("Film", ".mkv", "de") == f"Film.{expected}"
    jw = JobSettings(outputs_beside_source=True)
    assert jw.output_stem("Film", ".mkv", "jw") == "Film.jv"  # Whisper's retired Javanese
    assert JobSettings().output_stem("Film", ".mkv", "jw") == "Film"  # mirrored: unchanged
    assert JobSettings(output_name="{stem}.{language}").output_stem("F", ".mkv", "yue") == "F.yue"
    flagged = JobSettings(outputs_beside_source=True, output_name="{stem}.{language}.sdh")
    assert flagged.output_stem("Film", ".mkv", "en") == "Film.en.sdh"


def test_a_folder_rule_turns_the_mode_on_with_its_defaults(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        """
        defaults: {model: tiny}
        folders:
          Movies: {outputs_beside_source: true, audio_language: [Japanese, eng]}
          Movies/Docs: {outputs_beside_source: false}
          Shows: {outputs_beside_source: true, formats: [srt, json], output_name: "{stem}.{language}.whisper"}
        """,  # noqa: E501
    )
    rules = Resolver(cfg)
    movies = rules.resolve("Movies/Film").settings
    assert (movies.output_name, movies.formats, movies.skip_if_subtitles) == (
        "{stem}.{language}", ("srt",), True)  # fmt: skip
    assert movies.audio_language == ("ja", "en")
    docs = rules.resolve("Movies/Docs").settings
    assert (docs.output_name, docs.formats, docs.skip_if_subtitles) == ("{stem}", FORMATS, False)
    shows = rules.resolve("Shows").settings
    assert (shows.formats, shows.output_name) == (("srt", "json"), "{stem}.{language}.whisper")
    assert rules.resolve("other").settings.outputs_beside_source is False
    assert cfg.beside_anywhere() and cfg.uses_outbox()


def test_top_level_switch_is_the_defaults_value(tmp_path: Path) -> None:
    cfg = load(tmp_path, "outputs_beside_source: true\ndefaults: {model: tiny}\n")
    assert cfg.defaults.outputs_beside_source and cfg.defaults.output_name == "{stem}.{language}"
    assert not cfg.uses_outbox()
    assert errors_of(
        tmp_path, "outputs_beside_source: true\ndefaults: {outputs_beside_source: false}\n"
    ) == ["outputs_beside_source: also set in defaults: set it in one place"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("defaults: {audio_language: [ja, klingon]}",
         "defaults.audio_language: 'klingon' is not a language (use a code like 'ja' or 'jpn', "
         "or a name like 'Japanese')"),
        ("defaults: {audio_language: [en, eng]}", "defaults.audio_language: 'eng' is listed twice"),
        ("defaults: {language_code: iso639-3}",
         "defaults.language_code: 'iso639-3' is not a language code style "
         "(choose from whisper, iso639-1, iso639-2)"),
        ("defaults: {skip_if_subtitles: maybe}",
         "defaults.skip_if_subtitles: must be true or false, got 'maybe'"),
        ("folders: {tv: {formats: [srt, docx]}}",
         "folders.tv.formats[1]: 'docx' is not a format (choose from txt, srt, vtt, tsv, json, "
         "all)"),
        ("jobs: {order: random}",
         "jobs.order: 'random' is not an order (choose from oldest, newest)"),
        ("defaults: {outputs_beside_source: true}\njobs: {on_success: delete}",
         "jobs.on_success: must be keep where outputs_beside_source is true (on_success delete "
         "would leave the subtitles without their video)"),
        ("media_server: {kind: jellyfin}", "media_server.url: required with media_server.kind "
         "jellyfin"),
        ("media_server: {kind: kodi, url: 'http://x'}",
         "media_server.kind: 'kodi' is not a media server kind (choose from none, jellyfin, "
         "emby, plex)"),
        ("media_server: {kind: plex, url: 'plex:32400'}",
         "media_server.url: 'plex:32400' is not an http(s) URL (e.g. http://jellyfin:8096)"),
        ("media_server: {path_map: {mnt/media: /data}}",
         "media_server.path_map: 'mnt/media' is not an absolute folder path (like /mnt/media)"),
    ],
)  # fmt: skip
def test_bad_values_get_one_located_line(tmp_path: Path, text: str, message: str) -> None:
    assert errors_of(tmp_path, text) == [message]


def test_media_server_settings(tmp_path: Path) -> None:
    cfg = load(tmp_path, """
        media_server: {kind: Jellyfin, url: "http://127.0.0.1:8096/", token_file: secret,
                       path_map: {/mnt/media: /data}}
        """)  # fmt: skip
    server = cfg.media_server
    assert (server.kind, server.url, server.token) == ("jellyfin", "http://127.0.0.1:8096", None)
    assert server.token_file == tmp_path / "secret"
    assert server.path_map == {"/mnt/media": "/data"}
    assert load(tmp_path, "{}").media_server.kind == "none"
