"""Convert a CTranslate2 (faster-whisper) Whisper model into an openai-whisper checkpoint.

The model.bin layout (CTranslate2 binary version 6, little endian)::

    uint32 version; string spec name; uint32 revision; uint32 variable count
    per variable: string name; uint8 rank; rank x uint32 dims; uint8 dtype; uint32 bytes; data
    uint32 alias count; per alias: string alias; string target

where a string is a uint16 length (counting a trailing NUL), the bytes, then the NUL. A large
model.bin may be shipped split into model.bin.part1, model.bin.part2, ... (possibly spread over
several directories); the parts are read in order as one stream, never joined in memory.

The mapping onto openai-whisper's state dict un-fuses CTranslate2's fused projections: the
self-attention ``linear_0`` holds query, key and value rows; the cross-attention ``linear_1``
holds key and value rows. openai-whisper's key projections have no bias (CTranslate2 stores a
zero bias for them, which is dropped).
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from daemon.errors import ModelImportError

SUPPORTED_VERSION = 6
_DTYPES = {
    0: np.float32,
    1: np.int8,
    2: np.int16,
    3: np.int32,
    4: np.float16,
    5: None,  # bfloat16: no numpy dtype; converted through uint16 below
}
_PART = re.compile(r"^model\.bin\.part(\d+)$")


@dataclass(frozen=True)
class Ct2Source:
    """Where a CTranslate2 model lives: its model.bin (or ordered parts) and its config.json."""

    parts: tuple[Path, ...]
    config: Path
    extra_files: tuple[Path, ...]  # tokenizer.json, vocabulary.*, preprocessor_config.json


def find_source(directories: Sequence[Path]) -> Ct2Source:
    """Locate model.bin (or its parts) and config.json across the given directories."""
    whole: list[Path] = []
    parts: dict[int, Path] = {}
    configs: list[Path] = []
    extras: dict[str, Path] = {}
    for directory in directories:
        if not directory.is_dir():
            raise ModelImportError(f"{directory}: not a directory")
        for entry in sorted(directory.iterdir()):
            match = _PART.match(entry.name)
            if entry.name == "model.bin":
                whole.append(entry)
            elif match:
                number = int(match.group(1))
                if number in parts:
                    raise ModelImportError(
                        f"model.bin.part{number} found twice: {parts[number]} and {entry}"
                    )
                parts[number] = entry
            elif entry.name == "config.json":
                configs.append(entry)
            elif entry.name in ("tokenizer.json", "preprocessor_config.json") or (
                entry.name.startswith("vocabulary.")
            ):
                extras.setdefault(entry.name, entry)
    where = ", ".join(str(d) for d in directories)
    if whole and parts:
        raise ModelImportError(f"both model.bin and model.bin.partN files found in {where}")
    if len(whole) > 1:
        raise ModelImportError(f"several model.bin files found: {', '.join(map(str, whole))}")
    if parts:
        numbers = sorted(parts)
        if numbers != list(range(1, len(numbers) + 1)):
            missing = sorted(set(range(1, numbers[-1] + 1)) - set(numbers))
            raise ModelImportError(
                f"model.bin is split but part(s) {', '.join(map(str, missing))} are missing "
                f"from {where}",
                hint="name every directory that holds a part",
            )
        ordered = tuple(parts[n] for n in numbers)
    elif whole:
        ordered = (whole[0],)
    else:
        raise ModelImportError(
            f"no model.bin (or model.bin.part1, ...) in {where}",
            hint="SOURCE must be a CTranslate2 / faster-whisper model directory",
        )
    if not configs:
        raise ModelImportError(f"no config.json in {where} (it holds the alignment heads)")
    return Ct2Source(parts=ordered, config=configs[0], extra_files=tuple(extras.values()))


class _ChainedReader:
    """Reads several files as one stream (for model.bin split into parts)."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self._paths = list(paths)
        self._index = 0
        self._file: BinaryIO | None = open(self._paths[0], "rb")  # noqa: SIM115

    def read(self, size: int) -> bytes:
        chunks: list[bytes] = []
        while size > 0 and self._file is not None:
            chunk = self._file.read(size)
            if chunk:
                chunks.append(chunk)
                size -= len(chunk)
                continue
            self._file.close()
            self._index += 1
            self._file = (
                open(self._paths[self._index], "rb")  # noqa: SIM115
                if self._index < len(self._paths)
                else None
            )
        return b"".join(chunks)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _exact(reader: _ChainedReader, size: int) -> bytes:
    data = reader.read(size)
    if len(data) != size:
        raise ModelImportError("model.bin ends early: the file is truncated or a part is missing")
    return data


def _u32(reader: _ChainedReader) -> int:
    return struct.unpack("<I", _exact(reader, 4))[0]


