"""Pure-Python parts of openai-whisper, loaded without importing the package.

``import whisper.utils`` (or ``whisper.tokenizer``) first runs whisper/__init__.py, which
imports torch and numba: about 2 s and 250 MB of RSS in a process that may never load a model
(config validation, the writers behind the faster-whisper engine, an idle service). The files
themselves need only the standard library (utils.py) or tiktoken (tokenizer.py), so they are
loaded on their own from the installed package. When torch is imported anyway, nothing is lost.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from types import ModuleType


@functools.cache
def load(name: str) -> ModuleType:
    """``whisper.<name>`` (``utils`` or ``tokenizer``) without running whisper/__init__.py."""
    if f"whisper.{name}" in sys.modules:  # already imported the normal way: reuse it
        return sys.modules[f"whisper.{name}"]
    spec = importlib.util.find_spec("whisper")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the openai-whisper package is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / f"{name}.py"
    part = importlib.util.spec_from_file_location(f"_whisperd_whisper_{name}", path)
    assert part is not None and part.loader is not None
    module = importlib.util.module_from_spec(part)
    part.loader.exec_module(module)
    return module
