"""Loading the configuration: paths, finding the file, every error message with its location."""

# Expected messages are exact one-line strings, compared whole: long lines are the point.
# ruff: noqa: E501

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.config import (
    SYSTEM_CONFIG,
    Resolver,
    WatchSettings,
    find_config,
    load_config,
)
from daemon.errors import ConfigError
from tests.config.support import errors_of, load, write

# --- paths --------------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_config_folder(tmp_path, monkeypatch) -> None:
    write(tmp_path / "etc", "", name="ckpt/mine.pt")
    path = write(
        tmp_path / "etc",
        """
        inbox: in
        outbox: ../out
        state_dir: ./state
        model_dir: /opt/models
        defaults: {model: ckpt/mine.pt}
        jobs: {on_success: move, archive_dir: done}
        """,
    )
    monkeypatch.chdir(tmp_path)  # somewhere else than the config folder
    config = load_config("etc/whisperd.yaml")
    etc = tmp_path / "etc"
    assert config.path == path
    assert config.inbox == etc / "in"
    assert config.outbox == tmp_path / "out"
    assert config.state_dir == etc / "state"
    assert config.model_dir == Path("/opt/models")
    assert config.jobs.archive_dir == etc / "done"
    assert config.defaults.model == str(etc / "ckpt" / "mine.pt")


def test_models_by_name_checkpoint_and_import(tmp_path) -> None:
    write(tmp_path, "", name="models/custom.pt")
    config = load(tmp_path, "model_dir: models\nfolders: {a: {model: custom}, b: {model: tiny}}\n")
    assert Resolver(config).resolve("a").settings.model == "custom"
    assert Resolver(config).resolve("b").settings.model == "tiny"
    assert errors_of(tmp_path, "defaults: {model: gone.pt}\n") == [
        f"defaults.model: checkpoint file {tmp_path / 'gone.pt'} does not exist"
    ]


def test_engines_and_the_model_forms_they_read(tmp_path) -> None:
    write(tmp_path, "", name="models/custom.pt")
    write(tmp_path, "", name="models/fw.ct2/model.bin")
    write(tmp_path, "{}", name="models/fw.ct2/config.json")
    config = load(
        tmp_path,
        "model_dir: models\n"
        "defaults: {engine: faster-whisper, vad: {threshold: 0.4}}\n"
        "folders: {a: {model: fw}, b: {model: models/fw.ct2, output_name: '{stem}.{model}'},\n"
        "          c: {engine: openai-whisper, model: custom}}\n",
    )
    assert config.defaults.engine == "faster-whisper"
    assert config.defaults.vad.threshold == 0.4
    assert Resolver(config).resolve("a").settings.model == "fw"
    b = Resolver(config).resolve("b").settings
    assert b.model == str(tmp_path / "models" / "fw.ct2")
    assert b.output_stem("talk", ".mp3", None) == "talk.fw"
    assert Resolver(config).resolve("c").settings.engine == "openai-whisper"
    assert errors_of(tmp_path, "defaults: {engine: faster-whisper, model: models/custom.pt}\n") == [
        f"defaults.model: faster-whisper cannot read the openai-whisper checkpoint "
        f"'{tmp_path / 'models' / 'custom.pt'}': give a CTranslate2 model directory or a model "
        "imported with 'whisperd models import'"
    ]
    assert errors_of(tmp_path, "folders: {x: {model: models/fw.ct2}}\n") == [
        f"folders.x.model: '{tmp_path / 'models' / 'fw.ct2'}' is a CTranslate2 directory: use "
        "engine faster-whisper, or import it for openai-whisper with 'whisperd models import "
        "DIR --name NAME'"
    ]
    assert errors_of(tmp_path, "defaults: {engine: faster-whisper, model: ./models}\n") == [
        f"defaults.model: {tmp_path / 'models'} is not a CTranslate2 model directory (no "
        "model.bin and config.json)"
    ]


def test_empty_sections_mean_their_defaults(tmp_path) -> None:
    config = load(tmp_path, "inbox: in\nwatch:\njobs:\nfolders:\n")
    assert config.watch == WatchSettings()
    assert config.folders == {}


# --- error messages -----------------------------------------------------------------------

