"""How file names are shown: always printable, always encodable, never ambiguous.

File names are bytes; whisperd carries them as ``os.fsdecode`` strings, where a byte that is
not UTF-8 becomes a lone surrogate. Printing such a string to a strict UTF-8 stream (a
``PYTHONIOENCODING=utf-8`` terminal, a JSON consumer, journald) raises, and control
characters in a name (a newline, a terminal escape, a right-to-left override) can forge
lines. :func:`display` turns any name into text that shows every such byte or character
escaped (``caf\\xe9.wav``, ``a\\nb``). A leaf: imports nothing from whisperd.
"""

from __future__ import annotations

import unicodedata

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def display(name: str) -> str:
    """``name`` with undecodable bytes as ``\\xNN``, control characters and ``\\`` escaped."""
    if name.isprintable() and "\\" not in name:  # the common case, without a loop
        return name
    return "".join(_char(c) for c in name)


def _char(c: str) -> str:
    if c in _ESCAPES:
        return _ESCAPES[c]
    code = ord(c)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn"):
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    return c
