"""The faster-whisper engine: the same models through CTranslate2, several times faster on CPU.

It is invisible except for speed: it takes our decoded 16 kHz audio (never a path, so media
errors stay ours), maps every job setting onto ``WhisperModel.transcribe`` and returns the
same :class:`Transcript` as the openai-whisper engine. faster-whisper yields segments lazily:
progress is the end of the last segment over the duration, and the cancel event is checked
between segments.

faster-whisper is an optional dependency (``pip install 'whisperd[faster]'``); it is imported
when the engine is created, never when this module is.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from daemon.config import JobSettings
from daemon.engines import speech as speech_path
from daemon.engines.base import AudioInput, CachedEngine, Cancelled, ProgressCallback
from daemon.errors import (
    EngineError,
    EngineUnavailableError,
    ModelDownloadError,
    ModelError,
    OutOfMemoryError,
)
from daemon.models import CacheKey, ModelCache, official_filename, resolve_ct2
from daemon.transcript import Region, Segment, Transcript, Word

log = structlog.get_logger(__name__)

NAME = "faster-whisper"


def require_package() -> None:
    """Raise EngineUnavailableError unless faster-whisper can be imported."""
    try:
        import faster_whisper  # noqa: F401
    except ImportError:
        raise EngineUnavailableError(
            "engine faster-whisper needs the faster-whisper package: pip install 'whisperd[faster]'"
        ) from None


def pick_device(device: str) -> tuple[str, int]:
    """CTranslate2's (device, index) for a configured device; auto is cuda when there is one."""
    import ctranslate2

    gpus = ctranslate2.get_cuda_device_count()
    if device == "auto":
        return ("cuda", 0) if gpus > 0 else ("cpu", 0)
    if device == "cpu":
        return "cpu", 0
    index = int(device.partition(":")[2] or 0)
    if index >= gpus:
        raise EngineUnavailableError(
            f"device {device!r} is configured but CTranslate2 sees {gpus} CUDA device(s)",
            hint="set device: auto or cpu, or install CTranslate2 with CUDA support",
        )
    return "cuda", index


def pick_compute_type(compute_type: str, device: str, index: int = 0) -> str:
    """``auto`` → float16 on CUDA, int8 on CPU; refuses types the device cannot run."""
    import ctranslate2

    if compute_type == "auto":
        compute_type = "float16" if device == "cuda" else "int8"
    if compute_type == "default":
        return compute_type
    supported = ctranslate2.get_supported_compute_types(device, index)
    if compute_type not in supported:
        raise EngineUnavailableError(
            f"compute_type {compute_type} is not supported on {device} "
            f"(supported: {', '.join(sorted(supported))})",
            hint="set compute_type: auto",
        )
    return compute_type


def transcribe_options(settings: JobSettings, *, clipped: bool = False) -> dict[str, Any]:
    """The job settings as ``WhisperModel.transcribe`` keyword arguments.

    On speech clips (``clipped``), the no-speech gate is off (see the openai engine).
    """
    return {
        "language": settings.language,
        "task": settings.task,
        "beam_size": settings.beam_size or 1,  # null = greedy, as in openai-whisper
        "best_of": settings.best_of,
        "temperature": list(settings.temperature),
        "compression_ratio_threshold": settings.compression_ratio_threshold,
        "log_prob_threshold": settings.logprob_threshold,
        "no_speech_threshold": None if clipped else settings.no_speech_threshold,
        "condition_on_previous_text": settings.condition_on_previous_text,
        "initial_prompt": settings.initial_prompt,
        "word_timestamps": settings.needs_word_timestamps,
        "hallucination_silence_threshold": settings.guard.hallucination_silence_threshold,
        "vad_filter": False,  # whisperd detects speech itself (daemon.media.vad)
    }


