"""Load, validate and resolve the whisperd configuration.

The pipeline is fixed: :func:`load_config` reads the YAML file → validates the top-level
sections, the job defaults and the values of every folder rule → runs the cross-field
checks, among them each rule merged over the defaults (and the rules above it). Every
problem is collected and raised at once as a :class:`~daemon.errors.ConfigError`, one line
per problem with its dotted location.

Settings are frozen pydantic models; the schema below (with a description on every
field) is the single source for config/whisperd.yaml, which a test keeps in step. The
settings for one folder are derived from the defaults and the folder rules matching it
(:meth:`Config.resolve`), never mutated.

The value checks and their tables are in :mod:`daemon.config_values`, the cross-field
checks in :mod:`daemon.config_checks`, and the wording of every error message (pydantic's,
YAML's) in :mod:`daemon.config_errors`; the names other modules use are re-exported here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from daemon.config_checks import _config_problems, _job_problems, _located
from daemon.config_errors import Loc, _line, _Loader, _show, _translate, _yaml_problem
from daemon.config_values import (
    COMPUTE_TYPES,
    ENGINES,
    FORMATS,
    PLACEHOLDERS,
    VAD_KEYS,
    ComputeType,
    ComputeTypeName,
    Count,
    Device,
    Engine,
    EngineName,
    Flag,
    Folder,
    Format,
    Formats,
    Globs,
    Language,
    LogFormat,
    LogLevel,
    ModelRef,
    OptionalCount,
    OptionalFolder,
    OptionalFraction,
    OptionalGlobs,
    OptionalNumber,
    OptionalPositive,
    OptionalText,
    OutputName,
    PollMode,
    Positive,
    Seconds,
    SuccessAction,
    TaskName,
    Temperatures,
    Threads,
    VadParameters,
    _absolute,
    _non_empty,
    model_name,
)
from daemon.errors import ConfigError, OutputPathError

__all__ = [  # the public names; the value tables and model_name come from config_values
    "COMPUTE_TYPES",
    "ENGINES",
    "ENV_VAR",
    "FORMATS",
    "IGNORE_PATTERNS",
    "LOCAL_CONFIG",
    "MEDIA_PATTERNS",
    "PLACEHOLDERS",
    "SYSTEM_CONFIG",
    "VAD_KEYS",
    "ComputeType",
    "Config",
    "Engine",
    "Format",
    "JobSettings",
    "JobsSettings",
    "LogSettings",
    "ModelsSettings",
    "Resolved",
    "SubtitleSettings",
    "WatchSettings",
    "WorkerSettings",
    "builtin_config",
    "find_config",
    "load_config",
    "model_name",
]

ENV_VAR = "WHISPERD_CONFIG"
LOCAL_CONFIG = Path("config/whisperd.yaml")  # relative to the current directory
SYSTEM_CONFIG = Path("/etc/whisperd/whisperd.yaml")

# fmt: off
MEDIA_PATTERNS = (
    "*.wav", "*.mp3", "*.m4a", "*.aac", "*.flac", "*.ogg", "*.oga", "*.opus", "*.wma", "*.webm",
    "*.mp4", "*.m4v", "*.mkv", "*.mov", "*.avi", "*.mpg", "*.mpeg", "*.ts", "*.mts", "*.3gp",
    "*.amr", "*.aif", "*.aiff", "*.caf", "*.wv", "*.mka",
)
IGNORE_PATTERNS = (
    ".*", "*.part", "*.partial", "*.tmp", "*.crdownload", "~$*", "Thumbs.db", "desktop.ini",
    "@eaDir", ".DS_Store", "._*",
)
# fmt: on


# --- the schema ---------------------------------------------------------------------------


class _Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SubtitleSettings(_Settings):
    """How srt and vtt cues are cut; every option other than null/false needs word timings."""

    max_line_width: OptionalCount = Field(
        None, description="Characters per subtitle line before wrapping; null: no limit."
    )
    max_line_count: OptionalCount = Field(
        None, description="Lines per subtitle cue (needs max_line_width); null: no limit."
    )
    max_words_per_line: OptionalCount = Field(
        None, description="Words per subtitle cue (not with max_line_width); null: no limit."
    )
    highlight_words: Flag = Field(
        False, description="Underline each word in srt/vtt as it is spoken."
    )


class JobSettings(_Settings):
    """What to do with one media file: model, language, decoding options and outputs."""

    engine: EngineName = Field(
        "openai-whisper",
        description="Speech recognition engine: openai-whisper, or faster-whisper (CTranslate2; "
        "pip install 'whisperd[faster]').",
    )
    model: ModelRef = Field(
        "base",
        description="Whisper model name (tiny … large-v3, turbo; '.en' = English-only), a model "
        "imported with 'whisperd models import', a .pt checkpoint path (openai-whisper only) or "
        "a CTranslate2 model directory (faster-whisper only).",
    )
    language: Language = Field(
        None,
        description="Spoken language, a code ('es') or English name ('Spanish'); null: detect.",
    )
    task: TaskName = Field(
        "transcribe", description="transcribe (same language) or translate (into English)."
    )
    formats: Formats = Field(
        FORMATS, description="Outputs to write: txt, srt, vtt, tsv, json, or [all]."
    )
    device: Device = Field("auto", description="auto, cpu, cuda or cuda:N.")
    beam_size: OptionalCount = Field(
        5, description="Beams for beam search at temperature 0; null: greedy decoding."
    )
    best_of: Count = Field(5, description="Candidates sampled at each temperature above 0.")
    temperature: Temperatures = Field(
        (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
        description="A number or a list of numbers 0..1, tried in turn when decoding fails.",
    )
    compression_ratio_threshold: OptionalPositive = Field(
        2.4, description="Retry hotter when the text compresses better than this; null: off."
    )
    logprob_threshold: OptionalNumber = Field(
        -1.0, description="Retry hotter when the mean log probability is below; null: off."
    )
    no_speech_threshold: OptionalFraction = Field(
        0.6, description="Treat a window as silence above this no-speech probability; null: off."
    )
    initial_prompt: OptionalText = Field(
        None, description="Text to prime the first window (names, spelling, style); null: none."
    )
    condition_on_previous_text: Flag = Field(
        True, description="Feed each window's text to the next (consistent, may loop)."
    )
    word_timestamps: Flag = Field(
        False, description="Time every word (json, tsv); subtitle options turn it on anyway."
    )
    compute_type: ComputeTypeName = Field(
        "auto",
        description="faster-whisper only: CTranslate2 compute type (int8, int8_float16, "
        "int8_float32, int8_bfloat16, int16, float16, bfloat16, float32; default: the model's "
        "own; auto: float16 on CUDA, int8 on CPU).",
    )
    batch_size: Count = Field(
        1,
        description="faster-whisper only: windows decoded together; above 1, batched decoding "
        "(cuts the audio at pauses with the VAD, first temperature only, no previous text).",
    )
    cpu_threads: Threads = Field(
        0, description="faster-whisper only: CPU threads per model; 0: CTranslate2's default."
    )
    vad_filter: Flag = Field(
        False,
        description="faster-whisper only: skip non-speech with the Silero VAD (bundled, offline).",
    )
    vad_parameters: VadParameters = Field(
        default_factory=dict,
        description="faster-whisper only: Silero VAD options (threshold, neg_threshold, "
        "min_speech_duration_ms, max_speech_duration_s, min_silence_duration_ms, "
        "speech_pad_ms); {}: faster-whisper's defaults.",
    )
    subtitles: SubtitleSettings = Field(
        default_factory=SubtitleSettings,
        description="Subtitle cue options; a folder rule may set some and keep the rest.",
    )
    output_name: OutputName = Field(
        "{stem}",
        description="Output file name without extension; placeholders {stem} {ext} "
        "{language} {model} {task}.",
    )

    @property
    def needs_word_timestamps(self) -> bool:
        """True when word timings must be computed: asked for, or needed by a subtitle option."""
        sub = self.subtitles
        return (
            self.word_timestamps
            or sub.highlight_words
            or any(
                v is not None
                for v in (sub.max_line_width, sub.max_line_count, sub.max_words_per_line)
            )
        )

    def output_stem(self, stem: str, ext: str, language: str | None) -> str:
        """Render output_name for a source ``stem.ext``; ``language`` is the detected one."""
        values = {
            "stem": stem,
            "ext": ext.lstrip("."),
            "language": language or self.language or "und",
            "model": model_name(self.model),
            "task": self.task,
        }
        name = self.output_name.format_map(values)
        if name in ("", ".", "..") or any(c in name for c in "/\\\0"):
            raise OutputPathError(
                f"output_name {self.output_name!r} gives the unusable name {name!r} "
                f"for {stem}.{values['ext']}",
                hint="change output_name in the configuration",
            )
        return name


class WatchSettings(_Settings):
    """How the inbox is watched and when a file counts as complete."""

    poll: PollMode = Field(
        "auto",
        description="auto: poll only where change events are unreliable (network shares); "
        "always; never.",
    )
    poll_interval: Positive = Field(5.0, description="Seconds between polls when polling.")
    stable_seconds: Seconds = Field(
        5.0, description="Seconds a file's size and time must stay unchanged before a job starts."
    )
    rescan_interval: Positive = Field(
        300.0, description="Seconds between full rescans of the inbox, to catch missed events."
    )
    include: Globs = Field(
        MEDIA_PATTERNS, description="File name patterns to transcribe, case-insensitive."
    )
    ignore: OptionalGlobs = Field(
        IGNORE_PATTERNS,
        description="Patterns matched against every path component; a match skips the file.",
    )


class JobsSettings(_Settings):
    """Retries, what happens to a source after success, and shutdown."""

    max_attempts: Count = Field(3, description="Tries per file before it is marked failed.")
    retry_backoff: Seconds = Field(
        30.0, description="Seconds before the first retry; doubles with each attempt."
    )
    retry_backoff_max: Seconds = Field(3600.0, description="Longest wait between retries.")
    on_success: SuccessAction = Field(
        "keep",
        description="What to do with a source once transcribed: keep, move (to archive_dir), "
        "delete.",
    )
    archive_dir: OptionalFolder = Field(
        None, description="Where on_success: move puts sources; not inside inbox or outbox."
    )
    stop_timeout: Seconds = Field(
        60.0, description="Seconds a running job may finish after SIGTERM before it is requeued."
    )
    model_affinity: Seconds = Field(
        300.0,
        description="Seconds a job whose model is loaded may jump ahead of older jobs.",
    )


class WorkerSettings(_Settings):
    """One worker: one device, one job at a time."""

    device: Device = Field("auto", description="Device of this worker: auto, cpu, cuda, cuda:N.")


class ModelsSettings(_Settings):
    """Model cache."""

    cache_size: Count = Field(
        1, description="Models each worker keeps loaded (least recently used goes)."
    )


class LogSettings(_Settings):
    """Logging."""

    level: LogLevel = Field("info", description="debug, info, warning or error.")
    format: LogFormat = Field(
        "auto", description="auto (json when stdout is not a terminal), json or console."
    )


class _ResolveCache(dict):
    """Per-instance memo of :meth:`Config.resolve`; not a setting, so equal to any other."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ResolveCache)

    __hash__ = None  # type: ignore[assignment]


