"""Model checkpoints: resolve a configured name, import CTranslate2 models, load and cache.

A configured ``model`` is, in this order:

1. a name with ``<model_dir>/<name>.pt`` present (imported or downloaded earlier);
2. a path to an openai-whisper checkpoint file;
3. an official openai-whisper name (``tiny.en``, ``base``, ``turbo``, ...), downloaded into
   model_dir by openai-whisper, which fails without a network: the error says how to import.

The faster-whisper engine reads CTranslate2 directories instead (:func:`resolve_ct2`):
``<model_dir>/<name>.ct2/``, a path to such a directory, or an official name fetched from
the Hugging Face hub (which fails without a network; the error says how to import).

Imported checkpoints have a sidecar ``<name>.json`` (origin, sources, sha256, dimensions,
alignment heads); the sha256 is verified every time the checkpoint is loaded. The
CTranslate2 form of an imported model is kept beside it as ``<name>.ct2/`` so engines that
read CTranslate2 directories can use the same model under the same name.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import threading
import time
import urllib.error
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import structlog

from daemon import ct2, outputs
from daemon.errors import (
    ModelChecksumError,
    ModelDownloadError,
    ModelError,
    ModelImportError,
    ModelNotFoundError,
    OutputWriteError,
)

log = structlog.get_logger(__name__)

# openai-whisper's official names (whisper.available_models(), 20250625); kept here so that
# config validation does not import torch. tests/test_models.py checks it against whisper.
OFFICIAL_MODELS = (
    "tiny.en", "tiny", "base.en", "base", "small.en", "small", "medium.en", "medium",
    "large-v1", "large-v2", "large-v3", "large", "large-v3-turbo", "turbo",
)  # fmt: skip

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


@dataclass(frozen=True)
class ModelRef:
    """Where a configured model comes from."""

    name: str  # as configured
    path: Path | None  # the checkpoint file, None when it must be downloaded
    origin: str  # 'imported' | 'file' | 'downloaded' | 'official' (not yet downloaded)
    sidecar: dict[str, Any] | None = None


def sidecar_path(checkpoint: Path) -> Path:
    return checkpoint.with_suffix(".json")


def _read_sidecar(checkpoint: Path) -> dict[str, Any] | None:
    path = sidecar_path(checkpoint)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise ModelError(f"{path}: unreadable model metadata ({err})") from None


def official_filename(name: str) -> str:
    import whisper  # lazy: imports torch

    return os.path.basename(whisper._MODELS[name])


def is_known(model: str, model_dir: Path, base_dir: Path | None = None) -> bool:
    """True when ``model`` can be resolved without a download attempt failing on the name."""
    try:
        resolve(model, model_dir, base_dir)
    except ModelNotFoundError:
        return False
    return True


def resolve(model: str, model_dir: Path, base_dir: Path | None = None) -> ModelRef:
    """Find the checkpoint for a configured model (no loading, no download)."""
    local = model_dir / f"{model}.pt" if "/" not in model and model not in ("", ".", "..") else None
    if local is not None and local.is_file():
        sidecar = _read_sidecar(local)
        return ModelRef(model, local, "imported" if sidecar else "downloaded", sidecar)
    candidate = Path(model).expanduser()
    if not candidate.is_absolute() and base_dir is not None:
        candidate = base_dir / candidate
    if model.endswith(".pt") or "/" in model:
        if candidate.is_file():
            return ModelRef(model, candidate, "file", _read_sidecar(candidate))
        raise ModelNotFoundError(f"model checkpoint {candidate} does not exist")
    if model in OFFICIAL_MODELS:
        downloaded = model_dir / official_filename(model)
        if downloaded.is_file():
            return ModelRef(model, downloaded, "downloaded", _read_sidecar(downloaded))
        return ModelRef(model, None, "official")
    raise ModelNotFoundError(
        f"{model!r} is not a Whisper model, a checkpoint file, or a model imported into "
        f"{model_dir}",
        hint="see 'whisperd models list'",
    )


def is_ct2_dir(path: Path) -> bool:
    """A CTranslate2 model directory: model.bin and config.json."""
    return (path / "model.bin").is_file() and (path / "config.json").is_file()


def resolve_ct2(model: str, model_dir: Path, base_dir: Path | None = None) -> Path | None:
    """The CTranslate2 directory of a configured model for faster-whisper.

    ``None`` means an official name that faster-whisper must fetch from the Hugging Face hub
    (even when openai-whisper downloaded its .pt). Any other openai-whisper checkpoint
    without its CTranslate2 form is refused: faster-whisper cannot read .pt files.
    """
    how = f"import a CTranslate2 copy with 'whisperd models import DIR... --name {model}'"
    simple = "/" not in model and model not in ("", ".", "..")
    if simple and is_ct2_dir(model_dir / f"{model}.ct2"):
        return model_dir / f"{model}.ct2"
    candidate = Path(model).expanduser()
    if not candidate.is_absolute() and base_dir is not None:
        candidate = base_dir / candidate
    only_pt = simple and model not in OFFICIAL_MODELS and (model_dir / f"{model}.pt").is_file()
    if model.endswith(".pt") or only_pt:
        raise ModelError(
            f"model {model!r} is an openai-whisper checkpoint (.pt) without a CTranslate2 "
            "copy, which faster-whisper cannot read",
            hint=f"use engine openai-whisper, or {how}",
        )
    if "/" in model or model.endswith(".ct2"):
        if is_ct2_dir(candidate):
            return candidate
        raise ModelNotFoundError(
            f"{candidate} is not a CTranslate2 model directory (model.bin and config.json)"
        )
    if model in OFFICIAL_MODELS:
        return None
    raise ModelNotFoundError(
        f"{model!r} is not a Whisper model, a CTranslate2 directory, or a model imported into "
        f"{model_dir}",
        hint="see 'whisperd models list'",
    )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


# --- import --------------------------------------------------------------------------------


def import_model(
    sources: Sequence[Path], name: str, model_dir: Path, *, force: bool = False
) -> dict:
    """Convert a CTranslate2 Whisper model into ``<model_dir>/<name>.pt``; returns its sidecar."""
    import torch  # lazy: heavy

    if not name or not set(name) <= _NAME_CHARS or name in (".", ".."):
        raise ModelImportError(
            f"model name {name!r} must use only letters, digits, '.', '_' and '-'"
        )
    target = model_dir / f"{name}.pt"
    ct2_dir = model_dir / f"{name}.ct2"
    if target.exists() and not force:
        raise ModelImportError(f"{target} already exists", hint="pass --force to replace it")
    source = ct2.find_source([Path(s) for s in sources])
    config = ct2.load_config(source.config)
    converted = ct2.convert(ct2.read_variables(source.parts), config)
    dims = converted.dims
    heads = ct2.encode_alignment_heads(
        converted.alignment_heads, dims["n_text_layer"], dims["n_text_head"]
    )
    checkpoint = {
        "dims": dims,
        "model_state_dict": {
            key: torch.from_numpy(array.copy()) for key, array in converted.state_dict.items()
        },
        "alignment_heads": heads,  # openai-whisper's own encoding (set_alignment_heads)
    }
    model_dir.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    _write_atomic(target, buffer.getbuffer())
    _copy_ct2(source, ct2_dir)
    sidecar = {
        "name": name,
        "origin": "imported",
        "format": "openai-whisper checkpoint converted from CTranslate2",
        "sources": [str(Path(p).resolve()) for p in source.parts],
        "sha256": sha256_file(target),
        "size": target.stat().st_size,
        "dims": dims,
        "multilingual": dims["n_vocab"] >= 51865,
        "alignment_heads": [list(pair) for pair in converted.alignment_heads],
        "ct2_dir": ct2_dir.name,
        "imported_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    _write_atomic(sidecar_path(target), json.dumps(sidecar, indent=2).encode())
    log.info("model imported", model=name, path=str(target), size=sidecar["size"])
    return sidecar


def _write_atomic(path: Path, data: bytes | memoryview) -> None:
    """outputs.write_atomic (temp file, fsync, rename, fsync the folder), as an import error."""
    try:
        outputs.write_atomic(path, data)
    except OutputWriteError as err:
        raise ModelImportError(f"cannot write the model: {err}") from None


def _copy_ct2(source: ct2.Ct2Source, target: Path) -> None:
    """Keep the CTranslate2 form (model.bin joined) for engines that read it directly."""
    staging = target.with_name(f".{target.name}.whisperd-tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with open(staging / "model.bin", "wb") as out:
        for block in ct2.iter_parts_bytes(source.parts):
            out.write(block)
    for extra in (source.config, *source.extra_files):
        shutil.copyfile(extra, staging / extra.name)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)


# --- listing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelEntry:
    name: str
    path: Path
    size: int
    origin: str
    multilingual: bool | None
    detail: str
    engines: tuple[str, ...] = ("openai-whisper",)  # the engines that can load it


def list_models(model_dir: Path) -> list[ModelEntry]:
    """Every model in model_dir, with size, origin and the engines it serves."""
    entries: list[ModelEntry] = []
    if not model_dir.is_dir():
        return entries
    for path in sorted(model_dir.glob("*.pt")):
        sidecar = _read_sidecar(path)
        name = path.stem
        if sidecar:
            origin = "imported"
            detail = "from " + ", ".join(Path(s).parent.parent.name for s in sidecar["sources"])
            multilingual = sidecar.get("multilingual")
        else:
            official = [m for m in OFFICIAL_MODELS if official_filename(m) == path.name]
            origin = "downloaded" if official else "checkpoint"
            detail = "openai-whisper release" if official else "unverified file"
            multilingual = None if not official else not official[0].endswith(".en")
        engines = ("openai-whisper", "faster-whisper")
        if not is_ct2_dir(model_dir / f"{name}.ct2"):
            engines = engines[:1]
        size = path.stat().st_size
        entries.append(ModelEntry(name, path, size, origin, multilingual, detail, engines))
    for path in sorted(model_dir.glob("*.ct2")):  # CTranslate2 directories without a .pt
        name = path.name.removesuffix(".ct2")
        if (model_dir / f"{name}.pt").is_file() or not is_ct2_dir(path):
            continue
        multilingual = _ct2_multilingual(path)
        size = (path / "model.bin").stat().st_size
        entries.append(
            ModelEntry(name, path, size, "ctranslate2", multilingual, "CTranslate2 directory",
                       ("faster-whisper",))
        )  # fmt: skip
    return sorted(entries, key=lambda e: e.name)


def _ct2_multilingual(path: Path) -> bool | None:
    """From config.json's language tokens when it lists them (faster-whisper's converter)."""
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    langs = config.get("lang_ids")
    return len(langs) > 1 if isinstance(langs, list) else None


# --- loading -------------------------------------------------------------------------------


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

    def __init__(self, model_dir: Path, capacity: int = 1, base_dir: Path | None = None) -> None:
        self.model_dir = model_dir
        self.base_dir = base_dir
        self.capacity = max(1, capacity)
        self._models: OrderedDict[CacheKey, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, model: str, device: str) -> Any:
        """An openai-whisper model (whisper.model.Whisper) on ``device``."""
        device = pick_device(device)
        key = CacheKey("openai-whisper", model, device)
        return self.get_for(key, lambda: load(model, device, self.model_dir, self.base_dir))

    def get_for(self, key: CacheKey, loader: Callable[[], Any]) -> Any:
        """The model cached under ``key``, loaded with ``loader()`` when missing."""
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
        loaded = loader()
        with self._lock:
            self._models[key] = loaded
            self._models.move_to_end(key)
            while len(self._models) > self.capacity:
                evicted, _ = self._models.popitem(last=False)
                log.info(
                    "model unloaded", model=evicted.model, device=evicted.device,
                    engine=evicted.engine,
                )  # fmt: skip
                _release_device_memory(evicted.device)
        return loaded

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


def _release_device_memory(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()
