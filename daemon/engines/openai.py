"""The openai-whisper engine: openai-whisper's ``transcribe`` on torch, fp16 on CUDA.

Progress, cancellation and the heartbeat ride on two seams of openai-whisper, installed by
:mod:`daemon.engines.openai_hooks`: its progress bar (once per 30-second window) and a
forward pre-hook on the model's encoder and decoder (every forward pass: a cancel is noticed
within one decoding step, and the heartbeat moves while a slow window decodes). The steps
around them (model load, language detection) report when they end.

With speech regions, the engine runs once per continuous stretch of speech, with
``clip_timestamps`` (:mod:`daemon.engines.speech`), and detects the language on the first
30 s of speech rather than of the file (which may open with music).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import structlog

from daemon.config import JobSettings
from daemon.engines import speech as speech_path
from daemon.engines.base import AudioInput, CachedEngine, Cancelled, ProgressCallback
from daemon.engines.openai_hooks import hooked
from daemon.engines.speech import speech_audio
from daemon.errors import EngineError, EngineUnavailableError, OutOfMemoryError
from daemon.models import pick_device
from daemon.transcript import Region, Segment, Transcript, Word

log = structlog.get_logger(__name__)


# --- the openai-whisper engine -------------------------------------------------------------


class OpenAIWhisperEngine(CachedEngine):
    """openai-whisper's ``transcribe``: fp16 on CUDA, fp32 on CPU."""

    name = "openai-whisper"

    def transcribe(
        self,
        audio: AudioInput,
        settings: JobSettings,
        *,
        speech: Sequence[Region] | None = None,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> Transcript:
        import torch

        beat = progress or (lambda fraction: None)
        device = pick_device(settings.device)
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise EngineUnavailableError(
                f"device {device!r} is configured but CUDA is not available",
                hint="set device: auto or cpu, or install a CUDA build of torch",
            )
        fp16 = device.startswith("cuda")
        started = time.monotonic()
        listener: list[ProgressCallback] = [beat]  # the hooks report to the current call
        try:
            model = self.cache.get(settings.model, device)
            beat(0.0)  # the model is loaded: a sign of life before the first window
            with hooked(model, lambda fraction: listener[0](fraction), cancel):
                if cancel is not None and cancel.is_set():
                    raise Cancelled("transcription cancelled")
                heard = audio.samples if speech is None else speech_audio(audio.samples, speech, 30)
                language, probability = self._language(model, heard, settings, fp16)
                beat(0.0)
                options = _options(settings, language, fp16, clipped=speech is not None)

                def call(samples: np.ndarray, clips: list[float] | None, report) -> list:
                    listener[0] = report
                    clip = clips if clips is not None else "0"
                    result = whisper_transcribe(model, samples, clip_timestamps=clip, **options)
                    return _segments(result)

                segments = speech_path.transcribe(audio.samples, speech, call, beat)
        except torch.cuda.OutOfMemoryError:
            raise OutOfMemoryError(
                f"{device} ran out of memory with model {settings.model!r}",
                hint="the job is retried later; use a smaller model or fewer workers per GPU",
            ) from None
        except (RuntimeError, ValueError) as err:
            raise EngineError(f"openai-whisper failed: {err}") from err
        beat(1.0)
        return Transcript(
            text="".join(s.text for s in segments).strip(),
            language=language,
            language_probability=probability,
            segments=tuple(segments),
            duration=audio.duration,
            model=settings.model,
            engine=self.name,
            extra={"device": device, "fp16": fp16, "seconds": time.monotonic() - started},
        )

    @staticmethod
    def _language(
        model: Any, samples: np.ndarray, settings: JobSettings, fp16: bool
    ) -> tuple[str, float | None]:
        """The configured language, or the detected one with its probability.

        Detection is openai-whisper's (the first 30 s of the padded log-mel), done here so
        that the probability is kept; with speech detection, on the first 30 s of speech.
        """
        if settings.language is not None:
            return settings.language, None
        if not model.is_multilingual:
            return "en", None
        import torch
        from whisper.audio import N_FRAMES, N_SAMPLES, log_mel_spectrogram, pad_or_trim

        mel = log_mel_spectrogram(samples, model.dims.n_mels, padding=N_SAMPLES)
        segment = pad_or_trim(mel, N_FRAMES).to(model.device)
        segment = segment.to(torch.float16 if fp16 else torch.float32)
        _, probs = model.detect_language(segment)
        language = max(probs, key=probs.get)
        return language, float(probs[language])


def whisper_transcribe(model: Any, samples: np.ndarray, **options: Any) -> dict[str, Any]:
    """``whisper.transcribe`` itself (a seam for the tests)."""
    import whisper

    return whisper.transcribe(model, samples, **options)


def _options(settings: JobSettings, language: str, fp16: bool, *, clipped: bool) -> dict:
    """openai-whisper's ``transcribe`` options for the job's settings.

    On speech clips (``clipped``), the no-speech gate is off: it would drop a whole clip,
    and a short clip padded to 30 s looks like silence to it; the guard judges segments.
    """
    return {
        "verbose": None,
        "language": language,
        "task": settings.task,
        "temperature": settings.temperature,
        "beam_size": settings.beam_size,
        "best_of": settings.best_of,
        "compression_ratio_threshold": settings.compression_ratio_threshold,
        "logprob_threshold": settings.logprob_threshold,
        "no_speech_threshold": None if clipped else settings.no_speech_threshold,
        "condition_on_previous_text": settings.condition_on_previous_text,
        "initial_prompt": settings.initial_prompt,
        "word_timestamps": settings.needs_word_timestamps,
        "hallucination_silence_threshold": settings.guard.hallucination_silence_threshold,
        "fp16": fp16,
    }


def _segments(result: dict[str, Any]) -> list[Segment]:
    """openai-whisper's result segments as ours."""
    segments = []
    for item in result["segments"]:
        words = None
        if "words" in item:
            words = tuple(
                Word(start=float(w["start"]), end=float(w["end"]), word=w["word"],
                     probability=float(w["probability"]))
                for w in item["words"]
            )  # fmt: skip
        segments.append(
            Segment(
                id=int(item["id"]),
                start=float(item["start"]),
                end=float(item["end"]),
                text=item["text"],
                words=words,
                avg_logprob=float(item["avg_logprob"]),
                no_speech_prob=float(item["no_speech_prob"]),
                compression_ratio=float(item["compression_ratio"]),
                temperature=float(item["temperature"]),
            )
        )
    return segments