class Config(_Settings):
    """The whole configuration: paths (absolute), job defaults, folder rules, service settings."""

    path: Path = Field(description="The configuration file these settings were loaded from.")
    inbox: Folder = Field(
        "../inbox", validate_default=True, description="Folder watched for media files."
    )
    outbox: Folder = Field(
        "../outbox",
        validate_default=True,
        description="Where outputs go, mirroring the inbox's subfolders.",
    )
    state_dir: Folder = Field(
        "../var",
        validate_default=True,
        description="Job ledger and lock file; must be on a local disk (SQLite).",
    )
    model_dir: Folder = Field(
        "../models",
        validate_default=True,
        description="Model checkpoints, downloaded or imported.",
    )
    defaults: JobSettings = Field(
        default_factory=JobSettings, description="Job settings for every file."
    )
    folders: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per-folder overrides of the defaults, keyed by inbox-relative folder "
        "(glob allowed, '*' never crosses '/'); a rule also covers the folders below it.",
    )
    watch: WatchSettings = Field(default_factory=WatchSettings, description="Inbox watching.")
    jobs: JobsSettings = Field(default_factory=JobsSettings, description="Job handling.")
    workers: Annotated[tuple[WorkerSettings, ...], AfterValidator(_non_empty)] = Field(
        default_factory=lambda: (WorkerSettings(),),
        description="One worker per device, each running one job at a time.",
    )
    models: ModelsSettings = Field(default_factory=ModelsSettings, description="Model cache.")
    log: LogSettings = Field(default_factory=LogSettings, description="Logging.")

    _resolved: _ResolveCache = PrivateAttr(default_factory=_ResolveCache)

    def resolve(self, folder: str | PurePosixPath) -> Resolved:
        """Settings for files in ``folder`` (inbox-relative, '' or '.' for the inbox itself).

        Every rule matching the folder or one of its ancestors applies over the defaults,
        least specific first. Raises ConfigError if the rules combine into an invalid job
        (e.g. an English-only model from one rule, language es from another).
        """
        parts = tuple(p for p in PurePosixPath(folder).parts if p not in ("", ".", "/"))
        found = self._resolved.get(parts)
        if found is None:
            found = self._derive(parts)
            problems = _job_problems(found.settings)
            if problems:
                where = "/".join(parts) or "."
                raise ConfigError(
                    self.path,
                    [f"folder {where!r}, rules {', '.join(found.rules)}: {problems[0][1]}"],
                )
            self._resolved[parts] = found
        return found

    def with_overrides(self, **job_settings: Any) -> Config:
        """A copy whose defaults take these job settings (CLI flags), validated like the file.

        Folder rules still apply over the new defaults; one that no longer fits them (say
        an English-only model over a Spanish folder) fails in :meth:`resolve` for its files
        only. Errors are located as ``overrides.<key>``; a relative model path is taken
        from the config folder, so pass absolute paths.
        """
        raw = self.model_dump(exclude={"path", "defaults"})
        raw["defaults"] = _merge(self.defaults.model_dump(), job_settings)
        return _build(raw, self.path, overridden=frozenset(job_settings))

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Config:
        """A copy (unvalidated, as in pydantic) that starts with an empty resolve() cache."""
        copy = super().model_copy(update=update, deep=deep)
        copy._resolved = _ResolveCache()
        return copy

    def _derive(self, parts: tuple[str, ...]) -> Resolved:
        rules = sorted(
            (key for key in self.folders if _rule_matches(key, parts)),
            key=lambda k: (len(k.split("/")), not _is_glob(k), list(self.folders).index(k)),
        )
        if not rules:
            return Resolved(self.defaults, ())
        merged = self.defaults.model_dump()
        for key in rules:
            merged = _merge(merged, self.folders[key])
        return Resolved(JobSettings.model_validate(merged), tuple(rules))


