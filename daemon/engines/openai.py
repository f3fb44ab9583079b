"""The openai-whisper engine: openai-whisper's ``transcribe`` on torch, fp16 on CUDA.

Progress, cancellation and the heartbeat ride on two seams of openai-whisper, installed by
:mod:`daemon.engines.openai_hooks`: its progress bar (once per 30-second window) and a
forward pre-hook on the model's encoder and decoder (every forward pass: a cancel is noticed
within one decoding step, and the heartbeat moves while a slow window decodes). The steps
around them (model load, language detection) report when they end.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import structlog

from daemon.config import JobSettings
from daemon.engines.base import AudioInput, CachedEngine, Cancelled, ProgressCallback
from daemon.engines.openai_hooks import hooked
from daemon.errors import EngineError, EngineUnavailableError, OutOfMemoryError
from daemon.models import pick_device
from daemon.transcript import Segment, Transcript, Word

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
        try:
            model = self.cache.get(settings.model, device)
            beat(0.0)  # the model is loaded: a sign of life before the first window
            with hooked(model, progress, cancel):
                if cancel is not None and cancel.is_set():
                    raise Cancelled("transcription cancelled")
                language, probability = self._language(model, audio.samples, settings, fp16)
                beat(0.0)
                result = _run(model, audio, settings, language, fp16)
        except torch.cuda.OutOfMemoryError:
            raise OutOfMemoryError(
                f"{device} ran out of memory with model {settings.model!r}",
                hint="the job is retried later; use a smaller model or fewer workers per GPU",
            ) from None
        except (RuntimeError, ValueError) as err:
            raise EngineError(f"openai-whisper failed: {err}") from err
        beat(1.0)
        return _to_transcript(
            result,
            language=language,
            probability=probability,
            duration=audio.duration,
            model=settings.model,
            extra={"device": device, "fp16": fp16, "seconds": time.monotonic() - started},
        )

    @staticmethod
    def _language(
        model: Any, samples: np.ndarray, settings: JobSettings, fp16: bool
    ) -> tuple[str, float | None]:
        """The configured language, or the detected one with its probability.

        Detection is exactly openai-whisper's (first 30 s of the padded log-mel), done here so
        that the probability is kept.
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


def _run(
    model: Any, audio: AudioInput, settings: JobSettings, language: str, fp16: bool
) -> dict[str, Any]:
    """openai-whisper's own ``transcribe`` with the job's settings."""
    import whisper

    return whisper.transcribe(
        model,
        audio.samples,
        verbose=None,
        language=language,
        task=settings.task,
        temperature=settings.temperature,
        beam_size=settings.beam_size,
        best_of=settings.best_of,
        compression_ratio_threshold=settings.compression_ratio_threshold,
        logprob_threshold=settings.logprob_threshold,
        no_speech_threshold=settings.no_speech_threshold,
        condition_on_previous_text=settings.condition_on_previous_text,
        initial_prompt=settings.initial_prompt,
        word_timestamps=settings.needs_word_timestamps,
        fp16=fp16,
    )


def _to_transcript(
    result: dict[str, Any],
    *,
    language: str,
    probability: float | None,
    duration: float,
    model: str,
    extra: dict[str, Any],
) -> Transcript:
    segments = []
    for item in result["segments"]:
        words = None
        if "words" in item:
            words = tuple(
                Word(
                    start=float(w["start"]),
                    end=float(w["end"]),
                    word=w["word"],
                    probability=float(w["probability"]),
                )
                for w in item["words"]
            )
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
    return Transcript(
        text=result["text"].strip(),
        language=language,
        language_probability=probability,
        segments=tuple(segments),
        duration=duration,
        model=model,
        engine=OpenAIWhisperEngine.name,
        extra=extra,
    )
