"""One media file through decode → engine → outputs: shared by ``transcribe`` and the service.

Two halves, so that the service can record the outputs in the ledger between writing them
and publishing them (:mod:`daemon.queue.transitions`):

* :func:`transcribe`: the guards (``jobs.max_duration``, memory), the audio track
  (:func:`daemon.jobs.library.plan_track`), decoding (unless handed pre-decoded audio), the
  engine, and the move of every cue onto the video's playback clock (a track that starts
  after the video keeps its cues where the player shows them);
* :func:`stage`: names the outputs (after the language is known, since ``output_name`` may
  use it), renders every format and writes each to a fsynced temp file, and logs the one
  summary line of the file.

:func:`run` does both and publishes at once (``whisperd transcribe``). ``on_step`` hears
each step's name as it starts ("checking", "decoding", "transcribing", "writing"): with
the engine's progress and decoding's ticks, it is the worker's heartbeat.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from daemon import __version__
from daemon.config import JobSettings, JobsSettings, NameMatcher
from daemon.engines import Engine, ProgressCallback
from daemon.jobs import guards, library
from daemon.media import Audio, decode
from daemon.outputs import Staged, plan_outputs, publish, stage_outputs
from daemon.transcript import Transcript

log = structlog.get_logger(__name__)

StepCallback = Callable[[str], None]


@dataclass(frozen=True)
class Transcribed:
    """What the engine made of one file, and how long it took so far."""

    audio: Audio
    transcript: Transcript  # its times on the playback clock (see audio.offset)
    started: float  # monotonic time the job started
    decode_seconds: float
    plan: library.TrackPlan  # the track decoded and the settings used (a trusted language)


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


def transcribe(
    source: Path,
    *,
    settings: JobSettings,
    engine: Engine,
    limits: JobsSettings | None = None,
    audio: Audio | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    on_step: StepCallback = lambda step: None,
) -> Transcribed:
    """Guards, decode, engine: the transcript of ``source`` (nothing written yet)."""
    started = time.monotonic()
    plan = library.TrackPlan(None, settings)
    if audio is None:
        if limits is not None:
            on_step("checking")
            guards.check(source, limits)
        plan = library.plan_track(source, settings)
        on_step("decoding")
        audio = decode(source, stream=plan.stream, tick=lambda: on_step("decoding"))
    if limits is not None:
        guards.check(source, limits, seconds=audio.duration)
    decoded = time.monotonic()
    on_step("transcribing")
    transcript = engine.transcribe(audio, plan.settings, progress=progress, cancel=cancel)
    transcript = transcript.shifted(audio.offset)
    return Transcribed(audio, transcript, started, decoded - started, plan)


def stage(
    source: Path,
    done: Transcribed,
    *,
    source_label: str,
    settings: JobSettings,
    out_dir: Path,
    is_media: NameMatcher,
) -> list[Staged]:
    """Every requested format of ``done`` in fsynced temp files beside their final names."""
    transcript, audio = done.transcript, done.audio
    targets = plan_outputs(source, settings, out_dir, transcript.language, is_media)
    meta = {
        "source": source_label,
        "model": settings.model,
        "engine": transcript.engine,
        "settings": settings_record(done.plan.settings),
        "audio_duration": round(audio.duration, 3),
        "processing_seconds": round(time.monotonic() - done.started, 3),
        "whisperd_version": __version__,
        "audio_stream": library.track_record(done.plan, audio),
        "playback_offset": round(audio.offset, 3),
    }
    staged = stage_outputs(transcript, targets, subtitles=settings.subtitles, meta=meta)
    _summary(source_label, settings, done, [s.path for s in staged])
    return staged


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
    done = transcribe(source, settings=settings, engine=engine, audio=audio,
                      progress=progress, cancel=cancel)  # fmt: skip
    staged = stage(source, done, source_label=source_label, settings=settings,
                   out_dir=out_dir, is_media=is_media)  # fmt: skip
    written = publish(staged)
    return JobResult(
        transcript=done.transcript,
        outputs=tuple(written),
        audio_seconds=done.audio.duration,
        decode_seconds=done.decode_seconds,
        processing_seconds=time.monotonic() - done.started,
    )


def _summary(label: str, settings: JobSettings, done: Transcribed, written: list[Path]) -> None:
    """The canonical log line of one transcribed file."""
    transcript, seconds = done.transcript, done.audio.duration
    total = time.monotonic() - done.started
    probability = transcript.language_probability
    log.info(
        "transcribed",
        file=label,
        model=settings.model,
        engine=transcript.engine,
        language=transcript.language,
        language_probability=round(probability, 3) if probability is not None else None,
        audio_seconds=round(seconds, 2),
        processing_seconds=round(total, 2),
        realtime_factor=round(seconds / total, 2) if total > 0 else None,
        audio_stream=done.audio.stream_index,
        playback_offset=round(done.audio.offset, 3),
        outputs=[p.name for p in written],
    )