ONE_ERROR = [
    ("defaults: {language: xx}", "defaults.language: 'xx' is not a Whisper language (use a code like 'es' or a name like 'Spanish')"),
    ("defaults: {formats: [txt, srt, docx]}", "defaults.formats[2]: 'docx' is not a format (choose from txt, srt, vtt, tsv, json, all)"),
    ("defaults: {formats: [txt, srt, txt]}", "defaults.formats: 'txt' is listed twice"),
    ("defaults: {formats: [all, srt]}", "defaults.formats: 'all' already includes every format: list it alone"),
    ("defaults: {formats: []}", "defaults.formats: must not be empty"),
    ("watch: {stable_seconds: soon}", "watch.stable_seconds: must be a number ≥ 0, got 'soon'"),
    ("watch: {poll_interval: 0}", "watch.poll_interval: must be a number > 0, got 0"),
    ("watch: {include: []}", "watch.include: must not be empty"),
    ("watch: {include: ['a/*.mp3']}", "watch.include[0]: 'a/*.mp3' contains '/': patterns match single names, not paths"),
    ("defaults: {colour: red}", "defaults.colour: unknown key"),
    ("defaults: {subtitles: {max_line_widht: 3}}", "defaults.subtitles.max_line_widht: unknown key (did you mean 'max_line_width'?)"),
    ("inbox: in\nlanguage: es", "language: unknown key"),
    ("model_dir: models\ndefaults: {model: smal}", "defaults.model: 'smal' is not a Whisper model, a checkpoint file, or a model imported into {tmp}/models (see 'whisperd models list')"),
    ("defaults: {beam_size: 0}", "defaults.beam_size: must be an integer ≥ 1 or null, got 0"),
    ("defaults: {best_of: 2.5}", "defaults.best_of: must be an integer ≥ 1, got 2.5"),
    ("defaults: {temperature: [0, 1.5]}", "defaults.temperature[1]: must be a number between 0 and 1, got 1.5"),
    ("defaults: {temperature: hot}", "defaults.temperature: must be a number between 0 and 1, or a list of them, got 'hot'"),
    ("defaults: {device: gpu}", "defaults.device: 'gpu' is not a device (use auto, cpu, cuda or cuda:N)"),
    ("defaults: {task: transcibe}", "defaults.task: 'transcibe' is not a task (choose from transcribe, translate)"),
    ("defaults: {word_timestamps: maybe}", "defaults.word_timestamps: must be true or false, got 'maybe'"),
    ("defaults: {subtitles: big}", "defaults.subtitles: must be a mapping of key: value, got 'big'"),
    ("defaults: {engine: whisper.cpp}", "defaults.engine: 'whisper.cpp' is not an engine (choose from openai-whisper, faster-whisper)"),
    ("defaults: {compute_type: int4}", "defaults.compute_type: 'int4' is not a compute type (choose from auto, default, int8, int8_float16, int8_float32, int8_bfloat16, int16, float16, bfloat16, float32)"),
    ("defaults: {batch_size: 0}", "defaults.batch_size: must be an integer ≥ 1, got 0"),
    ("defaults: {cpu_threads: -1}", "defaults.cpu_threads: must be an integer ≥ 0, got -1"),
    ("defaults: {vad_filter: sometimes}", "defaults.vad_filter: must be true or false, got 'sometimes'"),
    ("defaults: {vad_parameters: 0.5}", "defaults.vad_parameters: must be a mapping, got 0.5"),
    ("defaults: {vad_parameters: {treshold: 0.4}}", "defaults.vad_parameters: unknown VAD parameter 'treshold' (use threshold, neg_threshold, min_speech_duration_ms, max_speech_duration_s, min_silence_duration_ms, speech_pad_ms)"),
    ("defaults: {vad_parameters: {threshold: 1.5}}", "defaults.vad.threshold: must be a number between 0 and 1, got 1.5"),
    ("defaults: {vad: {threshold: 1.5}}", "defaults.vad.threshold: must be a number between 0 and 1, got 1.5"),
    ("defaults: {vad: {min_silence_ms: 0.5}}", "defaults.vad.min_silence_ms: must be an integer ≥ 0, got 0.5"),
    ("defaults: {vad: {enable: true}}", "defaults.vad.enable: unknown key (did you mean 'enabled'?)"),
    ("defaults: {guard: {repeat_limit: 1}}", "defaults.guard.repeat_limit: must be an integer ≥ 2 or null, got 1"),
    ("defaults: {subtitles: {style: pretty}}", "defaults.subtitles.style: 'pretty' is not a subtitle style (choose from readable, whisper)"),
    ("folders: {a: {vad_parameters: {speech_pad_ms: true}}}", "folders.a.vad_parameters.speech_pad_ms: must be a number, got true"),
    ("defaults: {language: no}", "defaults.language: false is not a Whisper language (use a code like 'es' or a name like 'Spanish'; YAML reads a bare no as false, write 'no' in quotes)"),
    ("log: {level: LOUD}", "log.level: 'LOUD' is not a log level (choose from debug, info, warning, error)"),
    ("jobs: {on_success: archive}", "jobs.on_success: 'archive' is not an on_success action (choose from keep, move, delete)"),
    ("jobs: {max_attempts: 0}", "jobs.max_attempts: must be an integer ≥ 1, got 0"),
    ("inbox: 5", "inbox: must be a folder path, got 5"),
    ("workers: []", "workers: must not be empty"),
    ("workers: [{device: cpu, threads: 2}]", "workers[0].threads: unknown key"),
    ("folders: {es: {language: xx}}", "folders.es.language: 'xx' is not a Whisper language (use a code like 'es' or a name like 'Spanish')"),
    ("folders: {es: {colour: red}}", "folders.es.colour: unknown key"),
    ("folders: {'*/subs': {formats: [doc]}}", "folders.*/subs.formats[0]: 'doc' is not a format (choose from txt, srt, vtt, tsv, json, all)"),
    ("folders: {es: [language]}", "folders.es: must be a mapping of settings like 'language: es', got a list"),
    ("folders: {/srv/in/es: {language: es}}", "folders./srv/in/es: must be relative to the inbox, like 'es' or 'clients/*'"),
    ("folders: {../x: {language: es}}", "folders['../x']: must be a folder inside the inbox (no '..')"),
    ("folders: {es: {language: es}, es/: {language: en}}", "folders.es: repeats a rule above (the same folder written differently)"),
    ("folders: [es]", "folders: must be a mapping of folder: settings, got a list"),
    # output_name
    ("defaults: {output_name: '{stem}-{speaker}'}", "defaults.output_name: unknown placeholder {speaker} in '{stem}-{speaker}' (use {stem} {ext} {language} {model} {task})"),
    ("defaults: {output_name: '{language}/{stem}'}", "defaults.output_name: '{language}/{stem}' contains a slash: outputs are written next to each other, not below"),
    ("defaults: {output_name: '{stem}..x'}", "defaults.output_name: '{stem}..x' contains '..'"),
    ("defaults: {output_name: ''}", "defaults.output_name: must not be empty"),
    ("defaults: {output_name: 'transcript'}", "defaults.output_name: 'transcript' has no {stem}: every file of a folder would write the same outputs"),
    ("defaults: {output_name: '{stem:>9}'}", "defaults.output_name: placeholder {stem} takes no format or conversion in '{stem:>9}'"),
    # cross-field checks
    ("defaults: {model: tiny.en, language: es}", "defaults.language: the English-only model 'tiny.en' cannot transcribe language 'es' (use 'tiny', or language en)"),
    ("defaults: {model: base.en, task: translate}", "defaults.task: the English-only model 'base.en' cannot translate (use 'base')"),
    ("defaults: {model: tiny.en}\nfolders: {es: {language: Spanish}}", "folders.es.language: the English-only model 'tiny.en' cannot transcribe language 'es' (use 'tiny', or language en)"),
    ("folders: {a: {model: base.en}, a/b: {task: translate}}", "folders.a/b.task: the English-only model 'base.en' cannot translate (use 'base')"),
    ("defaults: {subtitles: {style: whisper, max_line_count: 2}}", "defaults.subtitles.max_line_count: max_line_count has no effect without max_line_width with style whisper (whisper ignores it): set both"),
    ("defaults: {subtitles: {style: whisper, max_line_width: 40, max_words_per_line: 5}}", "defaults.subtitles.max_words_per_line: max_words_per_line has no effect with max_line_width with style whisper (whisper ignores it): set one of them"),
    ("defaults: {subtitles: {min_duration: 8}}", "defaults.subtitles.min_duration: min_duration (8 s) is longer than max_duration (7 s)"),
    ("folders: {a: {subtitles: {max_duration: 0.5}}}", "folders.a.subtitles.max_duration: min_duration (0.833 s) is longer than max_duration (0.5 s)"),
    ("defaults: {vad: {threshold: 0.3, neg_threshold: 0.4}}", "defaults.vad.neg_threshold: neg_threshold (0.4) must be below threshold (0.3)"),
    ("jobs: {on_success: move}", "jobs.archive_dir: required when jobs.on_success is move"),
    ("jobs: {on_success: move, archive_dir: out/old}\noutbox: out", "jobs.archive_dir: must not be inside the outbox ({tmp}/out)"),
    ("inbox: box\noutbox: box/", "outbox: must not be the inbox ({tmp}/box)"),
    ("inbox: box\noutbox: box/out", "outbox: must not be inside the inbox ({tmp}/box)"),
    ("inbox: box/in\noutbox: box", "inbox: must not be inside the outbox ({tmp}/box)"),
    ("jobs: {retry_backoff: 60, retry_backoff_max: 10}", "jobs.retry_backoff_max: must be ≥ jobs.retry_backoff (60), got 10"),
    ("workers: [{device: cuda}, {device: cpu}, {device: 'CUDA:0'}]", "workers[2].device: 'cuda:0' is already used by workers[0] (one worker per device)"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected"), ONE_ERROR, ids=[e.split(":")[0] for _, e in ONE_ERROR]
)
def test_each_problem_is_reported_with_its_location(tmp_path, text, expected) -> None:
    assert errors_of(tmp_path, text + "\n") == [expected.replace("{tmp}", str(tmp_path))]


def test_all_errors_are_reported_together(tmp_path) -> None:
    text = """
        inbox: in
        outbox: in/out
        colour: red
        defaults: {language: xx, formats: [txt, docx]}
        folders: {es: {task: transcibe}}
        watch: {stable_seconds: soon}
        jobs: {on_success: move}
    """
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert info.value.errors == [
        "defaults.language: 'xx' is not a Whisper language (use a code like 'es' or a name like 'Spanish')",
        "defaults.formats[1]: 'docx' is not a format (choose from txt, srt, vtt, tsv, json, all)",
        "watch.stable_seconds: must be a number ≥ 0, got 'soon'",
        "colour: unknown key",
        "folders.es.task: 'transcibe' is not a task (choose from transcribe, translate)",
    ]  # fmt: skip
    assert str(info.value).startswith(f"{tmp_path / 'whisperd.yaml'}: 5 configuration errors\n  ")


def test_cross_checks_run_beside_errors_in_the_defaults(tmp_path) -> None:
    errors = errors_of(tmp_path, "inbox: a\noutbox: a\ndefaults: {beam_size: -1}\n")
    assert errors == [
        "defaults.beam_size: must be an integer ≥ 1 or null, got -1",
        f"outbox: must not be the inbox ({tmp_path / 'a'})",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("inbox: [in\n", "YAML syntax error at line 2, column 1: expected ',' or ']', but got '<stream end>'"),
        ("inbox: a\n\toutbox: b\n", "YAML syntax error at line 2, column 1: found character '\\t' that cannot start any token"),
        ("folders:\n  es: {}\n  es: {language: es}\n", "YAML syntax error at line 3, column 3: duplicate key 'es' (first on line 2)"),
        ("jobs: {max_attempts: 2, max_attempts: 5}\n", "YAML syntax error at line 1, column 25: duplicate key 'max_attempts' (first on line 1)"),
        ("- inbox: a\n", "must be a mapping of key: value settings, got a list"),
        ("# nothing yet\n", "is empty: it must hold settings like 'inbox: /srv/inbox'"),
    ],
)  # fmt: skip
def test_unreadable_files_give_one_clear_line(tmp_path, text, expected) -> None:
    assert errors_of(tmp_path, text) == [expected]


