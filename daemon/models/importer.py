"""``whisperd models import``: a CTranslate2 (faster-whisper) model into an openai-whisper one.

The converted checkpoint is written to ``<model_dir>/<name>.pt`` with a sidecar
``<name>.json`` (origin, sources, sha256, dimensions, alignment heads), and the CTranslate2
form is kept beside it as ``<name>.ct2/`` so engines that read CTranslate2 directories use
the same model under the same name. Reading model.bin is :mod:`daemon.models.ct2`.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import structlog

from daemon.errors import ModelImportError, OutputWriteError
from daemon.models import ct2
from daemon.models.resolve import sha256_file, sidecar_path
from daemon.outputs.atomic import write_atomic

log = structlog.get_logger(__name__)

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


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
    """write_atomic (temp file, fsync, rename, fsync the folder), as an import error."""
    try:
        write_atomic(path, data)
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