@dataclass(frozen=True)
class Resolved:
    """The job settings for one folder and the rule keys applied, least to most specific."""

    settings: JobSettings
    rules: tuple[str, ...]


# --- folder rules -------------------------------------------------------------------------


def _is_glob(key: str) -> bool:
    return any(c in key for c in "*?[")


def _rule_matches(key: str, parts: tuple[str, ...]) -> bool:
    """Whether rule ``key`` matches the folder ``parts`` or one of its ancestors."""
    pattern = key.split("/")
    return len(parts) >= len(pattern) and all(map(fnmatchcase, parts, pattern))


def _merge(base: Mapping[str, Any], rule: Mapping[str, Any]) -> dict[str, Any]:
    """``rule`` over ``base``; ``subtitles`` merges key by key."""
    merged = dict(base)
    for key, value in rule.items():
        if (
            key == "subtitles"
            and isinstance(value, Mapping)
            and isinstance(merged.get(key), Mapping)
        ):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _rule_key(raw: Any) -> tuple[str, str | None]:
    """The normalised rule key and a problem with it, if any."""
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        return str(raw), "must be a folder name or pattern"
    text = str(raw).strip()
    if "\\" in text:
        return text, "use '/' between folder names"
    if text.startswith("/"):
        return text, "must be relative to the inbox, like 'es' or 'clients/*'"
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts:
        return text, "must be a folder inside the inbox (no '..')"
    if not parts:
        return text, "the inbox itself is configured by defaults"
    return "/".join(parts), None


