"""Engines: speech recognition behind one interface, chosen by name per folder.

Owns turning audio into a :class:`~daemon.transcript.Transcript`: :mod:`.base` (the
interface, progress and cancellation, the registry), :mod:`.openai` (openai-whisper) and
:mod:`.faster` (faster-whisper on CTranslate2). Engine modules are imported only when an
engine is created.

May import: :mod:`daemon.models`, :mod:`daemon.config`, :mod:`daemon.transcript`,
:mod:`daemon.errors`. It does not import :mod:`daemon.media`: an engine takes anything with
``samples`` and ``duration`` (:class:`~daemon.engines.base.AudioInput`).
"""

from daemon.engines.base import (
    AudioInput,
    CachedEngine,
    Cancelled,
    Engine,
    EngineFactory,
    ProgressCallback,
    create,
    names,
    register,
)

__all__ = [
    "AudioInput",
    "CachedEngine",
    "Cancelled",
    "Engine",
    "EngineFactory",
    "ProgressCallback",
    "create",
    "names",
    "register",
]
