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
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal, NoReturn, get_args

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
)
from pydantic_core import PydanticCustomError

from daemon.errors import ConfigError, OutputPathError

ENV_VAR = "WHISPERD_CONFIG"
LOCAL_CONFIG = Path("config/whisperd.yaml")  # relative to the current directory
SYSTEM_CONFIG = Path("/etc/whisperd/whisperd.yaml")

Engine = Literal["openai-whisper", "faster-whisper"]
ENGINES: tuple[str, ...] = get_args(Engine)
# CTranslate2's compute types (https://opennmt.net/CTranslate2/quantization.html); "auto" is
# ours: float16 on CUDA, int8 on CPU. "default" keeps the type the model was saved in.
ComputeType = Literal[
    "auto", "default", "int8", "int8_float16", "int8_float32", "int8_bfloat16", "int16",
    "float16", "bfloat16", "float32",
]  # fmt: skip
COMPUTE_TYPES: tuple[str, ...] = get_args(ComputeType)
# faster_whisper.vad.VadOptions fields (faster-whisper 1.2); kept here so that config
# validation does not import faster-whisper. tests/test_engine_faster.py checks it.
VAD_KEYS = (
    "threshold", "neg_threshold", "min_speech_duration_ms", "max_speech_duration_s",
    "min_silence_duration_ms", "speech_pad_ms",
)  # fmt: skip
_VAD_FRACTIONS = ("threshold", "neg_threshold")
Format = Literal["txt", "srt", "vtt", "tsv", "json"]
FORMATS: tuple[str, ...] = get_args(Format)
PLACEHOLDERS = ("stem", "ext", "language", "model", "task")
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

Loc = tuple[str | int, ...]

# --- value checks: each raises one readable message, located by pydantic ------------------


def _fail(message: str) -> NoReturn:
    raise PydanticCustomError("whisperd", "{message}", {"message": message})


