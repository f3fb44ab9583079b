"""Language codes: the table against whisper's own, the codes written, the tokens read."""

from __future__ import annotations

import pytest
import whisper.tokenizer

from daemon.config.languages import WHISPER_CODES, code_for, english_name, iso639_2t, parse_language


def test_table_covers_exactly_whispers_languages() -> None:
    assert list(WHISPER_CODES) == list(whisper.tokenizer.LANGUAGES)


@pytest.mark.parametrize("code", WHISPER_CODES)
def test_every_language_has_codes_of_both_styles(code: str) -> None:
    one, two = code_for(code, "iso639-1"), code_for(code, "iso639-2")
    assert len(one) == 2 or code == "haw", "639-1 is two letters where one exists"
    assert len(two) == 3
    assert len(iso639_2t(code)) == 3


@pytest.mark.parametrize("code", [c for c in WHISPER_CODES if c != "yue"])
def test_written_codes_read_back_as_the_same_language(code: str) -> None:
    for style in ("iso639-1", "iso639-2"):
        assert parse_language(code_for(code, style)) == code
    assert parse_language(iso639_2t(code)) == code
    assert parse_language(english_name(code)) == code


@pytest.mark.parametrize(
    ("code", "b", "t"),
    [
        ("de", "ger", "deu"),
        ("fr", "fre", "fra"),
        ("zh", "chi", "zho"),
        ("nl", "dut", "nld"),
        ("cs", "cze", "ces"),
        ("el", "gre", "ell"),
        ("fa", "per", "fas"),
        ("cy", "wel", "cym"),
        ("my", "bur", "mya"),
        ("en", "eng", "eng"),
    ],
)
def test_iso639_2_writes_the_bibliographic_code_and_reads_both(code: str, b: str, t: str) -> None:
    assert code_for(code, "iso639-2") == b  # Plex: "ISO-639-2/B (3-letter)"
    assert iso639_2t(code) == t
    assert parse_language(b) == parse_language(t) == parse_language(b.upper()) == code


def test_whisper_specific_codes() -> None:
    assert code_for("jw", "iso639-1") == "jv"  # Whisper's retired code for Javanese
    assert code_for("jw", "iso639-2") == "jav"
    assert parse_language("jv") == parse_language("jav") == parse_language("jw") == "jw"
    assert code_for("haw", "iso639-1") == code_for("haw", "iso639-2") == "haw"
    assert code_for("yue", "iso639-1") == "zh"  # no 639-1/-2 code: written as Chinese
    assert code_for("yue", "iso639-2") == "chi"
    assert parse_language("yue") == parse_language("Cantonese") == parse_language("zh-yue") == "yue"


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("en", "en"),
        ("eng", "en"),
        ("English", "en"),
        ("english", "en"),
        ("ENGLISH", "en"),
        (" en ", "en"),
        ("pt-BR", "pt"),
        ("pt_br", "pt"),
        ("Portuguese (Brazil)", "pt"),
        ("zh-Hans", "zh"),
        ("zh-Hant-TW", "zh"),
        ("zh_TW", "zh"),
        ("chs", "zh"),
        ("en-US", "en"),
        ("sr-Latn", "sr"),
        ("es-419", "es"),
        ("Spanish; Castilian", "es"),
        ("castilian", "es"),
        ("Haitian Creole", "ht"),
        ("burmese", "my"),
        ("nob", "no"),
        ("nb", "no"),
        ("iw", "he"),
        ("farsi", "fa"),
        ("fil", "tl"),
        ("hi", "hi"),
    ],
)
def test_parse_language_reads_common_forms(token: str, expected: str) -> None:
    assert parse_language(token) == expected


@pytest.mark.parametrize(
    "token", [None, "", "und", "UND", "mul", "zxx", "xx", "klingon", "whisper", "forced", "sdh",
              "cc", "default", "1080p", "x-foo", "e"]
)  # fmt: skip
def test_parse_language_rejects_non_languages(token: str | None) -> None:
    assert parse_language(token) is None


def test_whispers_own_names_and_aliases_are_read() -> None:
    for name, code in whisper.tokenizer.TO_LANGUAGE_CODE.items():
        assert parse_language(name) == code, name


def test_code_for_refuses_unknown_input() -> None:
    with pytest.raises(ValueError, match="not a Whisper language code"):
        code_for("xx")
    with pytest.raises(ValueError, match="not a Whisper language code"):
        code_for("eng")  # a 639-2 code is not a Whisper code
    with pytest.raises(ValueError, match="style"):
        code_for("en", "iso639-3")  # type: ignore[arg-type]
