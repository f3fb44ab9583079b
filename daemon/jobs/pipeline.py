"""One media file through decode → engine → outputs: shared by ``transcribe`` and the service.

The caller decides where outputs go (``out_dir``) and what the JSON's ``source`` says; the
pipeline decodes (unless handed pre-decoded audio), transcribes, names the outputs (after the
language is known, since ``output_name`` may use it) and writes them atomically. It logs one
summary line per file.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from daemon import __version__
from daemon.config import JobSettings, NameMatcher
from daemon.engines import Engine, ProgressCallback
from daemon.media import Audio, decode
from daemon.outputs import plan_outputs, write_outputs
from daemon.transcript import Transcript

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class JobResult:
    transcript: Transcript
    outputs: tuple[Path, ...]
    audio_seconds: float
    decode_seconds: float
    processing_seconds: float  # decode + transcribe + write, wall clock


def settings_record(settings: JobSettings) -> dict[str, Any]:
    """The settings as recorded in the JSON output and the ledger."""
    return settings.model_dump(mode="json")


def run(
    source: Path,
    *,
    source_label: str,
    settings: JobSettings,
    out_dir: Path,
    engine: Engine,
    is_media: NameMatcher,
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
    meta = {
        "source": source_label,
        "model": settings.model,
        "engine": transcript.engine,
        "settings": settings_record(settings),
        "audio_duration": round(audio.duration, 3),
        "processing_seconds": round(time.monotonic() - started, 3),
        "whisperd_version": __version__,
    }
    written = write_outputs(transcript, targets, subtitles=settings.subtitles, meta=meta)
    total = time.monotonic() - started
    _summary(source_label, settings, transcript, audio.duration, total, written)
    return JobResult(
        transcript=transcript,
        outputs=tuple(written),
        audio_seconds=audio.duration,
        decode_seconds=decoded - started,
        processing_seconds=total,
    )


def _summary(
    label: str,
    settings: JobSettings,
    transcript: Transcript,
    audio_seconds: float,
    total: float,
    written: list[Path],
) -> None:
    """The canonical log line of one transcribed file."""
    probability = transcript.language_probability
    log.info(
        "transcribed",
        file=label,
        model=settings.model,
        engine=transcript.engine,
        language=transcript.language,
        language_probability=round(probability, 3) if probability is not None else None,
        audio_seconds=round(audio_seconds, 2),
        processing_seconds=round(total, 2),
        realtime_factor=round(audio_seconds / total, 2) if total > 0 else None,
        outputs=[p.name for p in written],
    )
