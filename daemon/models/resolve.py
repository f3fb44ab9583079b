"""Where a configured model comes from, and which models a model_dir holds.

A configured ``model`` is, in this order:

1. a name with ``<model_dir>/<name>.pt`` present (imported or downloaded earlier);
2. a path to an openai-whisper checkpoint file;
3. an official openai-whisper name (``tiny.en``, ``base``, ``turbo``, ...), downloaded into
   model_dir by openai-whisper, which fails without a network: the error says how to import.

The faster-whisper engine reads CTranslate2 directories instead (:func:`resolve_ct2`):
``<model_dir>/<name>.ct2/``, a path to such a directory, or an official name fetched from
the Hugging Face hub (which fails without a network; the error says how to import).

Imported checkpoints have a sidecar ``<name>.json`` (origin, sources, sha256, dimensions,
alignment heads); the sha256 is verified every time the checkpoint is loaded
(:mod:`daemon.models.cache`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.config import OFFICIAL_MODELS
from daemon.errors import ModelError, ModelNotFoundError


@dataclass(frozen=True)
class ModelRef:
    """Where a configured model comes from."""

    name: str  # as configured
    path: Path | None  # the checkpoint file, None when it must be downloaded
    origin: str  # 'imported' | 'file' | 'downloaded' | 'official' (not yet downloaded)
    sidecar: dict[str, Any] | None = None


def sidecar_path(checkpoint: Path) -> Path:
    return checkpoint.with_suffix(".json")


def read_sidecar(checkpoint: Path) -> dict[str, Any] | None:
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
        sidecar = read_sidecar(local)
        return ModelRef(model, local, "imported" if sidecar else "downloaded", sidecar)
    candidate = Path(model).expanduser()
    if not candidate.is_absolute() and base_dir is not None:
        candidate = base_dir / candidate
    if model.endswith(".pt") or "/" in model:
        if candidate.is_file():
            return ModelRef(model, candidate, "file", read_sidecar(candidate))
        raise ModelNotFoundError(f"model checkpoint {candidate} does not exist")
    if model in OFFICIAL_MODELS:
        downloaded = model_dir / official_filename(model)
        if downloaded.is_file():
            return ModelRef(model, downloaded, "downloaded", read_sidecar(downloaded))
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
        sidecar = read_sidecar(path)
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