def _string(reader: _ChainedReader) -> str:
    (length,) = struct.unpack("<H", _exact(reader, 2))
    return _exact(reader, length).rstrip(b"\0").decode("utf-8")


def read_variables(parts: Sequence[Path]) -> dict[str, np.ndarray]:
    """Every variable of a CTranslate2 Whisper model.bin, aliases resolved."""
    reader = _ChainedReader(parts)
    try:
        version = _u32(reader)
        if version != SUPPORTED_VERSION:
            raise ModelImportError(
                f"{parts[0]}: CTranslate2 binary version {version}; only version "
                f"{SUPPORTED_VERSION} is supported"
            )
        spec = _string(reader)
        if spec != "WhisperSpec":
            raise ModelImportError(f"{parts[0]}: a {spec!r} model, not a Whisper model")
        _u32(reader)  # spec revision
        variables: dict[str, np.ndarray] = {}
        for _ in range(_u32(reader)):
            name = _string(reader)
            rank = _exact(reader, 1)[0]
            shape = struct.unpack(f"<{rank}I", _exact(reader, 4 * rank))
            dtype_id = _exact(reader, 1)[0]
            raw = _exact(reader, _u32(reader))
            variables[name] = _array(raw, dtype_id, shape, name)
        for _ in range(_u32(reader)):
            alias, target = _string(reader), _string(reader)
            if target in variables:
                variables[alias] = variables[target]
        if reader.read(1):
            raise ModelImportError(f"{parts[0]}: unexpected data after the last alias")
        return variables
    except (struct.error, UnicodeDecodeError) as err:
        raise ModelImportError(
            f"{parts[0]}: not a readable CTranslate2 model.bin ({err})"
        ) from None
    finally:
        reader.close()


def _array(raw: bytes, dtype_id: int, shape: tuple[int, ...], name: str) -> np.ndarray:
    if dtype_id not in _DTYPES:
        raise ModelImportError(f"variable {name}: unknown dtype code {dtype_id}")
    if dtype_id == 5:  # bfloat16 -> float32: the high half of a float32
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32).reshape(shape)
    if dtype_id == 1 and name.endswith("/weight"):
        raise ModelImportError(
            f"variable {name} is int8-quantized; import a float16/float32 CTranslate2 model",
            hint="convert it again with ct2-transformers-converter without --quantization int8",
        )
    return np.frombuffer(raw, dtype=np.dtype(_DTYPES[dtype_id]).newbyteorder("<")).reshape(shape)


@dataclass(frozen=True)
class Converted:
    dims: dict[str, int]
    state_dict: dict[str, np.ndarray]
    alignment_heads: tuple[tuple[int, int], ...]


def _layers(variables: dict[str, np.ndarray], side: str) -> int:
    numbers = {
        int(m.group(1)) for name in variables if (m := re.match(rf"^{side}/layer_(\d+)/", name))
    }
    return len(numbers)


def _scalar(variables: dict[str, np.ndarray], name: str) -> int:
    try:
        return int(np.asarray(variables[name]).reshape(-1)[0])
    except KeyError:
        raise ModelImportError(f"model.bin lacks {name}") from None


def convert(variables: dict[str, np.ndarray], config: dict) -> Converted:
    """Map CTranslate2 variable names and layouts onto openai-whisper's state dict."""
    try:
        return _convert(variables, config)
    except KeyError as err:
        raise ModelImportError(
            f"model.bin lacks variable {err.args[0]}: not a Whisper model"
        ) from None