def _sets(rule: Mapping[str, Any], dotted: str) -> bool:
    """Whether a folder rule sets the (possibly ``subtitles.``-dotted) key itself."""
    head, _, tail = dotted.partition(".")
    if head not in rule:
        return False
    sub = rule[head]
    return not tail or not isinstance(sub, Mapping) or tail in sub


def _validate_rules(
    folders: Any, context: dict[str, Any]
) -> tuple[dict[str, dict[str, Any]], list[tuple[Loc, str]]]:
    """Validate each rule's values; keep the rule's own keys, normalised.

    Values are checked one by one here; how a rule combines with the defaults (and with
    the rules above it) is checked afterwards, on the merged settings.
    """
    if not isinstance(folders, Mapping):
        return {}, [(("folders",), f"must be a mapping of folder: settings, got {_show(folders)}")]
    rules: dict[str, dict[str, Any]] = {}
    errors: list[tuple[Loc, str]] = []
    for raw_key, rule in folders.items():
        key, problem = _rule_key(raw_key)
        loc: Loc = ("folders", key)
        if problem is None and key in rules:
            problem = "repeats a rule above (the same folder written differently)"
        if problem is None and not isinstance(rule, Mapping):
            problem = f"must be a mapping of settings like 'language: es', got {_show(rule)}"
        if problem:
            errors.append((loc, problem))
            continue
        rule = {str(k): v for k, v in rule.items()}
        try:
            values = JobSettings.model_validate(rule, context=context).model_dump()
        except ValidationError as exc:
            errors += [(loc + where, message) for where, message in _translate(exc, JobSettings)]
            continue
        rules[key] = {k: values[k] for k in rule}
        if isinstance(rule.get("subtitles"), Mapping):
            rules[key]["subtitles"] = {k: values["subtitles"][k] for k in rule["subtitles"]}
    return rules, errors


