"""Helpers shared by the tests of this folder (split from test_config.py)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from daemon.config import (
    Config,
    load_config,
)
from daemon.errors import ConfigError

SAMPLE = Path(__file__).resolve().parents[2] / "config" / "whisperd.yaml"


def write(folder: Path, text: str, name: str = "whisperd.yaml") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(tmp_path: Path, text: str) -> Config:
    return load_config(write(tmp_path, text))


def errors_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    return info.value.errors