def _convert(v: dict[str, np.ndarray], config: dict) -> Converted:
    sd: dict[str, np.ndarray] = {}

    def linear(dst: str, src: str, *, bias: bool = True) -> None:
        sd[f"{dst}.weight"] = v[f"{src}/weight"]
        if bias:
            sd[f"{dst}.bias"] = v[f"{src}/bias"]

    def norm(dst: str, src: str) -> None:
        sd[f"{dst}.weight"] = v[f"{src}/gamma"]
        sd[f"{dst}.bias"] = v[f"{src}/beta"]

    def fused(dst_names: Sequence[str], src: str, bias_for: Sequence[bool]) -> None:
        weight, bias = v[f"{src}/weight"], v[f"{src}/bias"]
        n = weight.shape[0] // len(dst_names)
        for i, (dst, has_bias) in enumerate(zip(dst_names, bias_for, strict=True)):
            sd[f"{dst}.weight"] = weight[i * n : (i + 1) * n]
            if has_bias:
                sd[f"{dst}.bias"] = bias[i * n : (i + 1) * n]

    for i in (1, 2):
        linear(f"encoder.conv{i}", f"encoder/conv{i}")
    sd["encoder.positional_embedding"] = v["encoder/position_encodings/encodings"]
    norm("encoder.ln_post", "encoder/layer_norm")
    sd["decoder.positional_embedding"] = v["decoder/position_encodings/encodings"]
    sd["decoder.token_embedding.weight"] = v["decoder/embeddings/weight"]
    norm("decoder.ln", "decoder/layer_norm")

    n_audio_layer, n_text_layer = _layers(v, "encoder"), _layers(v, "decoder")
    for side, count in (("encoder", n_audio_layer), ("decoder", n_text_layer)):
        for i in range(count):
            src, dst = f"{side}/layer_{i}", f"{side}.blocks.{i}"
            fused(
                [f"{dst}.attn.query", f"{dst}.attn.key", f"{dst}.attn.value"],
                f"{src}/self_attention/linear_0",
                [True, False, True],
            )
            linear(f"{dst}.attn.out", f"{src}/self_attention/linear_1")
            norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
            linear(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
            linear(f"{dst}.mlp.2", f"{src}/ffn/linear_1")
            norm(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")
            if side == "decoder":
                linear(f"{dst}.cross_attn.query", f"{src}/attention/linear_0")
                fused(
                    [f"{dst}.cross_attn.key", f"{dst}.cross_attn.value"],
                    f"{src}/attention/linear_1",
                    [False, True],
                )
                linear(f"{dst}.cross_attn.out", f"{src}/attention/linear_2")
                norm(f"{dst}.cross_attn_ln", f"{src}/attention/layer_norm")

    dims = _dims(v, n_audio_layer, n_text_layer)
    heads = _alignment_heads(config, dims)
    return Converted(dims=dims, state_dict=sd, alignment_heads=heads)


def _dims(v: dict[str, np.ndarray], n_audio_layer: int, n_text_layer: int) -> dict[str, int]:
    """openai-whisper's ModelDimensions, read off the variables' shapes."""
    if not n_audio_layer or not n_text_layer:
        raise ModelImportError("model.bin has no encoder or decoder layers: not a Whisper model")
    conv1 = v["encoder/conv1/weight"]
    return {
        "n_mels": int(conv1.shape[1]),
        "n_audio_ctx": int(v["encoder/position_encodings/encodings"].shape[0]),
        "n_audio_state": int(conv1.shape[0]),
        "n_audio_head": _scalar(v, "encoder/num_heads"),
        "n_audio_layer": n_audio_layer,
        "n_vocab": int(v["decoder/embeddings/weight"].shape[0]),
        "n_text_ctx": int(v["decoder/position_encodings/encodings"].shape[0]),
        "n_text_state": int(v["decoder/embeddings/weight"].shape[1]),
        "n_text_head": _scalar(v, "decoder/num_heads"),
        "n_text_layer": n_text_layer,
    }


def _alignment_heads(config: dict, dims: dict[str, int]) -> tuple[tuple[int, int], ...]:
    """config.json's alignment heads, each checked against the model's size."""
    heads = tuple((int(layer), int(head)) for layer, head in config.get("alignment_heads") or [])
    for layer, head in heads:
        if not (0 <= layer < dims["n_text_layer"] and 0 <= head < dims["n_text_head"]):
            raise ModelImportError(
                f"config.json alignment head [{layer}, {head}] is outside the model "
                f"({dims['n_text_layer']} decoder layers x {dims['n_text_head']} heads)"
            )
    return heads


def encode_alignment_heads(heads: Sequence[tuple[int, int]], n_layer: int, n_head: int) -> bytes:
    """openai-whisper's own encoding of an alignment-head mask (``set_alignment_heads``)."""
    mask = np.zeros((n_layer, n_head), dtype=bool)
    for layer, head in heads:
        mask[layer, head] = True
    return base64.b85encode(gzip.compress(mask.tobytes()))


def decode_alignment_heads(dump: bytes, n_layer: int, n_head: int) -> list[tuple[int, int]]:
    """The (layer, head) pairs of an openai-whisper alignment-head dump."""
    mask = np.frombuffer(gzip.decompress(base64.b85decode(dump)), dtype=bool)
    layers, heads = np.nonzero(mask.reshape(n_layer, n_head))
    return [(int(a), int(b)) for a, b in zip(layers, heads, strict=True)]


def load_config(path: Path) -> dict:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelImportError(f"{path}: unreadable config.json ({err})") from None
    if not isinstance(config, dict):
        raise ModelImportError(f"{path}: config.json is not a JSON object")
    return config


def iter_parts_bytes(parts: Sequence[Path], chunk: int = 1 << 22) -> Iterator[bytes]:
    """The bytes of model.bin, parts joined, in chunks (to write the joined file)."""
    for part in parts:
        with open(part, "rb") as fh:
            while block := fh.read(chunk):
                yield block
