"""The engine interface, what every engine shares, and the registry of engines by name.

An engine turns decoded audio plus a file's settings into a
:class:`~daemon.transcript.Transcript`. Callers (the ``transcribe`` command, the service's
workers) only see :class:`Engine` and :func:`create`. Each engine module registers itself
under the name used in the configuration (``engine: openai-whisper``); the built-in ones are
imported lazily, when first created, so an idle service or a config check never imports
torch or faster-whisper. Tests register their own fake engine with :func:`register`.

Speech regions: given ``speech`` (sorted ``(start, end)`` seconds from speech detection), an
engine transcribes only those regions, on the file's timeline, following the clip plan of
:mod:`daemon.engines.speech`; ``None`` means the whole file. The engines' own no-speech gate
is off then (a short clip padded to a 30 s window looks like silence to it): the
hallucination guard judges each segment instead (:mod:`daemon.jobs.hallucinations`).

Progress and cancellation: an engine calls ``progress(fraction)`` as it goes and checks the
``cancel`` event between steps, raising :class:`Cancelled` when it is set (a graceful
shutdown that ran out of time).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from daemon.config import JobSettings
from daemon.errors import EngineUnavailableError
from daemon.models import ModelCache
from daemon.transcript import Region, Transcript

ProgressCallback = Callable[[float], None]


class Cancelled(Exception):
    """Raised inside an engine when the job was asked to stop (shutdown timeout)."""


class AudioInput(Protocol):
    """What an engine needs of decoded audio (:class:`daemon.media.Audio` provides it)."""

    @property
    def samples(self) -> np.ndarray: ...  # 1-D float32, 16 kHz mono, in [-1, 1]
    @property
    def duration(self) -> float: ...


class Engine(Protocol):
    """A speech recognizer; one instance per worker, models from the worker's cache."""

    name: str

    def transcribe(
        self,
        audio: AudioInput,
        settings: JobSettings,
        *,
        speech: Sequence[Region] | None = None,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> Transcript: ...

    def loaded_models(self) -> set[str]: ...

    def close(self) -> None: ...


class CachedEngine:
    """What every engine shares: models come from a worker's :class:`ModelCache`."""

    name: str

    def __init__(self, cache: ModelCache) -> None:
        self.cache = cache

    def loaded_models(self) -> set[str]:
        return self.cache.loaded(self.name)

    def close(self) -> None:
        self.cache.clear()


EngineFactory = Callable[[ModelCache], Engine]

# Every name in config.ENGINES: "module:Class", imported when the engine is first created.
_BUILTIN: dict[str, str] = {
    "openai-whisper": "daemon.engines.openai:OpenAIWhisperEngine",
    "faster-whisper": "daemon.engines.faster:FasterWhisperEngine",
}
_registered: dict[str, EngineFactory] = {}


def register(name: str, factory: EngineFactory) -> None:
    """Make ``create(name, ...)`` use ``factory`` (tests register a fast fake engine)."""
    _registered[name] = factory


def names() -> tuple[str, ...]:
    """Every engine name that :func:`create` accepts."""
    return tuple(dict.fromkeys([*_BUILTIN, *_registered]))


def create(name: str, cache: ModelCache) -> Engine:
    """The engine called ``name`` (as configured in ``defaults.engine`` or a folder rule)."""
    factory = _registered.get(name)
    if factory is None:
        target = _BUILTIN.get(name)
        if target is None:
            raise EngineUnavailableError(f"unknown engine {name!r}")
        module, _, cls = target.partition(":")
        factory = getattr(importlib.import_module(module), cls)
    return factory(cache)
