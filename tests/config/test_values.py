"""Single values: languages, models, formats, templates."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from daemon.config import (
    JobSettings,
    Resolver,
)
from daemon.errors import OutputPathError
from tests.config.support import load

# --- values -------------------------------------------------------------------------------


def test_formats_all_and_language_names(tmp_path) -> None:
    config = load(
        tmp_path,
        """
        defaults: {formats: [ALL], language: Spanish, temperature: 0}
        folders: {a: {language: castilian}, b: {language: EN}, c: {formats: srt}}
        """,
    )
    assert config.defaults.formats == ("txt", "srt", "vtt", "tsv", "json")
    assert config.defaults.language == "es"
    assert config.defaults.temperature == (0.0,)
    assert Resolver(config).resolve("a").settings.language == "es"
    assert Resolver(config).resolve("b").settings.language == "en"
    assert Resolver(config).resolve("c").settings.formats == ("srt",)


def test_output_stem_renders_the_template() -> None:
    job = JobSettings(output_name="{stem}.{language}.{model}.{task}.{ext}")
    assert job.output_stem("talk", "mp3", "de") == "talk.de.base.transcribe.mp3"
    assert job.output_stem("talk", ".mp3", None) == "talk.und.base.transcribe.mp3"
    fixed = JobSettings(output_name="{stem}-{language}", language="fr", model="/m/big.pt")
    assert fixed.output_stem("talk", "wav", None) == "talk-fr"
    assert (
        JobSettings(output_name="{model}_{stem}", model="/m/big.pt").output_stem("a", "", None)
        == "big_a"
    )
    with pytest.raises(OutputPathError, match=r"unusable name '\.\.'"):
        JobSettings().output_stem("..", "mp3", None)


def test_needs_word_timestamps() -> None:
    assert JobSettings().needs_word_timestamps  # readable srt and vtt are built from words
    assert not JobSettings(formats=["txt", "json"]).needs_word_timestamps
    assert JobSettings(formats=["json"], word_timestamps=True).needs_word_timestamps
    whisper = {"style": "whisper"}
    assert not JobSettings(subtitles=whisper).needs_word_timestamps
    assert JobSettings(subtitles={**whisper, "highlight_words": True}).needs_word_timestamps
    assert JobSettings(subtitles={**whisper, "max_words_per_line": 4}).needs_word_timestamps
    silence = {"hallucination_silence_threshold": 2.0}
    assert JobSettings(formats=["txt"], guard=silence).needs_word_timestamps


def test_settings_are_frozen(tmp_path) -> None:
    config = load(tmp_path, "inbox: in\n")
    with pytest.raises(ValidationError, match="frozen"):
        config.inbox = tmp_path  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        config.defaults.model = "tiny"  # type: ignore[misc]
    assert config.inbox == tmp_path / "in"