def load(
    model: str, device: str, index: int, compute_type: str, cpu_threads: int, cache: ModelCache
) -> Any:
    """A faster_whisper.WhisperModel for a configured model (fetched from the hub if official)."""
    from faster_whisper import WhisperModel

    path = resolve_ct2(model, cache.model_dir, cache.base_dir)
    if path is None:
        path = _download(model, cache.model_dir)
    if not (path / "tokenizer.json").is_file():
        raise ModelError(
            f"{path} has no tokenizer.json, which faster-whisper would fetch from the network",
            hint="copy tokenizer.json from the model's faster-whisper release into it",
        )
    started = time.monotonic()
    try:
        loaded = WhisperModel(
            str(path),
            device=device,
            device_index=index,
            compute_type=compute_type,
            cpu_threads=cpu_threads,
        )
    except RuntimeError as err:
        if "out of memory" in str(err).lower():
            raise _oom(device, model) from None
        raise ModelError(f"{path}: not a loadable CTranslate2 Whisper model ({err})") from None
    except (OSError, ValueError) as err:
        raise ModelError(f"{path}: not a loadable CTranslate2 Whisper model ({err})") from None
    log.debug(
        "model loaded", model=model, engine=NAME, device=device, compute_type=compute_type,
        seconds=round(time.monotonic() - started, 2),
    )  # fmt: skip
    return loaded


def _download(model: str, model_dir: Path) -> Path:
    """An official model's CTranslate2 release from the Hugging Face hub, cached in model_dir."""
    from faster_whisper.utils import download_model

    started = time.monotonic()
    try:
        path = Path(download_model(model, cache_dir=str(model_dir)))
    except (OSError, ValueError) as err:  # huggingface_hub's errors are OSErrors
        reason = " ".join(str(err).split())[:160]
        pt_only = (model_dir / f"{model}.pt").is_file() or (
            model_dir / official_filename(model)
        ).is_file()
        held = " (only as an openai-whisper .pt, which it cannot read)" if pt_only else ""
        raise ModelDownloadError(
            f"model {model!r} is not in {model_dir} as a CTranslate2 directory{held} and "
            f"downloading it from the Hugging Face hub failed ({reason})",
            hint="without a network, import a CTranslate2 copy with "
            f"'whisperd models import DIR... --name {model}'",
        ) from None
    seconds = round(time.monotonic() - started, 2)
    log.info("model downloaded", model=model, engine=NAME, seconds=seconds)
    return path


def _oom(device: str, model: str) -> OutOfMemoryError:
    return OutOfMemoryError(
        f"{device} ran out of memory with model {model!r}",
        hint="the job is retried later; use a smaller model, compute_type int8_float16 or "
        "fewer workers per GPU",
    )


