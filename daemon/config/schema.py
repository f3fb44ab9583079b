"""The configuration schema: frozen pydantic models with a description on every field.

The schema is the single source for config/whisperd.yaml (a test keeps the annotated file in
step). Settings are frozen: the settings of one folder are *derived* from the defaults and
the folder rules (:mod:`daemon.config.rules`), never mutated; a changed configuration is a
new :class:`Config` (:mod:`daemon.config.load`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from daemon.config.speech import GuardSettings, SubtitleSettings, VadSettings
from daemon.config.tables import FORMATS, IGNORE_PATTERNS, MEDIA_PATTERNS
from daemon.config.values import (
    ComputeTypeName,
    Count,
    Device,
    EngineName,
    Flag,
    Folder,
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
    ReadyMarker,
    Seconds,
    SuccessAction,
    TaskName,
    Temperatures,
    Threads,
    model_name,
    non_empty,
)
from daemon.errors import OutputPathError

# --- the schema ---------------------------------------------------------------------------


class _Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


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
        0.6,
        description="Treat a window as silence above this no-speech probability (vad off; "
        "with vad on, guard.no_speech_prob judges each segment instead); null: off.",
    )
    initial_prompt: OptionalText = Field(
        None, description="Text to prime the first window (names, spelling, style); null: none."
    )
    condition_on_previous_text: Flag = Field(
        True, description="Feed each window's text to the next (consistent, may loop)."
    )
    word_timestamps: Flag = Field(
        False, description="Time every word (json); readable srt/vtt turn it on anyway."
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
    vad: VadSettings = Field(
        default_factory=VadSettings,
        description="Speech detection before the engine; a folder rule may set some keys.",
    )
    guard: GuardSettings = Field(
        default_factory=GuardSettings,
        description="The hallucination guard after the engine; a folder rule may set some keys.",
    )
    subtitles: SubtitleSettings = Field(
        default_factory=SubtitleSettings,
        description="How srt and vtt cues are cut; a folder rule may set some keys.",
    )
    ready_marker: ReadyMarker = Field(
        None,
        description="A file that says another is complete: '{name}.ready' (per file, "
        "removed after success) or a pattern like '*.done' (for the folder, removed once "
        "its files are done); files wait until it exists. null: not used.",
    )
    output_name: OutputName = Field(
        "{stem}",
        description="Output file name without extension; placeholders {stem} {ext} "
        "{language} {model} {task}.",
    )

    @property
    def needs_word_timestamps(self) -> bool:
        """True when word timings must be computed: asked for, or needed by the subtitles.

        Readable cues are built from words whenever srt or vtt is written; whisper's cues
        need them for its wrap options; the engines' hallucination_silence_threshold too.
        """
        sub = self.subtitles
        subtitles = "srt" in self.formats or "vtt" in self.formats
        if sub.style == "readable":
            by_style = subtitles
        else:
            wrap = (sub.max_line_width, sub.max_line_count, sub.max_words_per_line)
            by_style = sub.highlight_words or any(v is not None for v in wrap)
        return (
            self.word_timestamps
            or by_style
            or self.guard.hallucination_silence_threshold is not None
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
        5.0,
        description="Seconds a file's size and time must stay unchanged before a job starts, "
        "where nothing better tells that it is complete (see the README's guarantees).",
    )
    network_stable_seconds: Seconds = Field(
        30.0,
        description="The same, at least, for an inbox on a network filesystem (SMB, NFS): "
        "writers on other machines are invisible and NFS caches file attributes for up to "
        "60 s (acregmax), so a pause in a copy looks like its end for longer there.",
    )
    incomplete_timeout: Positive = Field(
        3600.0,
        description="Seconds a file found incomplete (a cut MP4, a WAV shorter than its "
        "header says) may stay unchanged before it fails with an .error.txt.",
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
    crash_limit: Count = Field(
        2,
        description="Times the service may stop (killed, out of memory, crashed) while a file "
        "is being transcribed before that file fails instead of being tried again.",
    )
    max_duration: OptionalPositive = Field(
        21600.0, description="Longest audio, in seconds, a file may hold; null: no limit."
    )
    memory_check: Flag = Field(
        True,
        description="Before decoding, compare the memory a file's audio needs (about 0.42 GB "
        "an hour) with the memory available, and retry later instead of running out.",
    )
    stall_timeout: Positive = Field(
        900.0,
        description="Seconds a running job may show no sign of life before the service "
        "stops feeding systemd's watchdog (which then restarts it).",
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


class Config(_Settings):
    """The whole configuration: paths (absolute), job defaults, folder rules, service settings."""

    path: Path = Field(description="The configuration file these settings were loaded from.")
    notices: tuple[str, ...] = Field(
        (),
        description="What the loader read from deprecated settings (shown as warnings); set "
        "by the loader, like path.",
    )
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
    workers: Annotated[tuple[WorkerSettings, ...], AfterValidator(non_empty)] = Field(
        default_factory=lambda: (WorkerSettings(),),
        description="One worker per device, each running one job at a time.",
    )
    models: ModelsSettings = Field(default_factory=ModelsSettings, description="Model cache.")
    log: LogSettings = Field(default_factory=LogSettings, description="Logging.")
