"""One media file through decode → engine → outputs: shared by ``transcribe`` and the service.

The caller decides where outputs go (``out_dir``) and what the JSON's ``source`` says; the
pipeline decodes (unless handed pre-decoded audio), transcribes, names the outputs (after the
language is known, since ``output_name`` may use it) and writes them atomically. It logs one
summary line per file.
"""

from __future__ import annotations

import fnmatch
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from daemon import __version__, outputs
from daemon.audio import Audio, decode
from daemon.config import JobSettings
from daemon.engine import Engine, ProgressCallback
from daemon.transcript import Transcript

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class JobResult:
    transcript: Transcript
    outputs: tuple[Path, ...]
    audio_seconds: float
    decode_seconds: float
    processing_seconds: float  # decode + transcribe + write, wall clock


def media_matcher(include: Sequence[str]) -> Callable[[str], bool]:
    """A case-insensitive test of a file name against the watch.include globs."""
    patterns = [p.lower() for p in include]
    return lambda name: any(fnmatch.fnmatchcase(name.lower(), p) for p in patterns)


def plan_outputs(
    source: Path,
    settings: JobSettings,
    out_dir: Path,
    language: str | None,
    is_media: Callable[[str], bool],
) -> dict[str, Path]:
    """The output file of each requested format for ``source`` (no I/O beyond listing siblings)."""
    stem = source_stem(source, is_media)
    name = outputs.fit_stem(settings.output_stem(stem, source.suffix, language))
    return outputs.output_paths(out_dir, name, settings.formats)


def source_stem(source: Path, is_media: Callable[[str], bool]) -> str:
    """The stem of ``source``'s outputs: its full name when a sibling has the same stem."""
    try:
        siblings = os.listdir(source.parent)
    except OSError:
        siblings = []
    return outputs.source_stem(source, outputs.colliding_stem(source, siblings, is_media))


def settings_record(settings: JobSettings) -> dict:
    """The settings as recorded in the JSON output and the ledger."""
    return settings.model_dump(mode="json")


def run(
    source: Path,
    *,
    source_label: str,
    settings: JobSettings,
    out_dir: Path,
    engine: Engine,
    is_media: Callable[[str], bool],
    audio: Audio | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> JobResult:
    """Transcribe ``source`` and write every requested format into ``out_dir``."""
    started = time.monotonic()
    if audio is None:
        audio = decode(source)
    decoded = time.monotonic()
    transcript = engine.transcribe(audio, settings, progress=progress, cancel=cancel)
    targets = plan_outputs(source, settings, out_dir, transcript.language, is_media)
    elapsed = time.monotonic() - started
    meta = {
        "source": source_label,
        "model": settings.model,
        "engine": transcript.engine,
        "settings": settings_record(settings),
        "audio_duration": round(audio.duration, 3),
        "processing_seconds": round(elapsed, 3),
        "whisperd_version": __version__,
    }
    written = outputs.write_outputs(transcript, targets, subtitles=settings.subtitles, meta=meta)
    total = time.monotonic() - started
    log.info(
        "transcribed",
        file=source_label,
        model=settings.model,
        engine=transcript.engine,
        language=transcript.language,
        language_probability=(
            round(transcript.language_probability, 3)
            if transcript.language_probability is not None
            else None
        ),
        audio_seconds=round(audio.duration, 2),
        processing_seconds=round(total, 2),
        realtime_factor=round(audio.duration / total, 2) if total > 0 else None,
        outputs=[p.name for p in written],
    )
    return JobResult(
        transcript=transcript,
        outputs=tuple(written),
        audio_seconds=audio.duration,
        decode_seconds=decoded - started,
        processing_seconds=total,
    )
