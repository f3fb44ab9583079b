"""The configuration schema: frozen pydantic models with a description on every field.

The schema is the single source for config/whisperd.yaml (a test keeps the annotated file in
step). Settings are frozen: the settings of one folder are *derived* from the defaults and
the folder rules (:mod:`daemon.config.rules`), never mutated; a changed configuration is a
new :class:`Config` (:mod:`daemon.config.load`). The settings whose default depends on the
output mode (``outputs_beside_source``) and their value types are in :mod:`.library`; the
sections of the subtitle path in :mod:`.speech`, of operating it in :mod:`.operate`, of the
media server, the ledger and the node in :mod:`.servers`.

Long: one declarative table of every setting with its description, the reference that
config/whisperd.yaml is checked against; split in two it would only be harder to read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, Field, PrivateAttr, model_validator

from daemon.config.languages import code_for, is_whisper_code
from daemon.config.library import (
    MODE_DEFAULTS,
    AudioLanguages,
    JobOrder,
    LanguageCode,
    OptionalFlag,
    OptionalFormats,
    OptionalOutputName,
)
from daemon.config.operate import MetricsSettings, NotifyTarget
from daemon.config.servers import LedgerSettings, MediaServerSettings, NodeSettings
from daemon.config.speech import GuardSettings, SubtitleSettings, VadSettings
from daemon.config.tables import IGNORE_PATTERNS, MEDIA_PATTERNS
from daemon.config.values import (
    ComputeTypeName,
    Count,
    Device,
    EngineName,
    Flag,
    Folder,
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
    PollMode,
    Positive,
    ReadyMarker,
    Seconds,
    Section,
    SuccessAction,
    TaskName,
    Temperatures,
    Threads,
    model_name,
    non_empty,
)
from daemon.errors import OutputPathError

# --- the schema ---------------------------------------------------------------------------


class JobSettings(Section):
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
    formats: OptionalFormats = Field(
        None,
        description="Outputs to write: txt, srt, vtt, tsv, json, or [all]; null: all five, "
        "or [srt] when outputs_beside_source.",
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
    output_name: OptionalOutputName = Field(
        None,
        description="Output file name without extension; placeholders {stem} {ext} "
        "{language} {model} {task}; null: '{stem}', or '{stem}.{language}' when "
        "outputs_beside_source.",
    )
    outputs_beside_source: Flag = Field(
        False,
        description="Write outputs (and .error.txt) into the source's own folder, named as "
        "media players look for subtitles (Movie (2004).en.srt), instead of the outbox.",
    )
    language_code: LanguageCode = Field(
        None,
        description="How {language} is written: whisper (Whisper's code), iso639-1 (en) or "
        "iso639-2 (eng, ger: the /B codes Plex documents); null: whisper, or iso639-1 when "
        "outputs_beside_source.",
    )
    skip_if_subtitles: OptionalFlag = Field(
        None,
        description="Skip a video that already has subtitles in its language (a file beside "
        "it or an embedded stream); null: true when outputs_beside_source, else false.",
    )
    error_files: Flag = Field(
        True, description="Write an .error.txt for a file that failed; false: status only."
    )
    audio_language: AudioLanguages = Field(
        (),
        description="Audio track to transcribe, by its language tag, in order of preference "
        "([ja, en]); no match (or []): the default track, else the first.",
    )
    trust_track_language: Flag = Field(
        False,
        description="With language null, use the chosen audio track's language tag instead "
        "of detecting the language (untagged tracks are still detected).",
    )

    _auto: frozenset[str] = PrivateAttr(frozenset())

    @model_validator(mode="after")
    def _mode_defaults(self) -> JobSettings:
        """Fill the settings left null ("auto") with the value of the output mode."""
        auto = frozenset(key for key in MODE_DEFAULTS if getattr(self, key) is None)
        for key in auto:
            self.__dict__[key] = MODE_DEFAULTS[key][int(self.outputs_beside_source)]
        self._auto = auto
        return self

    def raw(self) -> dict[str, Any]:
        """The settings as written: "auto" ones null again (what folder rules merge over)."""
        values = self.model_dump()
        values.update(dict.fromkeys(self._auto))
        return values

    def language_label(self, language: str | None) -> str:
        """``{language}`` in output names: ``language`` (or the configured one) as
        ``language_code`` says; ``und`` when neither is known."""
        code = language or self.language
        if not code:
            return "und"
        if self.language_code == "whisper" or not is_whisper_code(code):
            return code
        return code_for(code, self.language_code)  # type: ignore[arg-type]

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
            "language": self.language_label(language),
            "model": model_name(self.model),
            "task": self.task,
        }
        name = str(self.output_name).format_map(values)
        if name in ("", ".", "..") or any(c in name for c in "/\\\0"):
            raise OutputPathError(
                f"output_name {self.output_name!r} gives the unusable name {name!r} "
                f"for {stem}.{values['ext']}",
                hint="change output_name in the configuration",
            )
        return name


class WatchSettings(Section):
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


class JobsSettings(Section):
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
    history_days: OptionalPositive = Field(
        90.0,
        description="Days the ledger keeps done and failed rows of files no longer in the "
        "inbox (pruned daily; the file is vacuumed when worthwhile); null: forever.",
    )
    order: JobOrder = Field(
        "oldest",
        description="Which waiting file runs first: oldest (first queued) or newest (the "
        "file modified last; for libraries: new episodes before the back catalogue).",
    )


class WorkerSettings(Section):
    """One worker: one device, one job at a time."""

    device: Device = Field("auto", description="Device of this worker: auto, cpu, cuda, cuda:N.")


class ModelsSettings(Section):
    """Model cache."""

    cache_size: Count = Field(
        1, description="Models each worker keeps loaded (least recently used goes)."
    )
    unload_after: OptionalPositive = Field(
        600.0,
        description="Seconds a worker may stay idle before its models are unloaded (memory "
        "and GPU memory released; the next job loads again); null: keep them loaded.",
    )


class LogSettings(Section):
    """Logging."""

    level: LogLevel = Field("info", description="debug, info, warning or error.")
    format: LogFormat = Field(
        "auto", description="auto (json when stdout is not a terminal), json or console."
    )


class Config(Section):
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
        description="Where outputs go, mirroring the inbox's subfolders (unused where "
        "outputs_beside_source).",
    )
    state_dir: Folder = Field(
        "../var",
        validate_default=True,
        description="The lock file and the SQLite ledger; must be on a local disk.",
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
    media_server: MediaServerSettings = Field(
        default_factory=MediaServerSettings,
        description="A Jellyfin, Emby or Plex server to tell about subtitles written beside "
        "videos.",
    )
    ledger: LedgerSettings = Field(
        default_factory=LedgerSettings, description="The job ledger's backend."
    )
    node: NodeSettings = Field(
        default_factory=NodeSettings, description="This server, when several share a ledger."
    )
    log: LogSettings = Field(default_factory=LogSettings, description="Logging.")
    metrics: MetricsSettings | None = Field(
        default_factory=MetricsSettings,
        description="HTTP listener for Prometheus metrics, /api/status and the status page; "
        "null: off.",
    )
    notify: tuple[NotifyTarget, ...] = Field(
        (), description="Notification targets (webhook or apprise), each with the events it wants."
    )

    def beside_anywhere(self) -> bool:
        """Whether some folder writes its outputs beside its sources."""
        return self.defaults.outputs_beside_source or any(
            rule.get("outputs_beside_source") for rule in self.folders.values()
        )

    def uses_outbox(self) -> bool:
        """Whether some folder writes into the outbox (else it is never created)."""
        return not self.defaults.outputs_beside_source or any(
            rule.get("outputs_beside_source") is False for rule in self.folders.values()
        )
