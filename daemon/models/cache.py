"""Loading models onto a device and keeping them loaded: one cache per worker.

:func:`load` reads an openai-whisper checkpoint (verifying an imported one's sha256) or
lets openai-whisper download an official one; :class:`ModelCache` keeps up to ``capacity``
models of any engine loaded, evicting the least recently used one (and releasing its GPU
memory), tells ``on_load`` how long each load took, and :meth:`ModelCache.unload` empties it
and gives the memory back (``models.unload_after``). torch is imported only here, and only
when a model is loaded.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import threading
import time
import urllib.error
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import structlog

from daemon.config import OFFICIAL_MODELS
from daemon.errors import ModelChecksumError, ModelDownloadError, ModelError, OutOfMemoryError
from daemon.models.resolve import resolve, sha256_file

log = structlog.get_logger(__name__)


def pick_device(device: str) -> str:
    """``auto`` is cuda when available, else cpu."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load(model: str, device: str, model_dir: Path, base_dir: Path | None = None) -> Any:
    """Load a whisper.model.Whisper onto ``device`` (verifying imported checkpoints)."""
    import torch
    import whisper

    ref = resolve(model, model_dir, base_dir)
    started = time.monotonic()
    if ref.path is None:
        model_dir.mkdir(parents=True, exist_ok=True)
        try:
            loaded = whisper.load_model(model, device=device, download_root=str(model_dir))
        except (urllib.error.URLError, OSError, RuntimeError) as err:
            raise ModelDownloadError(
                f"model {model!r} is not in {model_dir} and downloading it failed ({err})",
                hint="without a network, import a CTranslate2 copy with "
                f"'whisperd models import DIR... --name {model}'",
            ) from None
        log.info("model downloaded", model=model, seconds=round(time.monotonic() - started, 2))
        return loaded
    if ref.sidecar and ref.sidecar.get("sha256"):
        actual = sha256_file(ref.path)
        if actual != ref.sidecar["sha256"]:
            raise ModelChecksumError(
                f"{ref.path}: checksum mismatch (recorded {ref.sidecar['sha256'][:12]}…, "
                f"found {actual[:12]}…); the file is damaged or was replaced",
                hint=f"import it again with 'whisperd models import ... --name {model} --force'",
            )
    try:
        checkpoint = torch.load(ref.path, map_location="cpu", weights_only=True)
        dims = whisper.model.ModelDimensions(**checkpoint["dims"])
        instance = whisper.model.Whisper(dims)
        instance.load_state_dict(checkpoint["model_state_dict"])
    except (OSError, RuntimeError, KeyError, TypeError, ValueError) as err:
        raise ModelError(f"{ref.path}: not a loadable openai-whisper checkpoint ({err})") from None
    heads = checkpoint.get("alignment_heads")
    if heads is None and model in OFFICIAL_MODELS:
        heads = whisper._ALIGNMENT_HEADS[model]
    if heads is not None:
        instance.set_alignment_heads(heads)
    instance = instance.to(device)
    log.debug(
        "model loaded", model=model, device=device, seconds=round(time.monotonic() - started, 2)
    )
    return instance


class CacheKey(NamedTuple):
    """What makes two loaded models different: engine, model, device, engine options."""

    engine: str
    model: str
    device: str
    compute_type: str = ""
    cpu_threads: int = 0


class ModelCache:
    """Loaded models of any engine, least recently used evicted beyond ``capacity``.

    :meth:`get` loads openai-whisper models; other engines pass their own loader to
    :meth:`get_for` with a :class:`CacheKey`.
    """

    def __init__(
        self,
        model_dir: Path,
        capacity: int = 1,
        base_dir: Path | None = None,
        *,
        on_load: Callable[[str, float], None] | None = None,
    ) -> None:
        """``on_load(engine, seconds)`` hears of every model loaded (for the metrics)."""
        self.model_dir = model_dir
        self.base_dir = base_dir
        self.capacity = max(1, capacity)
        self._on_load = on_load
        self._models: OrderedDict[CacheKey, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, model: str, device: str) -> Any:
        """An openai-whisper model (whisper.model.Whisper) on ``device``."""
        device = pick_device(device)
        key = CacheKey("openai-whisper", model, device)
        return self.get_for(key, lambda: load(model, device, self.model_dir, self.base_dir))

    def get_for(self, key: CacheKey, loader: Callable[[], Any]) -> Any:
        """The model cached under ``key``, loaded with ``loader()`` when missing.

        Room is made *before* loading (a model about to be evicted must not have to fit
        beside the new one on the device); a load that runs out of device memory is tried
        once more with the cache emptied, then reported as OutOfMemoryError (transient).
        """
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            self._evict(keep=self.capacity - 1)
        started = time.monotonic()
        try:
            loaded = loader()
        except Exception as err:
            if not _out_of_memory(err):
                raise
            log.warning("model load ran out of memory; unloading every model and retrying",
                        model=key.model, device=key.device)  # fmt: skip
            self.clear()
            try:
                loaded = loader()
            except Exception as again:
                if _out_of_memory(again):
                    raise OutOfMemoryError(
                        f"{key.device} has not enough memory to load model {key.model!r}",
                        hint="retried later; use a smaller model or free the device",
                    ) from None
                raise
        with self._lock:
            self._models[key] = loaded
            self._models.move_to_end(key)
            self._evict(keep=self.capacity)
        if self._on_load is not None:
            self._on_load(key.engine, time.monotonic() - started)
        return loaded

    def _evict(self, keep: int) -> None:
        """Unload least recently used models until at most ``keep`` remain (lock held)."""
        while len(self._models) > max(0, keep):
            evicted, _ = self._models.popitem(last=False)
            log.info(
                "model unloaded", model=evicted.model, device=evicted.device,
                engine=evicted.engine,
            )  # fmt: skip
            _release_device_memory(evicted.device)

    def loaded(self, engine: str | None = None) -> set[str]:
        """Names of the loaded models (of one engine, or of all)."""
        with self._lock:
            return {k.model for k in self._models if engine is None or k.engine == engine}

    def clear(self) -> None:
        with self._lock:
            devices = {key.device for key in self._models}
            self._models.clear()
        for device in devices:
            _release_device_memory(device)

    def unload(self) -> list[str]:
        """Unload every model and give the memory back to the system; the models unloaded.

        Besides dropping the models (and emptying torch's CUDA cache), the garbage is
        collected and glibc asked to return free heap pages (``malloc_trim``): without it
        the process keeps most of a CPU model's memory although nothing uses it.
        """
        with self._lock:
            names = [k.model for k in self._models]
        if not names:
            return []
        self.clear()
        gc.collect()
        _trim_heap()
        return names


def _out_of_memory(err: BaseException) -> bool:
    """CUDA's out-of-memory (torch's own class, or CTranslate2's RuntimeError text)."""
    return type(err).__name__ == "OutOfMemoryError" or "out of memory" in str(err).lower()


def _trim_heap() -> None:
    """glibc's ``malloc_trim(0)``: free heap pages back to the system (no-op elsewhere)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)
    except OSError:
        pass


def _release_device_memory(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()