def test_missing_file_and_folder(tmp_path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert str(info.value) == f"{tmp_path / 'nope.yaml'}: 1 configuration error\n  file not found"
    with pytest.raises(ConfigError, match="is a folder, not a YAML file"):
        load_config(tmp_path)


# --- finding the file ---------------------------------------------------------------------


def test_find_config_order(tmp_path, monkeypatch) -> None:
    explicit = write(tmp_path, "", name="explicit.yaml")
    from_env = write(tmp_path, "", name="env.yaml")
    monkeypatch.chdir(tmp_path)
    env = {"WHISPERD_CONFIG": str(from_env)}
    if SYSTEM_CONFIG.exists():
        pytest.skip(f"{SYSTEM_CONFIG} exists on this machine")
    with pytest.raises(ConfigError) as info:
        find_config(None, {})
    assert f"looked for {tmp_path / 'config' / 'whisperd.yaml'} and {SYSTEM_CONFIG}" in str(
        info.value
    )
    local = write(tmp_path, "", name="config/whisperd.yaml")
    assert find_config(None, {}) == local
    assert find_config(None, env) == from_env
    assert find_config("explicit.yaml", env) == explicit
    assert find_config(None, {"WHISPERD_CONFIG": ""}) == local


def test_find_config_does_not_fall_back_from_a_missing_named_file(tmp_path, monkeypatch) -> None:
    write(tmp_path, "", name="config/whisperd.yaml")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"file not found \(given with -c\)"):
        find_config("typo.yaml", {})
    with pytest.raises(ConfigError, match=r"file not found \(from \$WHISPERD_CONFIG\)"):
        find_config(None, {"WHISPERD_CONFIG": str(tmp_path / "typo.yaml")})