def _show(value: Any) -> str:
    """How a bad value is quoted in a message: YAML words for YAML values."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number(desc: str, test: Callable[[float], bool], *, integer: bool = False, null: bool = False):
    def check(value: Any) -> Any:
        if value is None and null:
            return None
        if _is_number(value) and (isinstance(value, int) or not integer) and test(value):
            return value
        _fail(f"must be {desc}{' or null' if null else ''}, got {_show(value)}")

    return BeforeValidator(check)


def _choice(noun: str, choices: Sequence[str]):
    def check(value: Any) -> str:
        if isinstance(value, str) and value.strip().lower() in choices:
            return value.strip().lower()
        _fail(f"{_show(value)} is not {noun} (choose from {', '.join(choices)})")

    return BeforeValidator(check)


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    _fail(f"must be true or false, got {_show(value)}")


def _optional_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    _fail(f"must be text or null, got {_show(value)}")


def _device(value: Any) -> str:
    if isinstance(value, str) and re.fullmatch(r"auto|cpu|cuda(:\d+)?", value.strip().lower()):
        return value.strip().lower()
    _fail(f"{_show(value)} is not a device (use auto, cpu, cuda or cuda:N)")


@functools.cache
def _whisper_languages() -> tuple[dict[str, str], dict[str, str]]:
    """openai-whisper's own language table, read without importing torch.

    ``import whisper.tokenizer`` runs whisper/__init__.py, which imports torch and numba
    (~250 MB of RSS for a service that may never load a model). whisper/tokenizer.py itself
    needs only tiktoken, so it is loaded on its own from the installed package.
    """
    spec = importlib.util.find_spec("whisper")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("openai-whisper", ["the openai-whisper package is not installed"])
    path = Path(next(iter(spec.submodule_search_locations))) / "tokenizer.py"
    loader_spec = importlib.util.spec_from_file_location("_whisperd_whisper_tokenizer", path)
    assert loader_spec is not None and loader_spec.loader is not None
    module = importlib.util.module_from_spec(loader_spec)
    loader_spec.loader.exec_module(module)
    return module.LANGUAGES, module.TO_LANGUAGE_CODE


@functools.cache
def _official_models() -> frozenset[str]:
    from daemon.models import OFFICIAL_MODELS  # checked against whisper.available_models()

    return frozenset(OFFICIAL_MODELS)


def _language(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        key = value.strip().lower()
        codes, names = _whisper_languages()
        if key in codes:
            return key
        if key in names:
            return names[key]
    hint = "; YAML reads a bare no as false, write 'no' in quotes" if value is False else ""
    _fail(
        f"{_show(value)} is not a Whisper language (use a code like 'es' or a name like "
        f"'Spanish'{hint})"
    )


def _formats_before(value: Any) -> Any:
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list | tuple) and any(
        isinstance(v, str) and v.strip().lower() == "all" for v in value
    ):
        if len(value) > 1:
            _fail("'all' already includes every format: list it alone")
        return FORMATS
    return value


def _no_repeats(value: tuple[Any, ...]) -> tuple[Any, ...]:
    if not value:
        _fail("must not be empty")
    repeated = [v for i, v in enumerate(value) if v in value[:i]]
    if repeated:
        _fail(f"{_show(repeated[0])} is listed twice")
    return value


def _temperatures_before(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return value
    if _is_number(value) and 0 <= value <= 1:
        return (value,)
    _fail(f"must be a number between 0 and 1, or a list of them, got {_show(value)}")


def _non_empty(value: tuple[Any, ...]) -> tuple[Any, ...]:
    if not value:
        _fail("must not be empty")
    return value


def _glob(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        _fail(f"must be a file name pattern like '*.mp3', got {_show(value)}")
    if "/" in value:
        _fail(f"{value!r} contains '/': patterns match single names, not paths")
    return value


def _output_name(value: Any) -> str:
    if not isinstance(value, str):
        _fail(f"must be a template like '{{stem}}', got {_show(value)}")
    try:
        fields = [(f, s, c) for _, f, s, c in string.Formatter().parse(value) if f is not None]
    except ValueError as exc:
        _fail(f"{value!r} is not a valid template ({exc}; write {{{{ or }}}} for a brace)")
    for field, spec, conversion in fields:
        if field not in PLACEHOLDERS:
            known = " ".join(f"{{{p}}}" for p in PLACEHOLDERS)
            _fail(f"unknown placeholder {{{field}}} in {value!r} (use {known})")
        if spec or conversion:
            _fail(f"placeholder {{{field}}} takes no format or conversion in {value!r}")
    if "/" in value or "\\" in value:
        _fail(f"{value!r} contains a slash: outputs are written next to each other, not below")
    if ".." in value:
        _fail(f"{value!r} contains '..'")
    if not value.strip():
        _fail("must not be empty")
    if "stem" not in {f for f, _, _ in fields}:
        _fail(f"{value!r} has no {{stem}}: every file of a folder would write the same outputs")
    return value


def _base(info: ValidationInfo) -> Path:
    return (info.context or {}).get("base") or Path.cwd()


def _absolute(value: str | os.PathLike[str], base: Path) -> Path:
    try:
        path = Path(value).expanduser()
    except RuntimeError:  # '~' without a home directory
        path = Path(value)
    return Path(os.path.normpath(base / path))


def _folder(value: Any, info: ValidationInfo) -> Path:
    if isinstance(value, os.PathLike) or (isinstance(value, str) and value.strip()):
        return _absolute(value, _base(info))
    _fail(f"must be a folder path, got {_show(value)}")


def _optional_folder(value: Any, info: ValidationInfo) -> Path | None:
    return None if value is None else _folder(value, info)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _is_ct2_dir(path: Path) -> bool:
    """A CTranslate2 model directory (faster-whisper's format): model.bin + config.json."""
    return _is_file(path / "model.bin") and _is_file(path / "config.json")


def _model(value: Any, info: ValidationInfo) -> str:
    """A model name, an imported name, a .pt checkpoint or a CTranslate2 directory.

    Paths are stored absolute. Which engine can use which form is checked across fields
    (:func:`_job_problems`) and, for imported names, when the model is loaded.
    """
    if not isinstance(value, str) or not value.strip():
        _fail(f"must be a model name like 'base' or a .pt checkpoint path, got {_show(value)}")
    value = value.strip()
    if not info.context:  # built in code, not loaded: the models module checks it when used
        return value
    if value.endswith(".pt"):
        path = _absolute(value, _base(info))
        if _is_file(path):
            return str(path)
        _fail(f"checkpoint file {path} does not exist")
    model_dir = info.context.get("model_dir")
    if value in _official_models():
        return value
    if (
        "/" not in value
        and model_dir is not None
        and (_is_file(model_dir / f"{value}.pt") or _is_ct2_dir(model_dir / f"{value}.ct2"))
    ):
        return value
    if "/" in value or value.endswith(".ct2"):
        path = _absolute(value, _base(info))
        if _is_ct2_dir(path):
            return str(path)
        if path.is_dir():
            _fail(f"{path} is not a CTranslate2 model directory (no model.bin and config.json)")
    _fail(
        f"{value!r} is not a Whisper model, a checkpoint file, or a model imported into "
        f"{model_dir} (see 'whisperd models list')"
    )


def _vad_parameters(value: Any) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        _fail(f"must be a mapping like {{threshold: 0.5}}, got {_show(value)}")
    checked: dict[str, float] = {}
    for key, number in value.items():
        if key not in VAD_KEYS:
            _fail(f"unknown VAD parameter {_show(key)} (use {', '.join(VAD_KEYS)})")
        limit = 1 if key in _VAD_FRACTIONS else math.inf
        if not (_is_number(number) and 0 <= number <= limit):
            desc = "a number between 0 and 1" if limit == 1 else "a number ≥ 0"
            _fail(f"{key} must be {desc}, got {_show(number)}")
        checked[key] = number
    return checked


Count = Annotated[int, _number("an integer ≥ 1", lambda v: v >= 1, integer=True)]
Threads = Annotated[int, _number("an integer ≥ 0", lambda v: v >= 0, integer=True)]
OptionalCount = Annotated[
    int | None, _number("an integer ≥ 1", lambda v: v >= 1, integer=True, null=True)
]
Seconds = Annotated[float, _number("a number ≥ 0", lambda v: v >= 0)]
Positive = Annotated[float, _number("a number > 0", lambda v: v > 0)]
OptionalPositive = Annotated[float | None, _number("a number > 0", lambda v: v > 0, null=True)]
OptionalNumber = Annotated[float | None, _number("a number", lambda v: True, null=True)]
Fraction = Annotated[float, _number("a number between 0 and 1", lambda v: 0 <= v <= 1)]
OptionalFraction = Annotated[
    float | None, _number("a number between 0 and 1", lambda v: 0 <= v <= 1, null=True)
]
Flag = Annotated[bool, BeforeValidator(_flag)]
OptionalText = Annotated[str | None, BeforeValidator(_optional_text)]
Device = Annotated[str, BeforeValidator(_device)]
Language = Annotated[str | None, BeforeValidator(_language)]
ModelRef = Annotated[str, BeforeValidator(_model)]
Formats = Annotated[
    tuple[Annotated[Format, _choice("a format", (*FORMATS, "all"))], ...],
    BeforeValidator(_formats_before),
    AfterValidator(_no_repeats),
]
Temperatures = Annotated[
    tuple[Fraction, ...], BeforeValidator(_temperatures_before), AfterValidator(_non_empty)
]
Globs = Annotated[tuple[Annotated[str, BeforeValidator(_glob)], ...], AfterValidator(_non_empty)]
OptionalGlobs = tuple[Annotated[str, BeforeValidator(_glob)], ...]
OutputName = Annotated[str, BeforeValidator(_output_name)]
Folder = Annotated[Path, BeforeValidator(_folder)]
EngineName = Annotated[Engine, _choice("an engine", ENGINES)]
ComputeTypeName = Annotated[ComputeType, _choice("a compute type", COMPUTE_TYPES)]
VadParameters = Annotated[dict[str, float], BeforeValidator(_vad_parameters)]
TaskName = Annotated[
    Literal["transcribe", "translate"], _choice("a task", ("transcribe", "translate"))
]
PollMode = Annotated[
    Literal["auto", "always", "never"], _choice("a poll mode", ("auto", "always", "never"))
]
SuccessAction = Annotated[
    Literal["keep", "move", "delete"], _choice("an on_success action", ("keep", "move", "delete"))
]
LogLevel = Annotated[
    Literal["debug", "info", "warning", "error"],
    _choice("a log level", ("debug", "info", "warning", "error")),
]
LogFormat = Annotated[
    Literal["auto", "json", "console"], _choice("a log format", ("auto", "json", "console"))
]
OptionalFolder = Annotated[Path | None, BeforeValidator(_optional_folder)]


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


# --- cross-field checks -------------------------------------------------------------------


def model_name(model: str) -> str:
    """A configured model's short name: a path's file or folder name without .pt / .ct2."""
    if model.endswith(".pt") or "/" in model:
        name = Path(model).name
        return name.removesuffix(".pt").removesuffix(".ct2") or name
    return model


def _job_problems(job: JobSettings) -> list[tuple[tuple[str, ...], str]]:
    """Combinations whisper cannot honour: (keys involved, preferred first; message)."""
    problems: list[tuple[tuple[str, ...], str]] = []
    name = model_name(job.model)
    is_checkpoint = job.model.endswith(".pt")
    if job.engine == "faster-whisper" and is_checkpoint:
        problems.append((
            ("model", "engine"),
            f"faster-whisper cannot read the openai-whisper checkpoint {job.model!r}: give a "
            "CTranslate2 model directory or a model imported with 'whisperd models import'",
        ))  # fmt: skip
    if job.engine == "openai-whisper" and "/" in job.model and not is_checkpoint:
        problems.append((
            ("model", "engine"),
            f"{job.model!r} is a CTranslate2 directory: use engine faster-whisper, or import "
            "it for openai-whisper with 'whisperd models import DIR --name NAME'",
        ))  # fmt: skip
    if name.endswith(".en"):
        instead = (
            f"use {name[:-3]!r}" if name[:-3] in _official_models() else "use a multilingual model"
        )
        if job.language not in (None, "en"):
            problems.append((
                ("language", "model"),
                f"the English-only model {job.model!r} cannot transcribe language "
                f"{job.language!r} ({instead}, or language en)",
            ))  # fmt: skip
        if job.task == "translate":
            problems.append((
                ("task", "model"),
                f"the English-only model {job.model!r} cannot translate ({instead})",
            ))  # fmt: skip
    sub = job.subtitles
    if sub.max_line_count is not None and sub.max_line_width is None:
        problems.append((
            ("subtitles.max_line_count", "subtitles.max_line_width"),
            "max_line_count has no effect without max_line_width (whisper ignores it): set both",
        ))  # fmt: skip
    if sub.max_words_per_line is not None and sub.max_line_width is not None:
        problems.append((
            ("subtitles.max_words_per_line", "subtitles.max_line_width"),
            "max_words_per_line has no effect with max_line_width (whisper ignores it): "
            "set one of them",
        ))  # fmt: skip
    return problems


def _real(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path


def _config_problems(cfg: Config) -> list[tuple[Loc, str]]:
    """Checks across sections: folder nesting, archive, retries, worker devices."""
    problems: list[tuple[Loc, str]] = []
    inbox, outbox = _real(cfg.inbox), _real(cfg.outbox)
    if inbox == outbox:
        problems.append((("outbox",), f"must not be the inbox ({cfg.inbox})"))
    elif outbox.is_relative_to(inbox):
        problems.append((("outbox",), f"must not be inside the inbox ({cfg.inbox})"))
    elif inbox.is_relative_to(outbox):
        problems.append((("inbox",), f"must not be inside the outbox ({cfg.outbox})"))
    jobs = cfg.jobs
    if jobs.on_success == "move" and jobs.archive_dir is None:
        problems.append((("jobs", "archive_dir"), "required when jobs.on_success is move"))
    if jobs.archive_dir is not None:
        archive = _real(jobs.archive_dir)
        for name, folder in (("inbox", inbox), ("outbox", outbox)):
            if archive.is_relative_to(folder):
                problems.append(
                    (("jobs", "archive_dir"), f"must not be inside the {name} ({folder})")
                )
    if jobs.retry_backoff_max < jobs.retry_backoff:
        problems.append((
            ("jobs", "retry_backoff_max"),
            f"must be ≥ jobs.retry_backoff ({jobs.retry_backoff:g}), "
            f"got {jobs.retry_backoff_max:g}",
        ))  # fmt: skip
    seen: dict[str, int] = {}
    for i, worker in enumerate(cfg.workers):
        device = "cuda:0" if worker.device == "cuda" else worker.device
        if device in seen:
            problems.append((
                ("workers", i, "device"),
                f"{worker.device!r} is already used by workers[{seen[device]}] "
                "(one worker per device)",
            ))  # fmt: skip
        seen.setdefault(device, i)
    return problems


def _located(problem: tuple[tuple[str, ...], str], prefix: Loc, pick: Callable[[str], bool]):
    """Place a job problem at the first involved key that ``pick`` accepts, if any."""
    keys, message = problem
    for key in keys:
        if pick(key):
            return (*prefix, *key.split(".")), message
    return None


# --- messages -----------------------------------------------------------------------------

_PLAIN_KEY = re.compile(r"[\w*?/+\-]+")


def _format_loc(loc: Loc) -> str:
    """``('folders', 'es', 'formats', 2)`` → ``folders.es.formats[2]``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next(filter(None, map(_model_in, get_args(annotation))), None)


def _known_keys(model: type[BaseModel] | None, loc: Loc) -> list[str]:
    """The keys allowed in the mapping at ``loc`` (for 'did you mean')."""
    for part in loc:
        if isinstance(part, str):
            field = model.model_fields.get(part) if model else None
            model = _model_in(field.annotation) if field else None
    return [k for k in model.model_fields if k != "path"] if model else []


def _translate(exc: ValidationError, model: type[BaseModel]) -> list[tuple[Loc, str]]:
    """Pydantic's errors as (location, readable message)."""
    import difflib

    found = []
    for err in exc.errors(include_url=False):
        loc, kind, value = tuple(err["loc"]), err["type"], err.get("input")
        if kind == "whisperd":
            message = err["ctx"]["message"]
        elif kind == "extra_forbidden":
            close = difflib.get_close_matches(str(loc[-1]), _known_keys(model, loc[:-1]), 1)
            message = "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")
        elif kind == "missing":
            message = "required"
        elif kind in ("model_type", "dict_type", "model_attributes_type"):
            message = f"must be a mapping of key: value, got {_show(value)}"
        elif kind in ("list_type", "tuple_type", "iterable_type"):
            message = f"must be a list, got {_show(value)}"
        elif kind == "too_short":
            message = "must not be empty"
        elif kind == "value_error":
            message = str(err["ctx"]["error"])
        else:
            message = f"{err['msg'][:1].lower()}{err['msg'][1:]}, got {_show(value)}"
        found.append((loc, message))
    return found


def _line(loc: Loc, message: str) -> str:
    return f"{_format_loc(loc)}: {message}" if loc else message


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


class _Loader(yaml.SafeLoader):
    """yaml.safe_load, plus an error for a key written twice in one mapping."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], int] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = (key_node.tag, key_node.value)
                if key in first:
                    seen = first[key]
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"duplicate key {key_node.value!r} (first on line {seen + 1})",
                        key_node.start_mark,
                    )
                first[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).replace("\n", " ")
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return f"YAML syntax error{where}: {problem}"


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
