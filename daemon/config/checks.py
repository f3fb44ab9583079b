"""Cross-field checks: combinations of valid values that whisper or the service cannot honour.

Run by :func:`daemon.config.load.load_config` on the loaded settings and by
:class:`daemon.config.rules.Resolver` on each folder's merged job settings.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from daemon.config.messages import Loc
from daemon.config.tables import OFFICIAL_MODELS
from daemon.config.values import model_name

if TYPE_CHECKING:
    from daemon.config.schema import Config, JobSettings


def job_problems(job: JobSettings) -> list[tuple[tuple[str, ...], str]]:
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
            f"use {name[:-3]!r}" if name[:-3] in OFFICIAL_MODELS else "use a multilingual model"
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
    problems += _speech_problems(job)
    return problems


def _speech_problems(job: JobSettings) -> list[tuple[tuple[str, ...], str]]:
    """Subtitle, VAD and guard settings that contradict each other."""
    problems: list[tuple[tuple[str, ...], str]] = []
    sub = job.subtitles
    if sub.style == "whisper" and sub.max_line_count is not None and sub.max_line_width is None:
        problems.append((
            ("subtitles.max_line_count", "subtitles.max_line_width"),
            "max_line_count has no effect without max_line_width with style whisper "
            "(whisper ignores it): set both",
        ))  # fmt: skip
    if (
        sub.style == "whisper"
        and sub.max_words_per_line is not None
        and sub.max_line_width is not None
    ):
        problems.append((
            ("subtitles.max_words_per_line", "subtitles.max_line_width"),
            "max_words_per_line has no effect with max_line_width with style whisper "
            "(whisper ignores it): set one of them",
        ))  # fmt: skip
    if sub.min_duration > sub.max_duration:
        problems.append((
            ("subtitles.min_duration", "subtitles.max_duration"),
            f"min_duration ({sub.min_duration:g} s) is longer than max_duration "
            f"({sub.max_duration:g} s)",
        ))  # fmt: skip
    vad = job.vad
    if vad.neg_threshold is not None and vad.neg_threshold >= vad.threshold:
        problems.append((
            ("vad.neg_threshold", "vad.threshold"),
            f"neg_threshold ({vad.neg_threshold:g}) must be below threshold ({vad.threshold:g})",
        ))  # fmt: skip
    return problems


def _real(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path


def config_problems(cfg: Config) -> list[tuple[Loc, str]]:
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
    problems += _library_problems(cfg)
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


def _library_problems(cfg: Config) -> list[tuple[Loc, str]]:
    """Outputs beside the source and the media server."""
    problems: list[tuple[Loc, str]] = []
    if cfg.jobs.on_success != "keep" and cfg.beside_anywhere():
        problems.append((
            ("jobs", "on_success"),
            f"must be keep where outputs_beside_source is true (on_success {cfg.jobs.on_success} "
            "would leave the subtitles without their video)",
        ))  # fmt: skip
    server = cfg.media_server
    if server.kind != "none" and server.url is None:
        problems.append((("media_server", "url"), f"required with media_server.kind {server.kind}"))
    return problems


def located(problem: tuple[tuple[str, ...], str], prefix: Loc, pick: Callable[[str], bool]):
    """Place a job problem at the first involved key that ``pick`` accepts, if any."""
    keys, message = problem
    for key in keys:
        if pick(key):
            return (*prefix, *key.split(".")), message
    return None