# --- loading ------------------------------------------------------------------------------

_SECTIONS = ("defaults", "folders", "watch", "jobs", "workers", "models", "log")


def _build(raw: Mapping[Any, Any], path: Path, overridden: frozenset[str] = frozenset()) -> Config:
    """Validate a parsed configuration: sections, folder rules, then cross-field checks."""
    # An empty section ('watch:' with every key commented out) means its defaults.
    data = {str(k): v for k, v in raw.items() if not (k in _SECTIONS and v is None)}
    errors: list[tuple[Loc, str]] = []
    if "path" in data:  # a Config field, but set by the loader, not the file
        del data["path"]
        errors.append((("path",), "unknown key"))
    model_dir = data.get("model_dir", Config.model_fields["model_dir"].default)
    usable = isinstance(model_dir, os.PathLike) or (
        isinstance(model_dir, str) and model_dir.strip()
    )
    context = {
        "base": path.parent,
        "model_dir": _absolute(model_dir, path.parent) if usable else None,
    }
    rules, rule_errors = _validate_rules(data.pop("folders", {}), context)
    cfg = None
    try:
        cfg = Config.model_validate({**data, "path": path, "folders": rules}, context=context)
    except ValidationError as exc:
        errors += _translate(exc, Config)
        if all(loc[:1] == ("defaults",) for loc, _ in errors):  # the rest can be cross-checked
            rest = {k: v for k, v in data.items() if k != "defaults"}
            errors += _config_problems(
                Config.model_validate({**rest, "path": path}, context=context)
            )
    errors += rule_errors
    if cfg is not None and not errors:
        errors += _config_problems(cfg)
        for problem in _job_problems(cfg.defaults):
            by_override = _located(problem, ("defaults",), lambda k: k.split(".")[0] in overridden)
            errors.append(by_override or _located(problem, ("defaults",), lambda k: True))
        # Rules are checked against the file's defaults; with CLI overrides, a rule that
        # no longer fits fails only the files it covers, in resolve().
        for key, rule in cfg.folders.items() if not overridden else ():
            for problem in _job_problems(cfg._derive(tuple(key.split("/"))).settings):
                located = _located(problem, ("folders", key), lambda k, r=rule: _sets(r, k))
                if located:
                    errors.append(located)
    if errors:
        relabel = [
            (
                ("overrides", *loc[1:])
                if loc[:1] == ("defaults",) and loc[1:2] and loc[1] in overridden
                else loc,
                m,
            )
            for loc, m in errors
        ]
        raise ConfigError(path, [_line(loc, m) for loc, m in relabel])
    return cfg


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read, validate and return the configuration in ``path``; raises ConfigError."""
    path = Path(os.path.abspath(path))
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, ["file not found"]) from None
    except IsADirectoryError:
        raise ConfigError(path, ["is a folder, not a YAML file"]) from None
    except PermissionError:
        raise ConfigError(path, ["permission denied: this user cannot read it"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(path, [f"is not UTF-8 text (bad byte at offset {exc.start})"]) from None
    except OSError as exc:
        raise ConfigError(path, [f"cannot be read: {exc.strerror or exc}"]) from None
    try:
        raw = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: safe_load + duplicates
    except yaml.YAMLError as exc:
        raise ConfigError(path, [_yaml_problem(exc)]) from None
    if raw is None:
        raise ConfigError(path, ["is empty: it must hold settings like 'inbox: /srv/inbox'"])
    if not isinstance(raw, dict):
        raise ConfigError(path, [f"must be a mapping of key: value settings, got {_show(raw)}"])
    return _build(raw, path)


def find_config(explicit: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path:
    """The configuration file to use: ``-c`` value, $WHISPERD_CONFIG, ./config, /etc."""
    for given, how in ((explicit, "given with -c"), (env.get(ENV_VAR), f"from ${ENV_VAR}")):
        if given is not None and str(given) != "":
            path = Path(os.path.abspath(given))
            if path.is_file():
                return path
            problem = "is a folder, not a YAML file" if path.is_dir() else "file not found"
            raise ConfigError(path, [f"{problem} ({how})"])
    candidates = (Path.cwd() / LOCAL_CONFIG, SYSTEM_CONFIG)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ConfigError(
        "whisperd",
        [
            f"no configuration file: looked for {candidates[0]} and {candidates[1]} "
            f"(pass one with -c PATH or set ${ENV_VAR})"
        ],
    )


def builtin_config(env: Mapping[str, str] | None = None) -> Config:
    """The schema defaults with no folder rules, for ``whisperd transcribe`` without a file.

    Paths are under the current directory, except model_dir: openai-whisper's own download
    cache ($XDG_CACHE_HOME/whisper or ~/.cache/whisper), so models already fetched are reused.
    """
    env = os.environ if env is None else env
    cache = env.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    raw = {
        "inbox": "inbox",
        "outbox": "outbox",
        "state_dir": "var",
        "model_dir": f"{cache}/whisper",
    }
    return _build(raw, Path.cwd() / "<built-in defaults>")