class FasterWhisperEngine(CachedEngine):
    """faster-whisper's ``WhisperModel.transcribe`` (or its batched pipeline)."""

    name = NAME

    def __init__(self, cache: ModelCache) -> None:
        require_package()
        super().__init__(cache)

    def transcribe(
        self,
        audio: AudioInput,
        settings: JobSettings,
        *,
        speech: Sequence[Region] | None = None,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> Transcript:
        device, index = pick_device(settings.device)
        compute_type = pick_compute_type(settings.compute_type, device, index)
        where = f"cuda:{index}" if device == "cuda" else device
        key = CacheKey(self.name, settings.model, where, compute_type, settings.cpu_threads)
        model = self.cache.get_for(key, lambda: load(settings.model, device, index, compute_type,
                                                     settings.cpu_threads, self.cache))  # fmt: skip
        options = transcribe_options(settings, clipped=speech is not None)
        started = time.monotonic()
        if cancel is not None and cancel.is_set():
            raise Cancelled("transcription cancelled")
        try:
            language, probability = _language(settings, model, audio.samples, speech)
            options["language"] = language
            if settings.batch_size > 1:
                collected = _batched(model, audio, settings, options, speech, progress, cancel)
            else:

                def call(samples: np.ndarray, clips: list[float] | None, report) -> list:
                    clip = clips if clips is not None else "0"
                    found, _ = model.transcribe(samples, clip_timestamps=clip, **options)
                    return _collect(found, len(samples) / 16000, report, cancel)

                collected = speech_path.transcribe(audio.samples, speech, call, progress)
        except RuntimeError as err:
            if "out of memory" in str(err).lower():
                raise _oom(where, settings.model) from None
            raise EngineError(f"faster-whisper failed: {err}") from err
        except ValueError as err:
            raise EngineError(f"faster-whisper failed: {err}") from err
        if progress is not None:
            progress(1.0)
        return Transcript(
            text="".join(s.text for s in collected).strip(),
            language=language,
            language_probability=probability,
            segments=tuple(collected),
            duration=audio.duration,
            model=settings.model,
            engine=self.name,
            extra={
                "device": where,
                "compute_type": compute_type,
                "batch_size": settings.batch_size,
                "seconds": time.monotonic() - started,
            },
        )


def _batched(
    model: Any,
    audio: AudioInput,
    settings: JobSettings,
    options: dict[str, Any],
    speech: Sequence[Region] | None,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
) -> list[Segment]:
    """faster-whisper's batched pipeline: the speech clips at once, or its own VAD's cuts."""
    from faster_whisper import BatchedInferencePipeline

    if speech is not None:
        stretches = speech_path.plan(speech, audio.duration, max_clip=speech_path.WINDOW)
        clips = [c for s in stretches for c in s.clips]
        if not clips:
            return []
        options["clip_timestamps"] = [{"start": s, "end": e} for s, e in clips]
    else:
        options["vad_filter"] = True  # batches are cut at pauses by faster-whisper's VAD
    options.pop("condition_on_previous_text", None)  # batches have no previous text
    found, _ = BatchedInferencePipeline(model).transcribe(
        audio.samples, batch_size=settings.batch_size, **options
    )
    segments = _collect(found, audio.duration, progress, cancel)
    return [replace(s, id=k) for k, s in enumerate(segments)]


def _language(
    settings: JobSettings, model: Any, samples: np.ndarray, speech: Sequence[Region] | None
) -> tuple[str, float | None]:
    """The configured language, English for an English-only model, else the detected one.

    Detection is faster-whisper's, on the first 30 s of speech (of the file without speech
    detection), once per file: every stretch is then transcribed in that language.
    """
    if settings.language is not None:
        return settings.language, None
    if not model.model.is_multilingual:
        return "en", None
    heard = samples if speech is None else speech_path.speech_audio(samples, speech, 30)
    language, probability, _ = model.detect_language(audio=heard)
    return language, float(probability)


def _collect(
    segments: Iterable[Any],
    duration: float,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
) -> tuple[Segment, ...]:
    """Run faster-whisper's lazy segments, reporting progress and honouring cancellation.

    Times are clipped to the audio: faster-whisper may end the last segment on the model's
    timestamp token past the end of the file, where openai-whisper stops at the audio.
    """

    def clip(seconds: float) -> float:
        return min(float(seconds), duration)

    collected: list[Segment] = []
    for item in segments:
        words = None
        if item.words is not None:
            words = tuple(
                Word(start=clip(w.start), end=clip(w.end), word=w.word,
                     probability=float(w.probability))
                for w in item.words
            )  # fmt: skip
        collected.append(
            Segment(
                id=len(collected),  # 0-based, as openai-whisper numbers them
                start=clip(item.start),
                end=clip(item.end),
                text=item.text,
                words=words,
                avg_logprob=float(item.avg_logprob),
                no_speech_prob=float(item.no_speech_prob),
                compression_ratio=float(item.compression_ratio),
                temperature=None if item.temperature is None else float(item.temperature),
            )
        )
        if cancel is not None and cancel.is_set():
            raise Cancelled("transcription cancelled")
        if progress is not None and duration > 0:
            progress(min(1.0, float(item.end) / duration))
    return tuple(collected)
