"""Per-folder settings and command-line overrides."""

# Expected messages are exact one-line strings, compared whole: long lines are the point.
# ruff: noqa: E501

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.config import (
    FORMATS,
    JobSettings,
    Resolver,
    builtin_config,
    with_overrides,
)
from daemon.errors import ConfigError
from tests.config.support import load

# --- resolution ---------------------------------------------------------------------------

RULES = """
    folders:
      "*/talks": {language: de, formats: [txt]}
      clients: {language: fr, subtitles: {max_line_width: 30, max_line_count: 3}}
      clients/acme: {language: es}
      clients/*: {language: it, subtitles: {max_line_width: 50}}
      Archive: {task: translate}
"""


@pytest.mark.parametrize(
    ("folder", "rules", "language"),
    [
        ("", (), None),
        (".", (), None),
        ("other", (), None),
        ("clients", ("clients",), "fr"),
        ("clients/bob", ("clients", "clients/*"), "it"),
        ("clients/acme", ("clients", "clients/*", "clients/acme"), "es"),  # literal beats glob
        ("clients/acme/2024/q1", ("clients", "clients/*", "clients/acme"), "es"),  # ancestors
        ("clients/talks", ("clients", "*/talks", "clients/*"), "it"),  # same depth: file order
        ("x/talks/deeper", ("*/talks",), "de"),
        ("talks", (), None),  # '*' needs a folder
        ("x/y/talks", (), None),  # '*' never crosses '/'
        ("archive", (), None),  # case-sensitive
    ],
)
def test_resolve_applies_matching_rules_least_specific_first(
    tmp_path, folder, rules, language
) -> None:
    resolved = Resolver(load(tmp_path, RULES)).resolve(folder)
    assert resolved.rules == rules
    assert resolved.settings.language == language


def test_resolve_merges_subtitles_key_by_key(tmp_path) -> None:
    config = load(tmp_path, RULES)
    settings = Resolver(config).resolve("clients/bob/x").settings
    assert settings.subtitles.max_line_width == 50
    assert settings.subtitles.max_line_count == 3
    assert settings.formats == FORMATS
    assert Resolver(config).resolve("Archive").settings.task == "translate"
    assert config.defaults.language is None  # derived, not mutated
    rules = Resolver(config)
    assert rules.resolve("clients/bob") is rules.resolve("clients/bob/")  # derived once
    copy = config.model_copy(update={"folders": {"clients": {"language": "nl"}}})
    assert Resolver(copy).resolve("clients/bob").settings.language == "nl"


def test_resolve_reports_rules_that_clash_only_in_combination(tmp_path) -> None:
    config = load(tmp_path, "folders: {'x/*': {model: tiny.en}, '*/fr': {language: fr}}\n")
    assert Resolver(config).resolve("x/en").settings.model == "tiny.en"
    with pytest.raises(ConfigError) as info:
        Resolver(config).resolve("x/fr")
    assert info.value.errors == [
        "folder 'x/fr', rules x/*, */fr: the English-only model 'tiny.en' cannot transcribe "
        "language 'fr' (use 'tiny', or language en)"
    ]


# --- overrides ----------------------------------------------------------------------------


def test_with_overrides_returns_a_validated_copy(tmp_path) -> None:
    config = load(tmp_path, RULES)
    changed = with_overrides(config, model="tiny", language="German", formats=["all"])
    assert (changed.defaults.model, changed.defaults.language) == ("tiny", "de")
    assert changed.defaults.formats == FORMATS
    assert Resolver(changed).resolve("other").settings.model == "tiny"
    assert Resolver(changed).resolve("clients").settings.language == "fr"  # folder rules still win
    assert (config.defaults.model, config.defaults.language) == ("base", None)
    assert changed.folders == config.folders and changed.inbox == config.inbox


def test_with_overrides_reports_bad_values(tmp_path) -> None:
    config = load(tmp_path, "model_dir: models\n")
    with pytest.raises(ConfigError) as info:
        with_overrides(config, model="smal", formats=["docx"], task="translate", colour=1)
    assert info.value.errors == [
        f"overrides.model: 'smal' is not a Whisper model, a checkpoint file, or a model imported into {tmp_path / 'models'} (see 'whisperd models list')",
        "overrides.formats[0]: 'docx' is not a format (choose from txt, srt, vtt, tsv, json, all)",
        "overrides.colour: unknown key",
    ]  # fmt: skip
    with pytest.raises(ConfigError) as info:
        with_overrides(config, model="tiny.en", language="es")
    assert info.value.errors == [
        "overrides.language: the English-only model 'tiny.en' cannot transcribe language 'es' "
        "(use 'tiny', or language en)"
    ]


def test_with_overrides_leaves_clashing_rules_to_their_folders(tmp_path) -> None:
    changed = with_overrides(load(tmp_path, "folders: {es: {language: es}}\n"), model="tiny.en")
    assert Resolver(changed).resolve("en").settings.model == "tiny.en"
    with pytest.raises(ConfigError, match="folder 'es/2024', rules es: the English-only model"):
        Resolver(changed).resolve("es/2024")


def test_builtin_config_without_a_file(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = builtin_config({"XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert config.model_dir == tmp_path / "cache" / "whisper"
    assert (config.inbox, config.path.parent) == (tmp_path / "inbox", tmp_path)
    assert config.defaults == JobSettings() and config.folders == {}
    with pytest.raises(ConfigError, match=r"overrides\.language: 'xx' is not a Whisper language"):
        with_overrides(config, language="xx")


def test_loading_the_config_does_not_import_torch():
    """The service's idle memory: validating languages and models must not pull in torch."""
    import subprocess
    import sys

    code = (
        "import sys; from daemon.config import load_config; load_config('config/whisperd.yaml');"
        "print('torch' in sys.modules, 'whisper' in sys.modules)"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert result.stdout.split() == ["False", "False"], result.stderr


def test_language_table_is_openai_whispers():
    import whisper.tokenizer

    from daemon.config.tables import whisper_languages

    assert whisper_languages() == (whisper.tokenizer.LANGUAGES, whisper.tokenizer.TO_LANGUAGE_CODE)
