"""The fixed tables the configuration is checked against, read without importing torch.

Engines, CTranslate2 compute types, output formats, output-name placeholders, faster-whisper's
VAD option names, openai-whisper's official model names and language table, the default
include / ignore patterns of the watcher, and the names of whisperd's own files (temp files,
``.error.txt``, the ``.whisperd-skip`` folder marker). Other packages take these names from
here, so each table exists once (tests compare the copies of third-party tables with their sources).

A leaf of the config package: imports only :mod:`daemon.whisper_parts` and the errors.
"""

from __future__ import annotations

import functools
from typing import Literal, get_args

from daemon import whisper_parts
from daemon.errors import ConfigError

Engine = Literal["openai-whisper", "faster-whisper"]
ENGINES: tuple[str, ...] = get_args(Engine)
# CTranslate2's compute types (https://opennmt.net/CTranslate2/quantization.html); "auto" is
# ours: float16 on CUDA, int8 on CPU. "default" keeps the type the model was saved in.
ComputeType = Literal[
    "auto", "default", "int8", "int8_float16", "int8_float32", "int8_bfloat16", "int16",
    "float16", "bfloat16", "float32",
]  # fmt: skip
COMPUTE_TYPES: tuple[str, ...] = get_args(ComputeType)
# faster_whisper.vad.VadOptions fields (faster-whisper 1.2); kept here so that config
# validation does not import faster-whisper. tests/engines/test_faster.py checks it.
VAD_KEYS = (
    "threshold", "neg_threshold", "min_speech_duration_ms", "max_speech_duration_s",
    "min_silence_duration_ms", "speech_pad_ms",
)  # fmt: skip
Format = Literal["txt", "srt", "vtt", "tsv", "json"]
FORMATS: tuple[str, ...] = get_args(Format)
PLACEHOLDERS = ("stem", "ext", "language", "model", "task")

# openai-whisper's official names (whisper.available_models(), 20250625); kept here so that
# config validation does not import torch. tests/models/test_resolve.py checks it.
OFFICIAL_MODELS = (
    "tiny.en", "tiny", "base.en", "base", "small.en", "small", "medium.en", "medium",
    "large-v1", "large-v2", "large-v3", "large", "large-v3-turbo", "turbo",
)  # fmt: skip

# fmt: off
MEDIA_PATTERNS = (
    "*.wav", "*.mp3", "*.m4a", "*.aac", "*.flac", "*.ogg", "*.oga", "*.opus", "*.wma", "*.webm",
    "*.mp4", "*.m4v", "*.mkv", "*.mov", "*.avi", "*.mpg", "*.mpeg", "*.ts", "*.mts", "*.3gp",
    "*.amr", "*.aif", "*.aiff", "*.caf", "*.wv", "*.mka",
)
IGNORE_PATTERNS = (
    ".*", "*.part", "*.partial", "*.tmp", "*.crdownload", "~$*", "Thumbs.db", "desktop.ini",
    "@eaDir", ".DS_Store", "._*",
)
# fmt: on
#: Suffix of whisperd's temp files (``.<name>.<random>.whisperd-tmp``, see outputs.atomic).
TEMP_SUFFIX = ".whisperd-tmp"
#: Suffix of the file that says why a file failed.
ERROR_SUFFIX = ".error.txt"
#: A folder holding a file of this name is ignored by the watcher, with everything below it.
SKIP_MARKER = ".whisperd-skip"


@functools.cache
def whisper_languages() -> tuple[dict[str, str], dict[str, str]]:
    """openai-whisper's language table (code → name, name → code), read without torch."""
    try:
        tokenizer = whisper_parts.load("tokenizer")
    except ModuleNotFoundError:
        raise ConfigError(
            "openai-whisper", ["the openai-whisper package is not installed"]
        ) from None
    return tokenizer.LANGUAGES, tokenizer.TO_LANGUAGE_CODE
