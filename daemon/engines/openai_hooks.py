"""Progress, cancellation and the heartbeat inside openai-whisper's ``transcribe``.

openai-whisper has no callback; two seams give what a worker needs, both per thread (each
worker thread has its own callback and cancel event, in thread-local state):

* **its progress bar**: ``whisper.transcribe`` calls ``tqdm.tqdm(...)`` of the module
  ``tqdm`` it imported; that module-level name is replaced, once per process, by a silent
  stand-in whose ``update`` (once per 30-second window) reports the fraction done. The
  module is taken from ``sys.modules``: ``import whisper.transcribe as m`` binds the
  *function* that ``whisper/__init__.py`` re-exports under the same name, and the stand-in
  would never be used (that was the bug that left progress at 0 % and SIGTERM deaf).
* **a forward pre-hook** on the model's encoder and decoder (``register_forward_pre_hook``,
  once per loaded model), called at every forward pass, i.e. every decoding step: it raises
  :class:`~daemon.engines.base.Cancelled` as soon as the cancel event is set (a window on
  a slow CPU can take half a minute; a step, milliseconds), and reports the last fraction
  again at most every second, so the worker's heartbeat moves while a window decodes.

A third seam saves work: **the encoder's last output is remembered** (per thread). Word
timestamps make openai-whisper align each window (``timing.find_alignment``) by running
``model(mel, tokens)``, which encodes again the very window that decoding has just encoded:
the same tensor (a view of the same storage, same shape, strides and version counter).
The wrapper of the encoder's ``forward`` returns the remembered output for that input, so
each window is encoded once (a temperature fallback re-decoding a window gains too). The
input is held while remembered, so its memory cannot be reused by another tensor at the
same address; the memo is dropped when :func:`hooked` ends. Only an identical tensor hits
(``tests/engines/test_openai.py`` checks that word times are unchanged).

Outside :func:`hooked`, all three are inert: other users of the model (a benchmark, a test
calling openai-whisper directly) see no change.

:func:`hooked` also points word alignment on the CPU at :func:`daemon.engines.dtw.dtw_cpu`
(once per process, for every caller: it finds the same path as openai-whisper's own, without
Numba's compile and without Numba changing torch's thread count; see that module).
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from daemon.engines import dtw
from daemon.engines.base import Cancelled, ProgressCallback
from daemon.errors import EngineError

BEAT_EVERY = 1.0  # seconds between two heartbeats from the forward hook

_local = threading.local()
_install_lock = threading.Lock()


def _check() -> None:
    """Raise when this thread's job was cancelled; beat now and then."""
    cancel = getattr(_local, "cancel", None)
    if cancel is not None and cancel.is_set():
        raise Cancelled("transcription cancelled")
    progress = getattr(_local, "progress", None)
    now = time.monotonic()
    if progress is not None and now - getattr(_local, "beat", 0.0) >= BEAT_EVERY:
        _local.beat = now
        progress(getattr(_local, "fraction", 0.0))


class _ProgressBar:
    """Stands in for ``tqdm.tqdm`` inside whisper.transcribe; never prints."""

    def __init__(self, *args: Any, total: int | None = None, **kwargs: Any) -> None:
        self.total = total or 0
        self.done = 0

    def __enter__(self) -> _ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int) -> None:
        self.done += n
        if self.total:
            _local.fraction = min(1.0, self.done / self.total)
        _local.beat = 0.0  # report the new fraction now
        _check()


class _TqdmModule:
    tqdm = _ProgressBar


def _forward_hook(module: Any, args: Any) -> None:
    _check()


def _install_progress_bar() -> None:
    """Point ``whisper.transcribe``'s ``tqdm`` at the stand-in (once per process)."""
    with _install_lock:
        import whisper  # noqa: F401  (loads whisper.transcribe into sys.modules)

        module = sys.modules["whisper.transcribe"]
        current = getattr(module, "tqdm", None)
        if current is _TqdmModule:
            return
        if not hasattr(current, "tqdm"):
            raise EngineError(
                "this openai-whisper version no longer reports progress through tqdm: "
                "progress, cancellation and the watchdog heartbeat would not work",
                hint="install the openai-whisper version whisperd was released with",
            )
        module.tqdm = _TqdmModule


def _identity(tensor: Any) -> tuple:
    """What makes two tensors the same input: storage, layout, type, in-place writes."""
    return (tensor.data_ptr(), tuple(tensor.shape), tensor.stride(), tensor.dtype,
            tensor.device, tensor._version)  # fmt: skip


def _remembering(encoder: Any) -> Any:
    """``encoder.forward``, returning the remembered output for the same input tensor."""
    import torch

    compute = encoder.forward

    def forward(x: Any) -> Any:
        memo = getattr(_local, "memo", None)
        if memo is None or torch.is_inference_mode_enabled() or x.is_inference():
            return compute(x)  # outside hooked(), or tensors without a version counter
        hit = memo.get("encoder")
        if hit is not None and hit[0] is encoder and hit[1] == _identity(x):
            out = hit[3]
            if out._version == hit[4]:  # nobody wrote into the output either
                return out
        out = compute(x)
        memo["encoder"] = (encoder, _identity(x), x, out, out._version)  # x held: see above
        return out

    return forward


def _install_forward_hooks(model: Any) -> None:
    """A pre-hook on the encoder and the decoder of ``model``, the encoder's memo (once)."""
    with _install_lock:
        if getattr(model, "_whisperd_hooked", False):
            return
        model.encoder.register_forward_pre_hook(_forward_hook)
        model.decoder.register_forward_pre_hook(_forward_hook)
        model.encoder.forward = _remembering(model.encoder)
        model._whisperd_hooked = True


@contextlib.contextmanager
def hooked(
    model: Any, progress: ProgressCallback | None, cancel: threading.Event | None
) -> Iterator[None]:
    """Within the block, this thread's openai-whisper calls report and can be cancelled."""
    _install_progress_bar()
    dtw.install()
    _install_forward_hooks(model)
    _local.progress, _local.cancel, _local.fraction, _local.beat = progress, cancel, 0.0, 0.0
    _local.memo = {}
    try:
        yield
    finally:
        _local.progress = _local.cancel = _local.memo = None
