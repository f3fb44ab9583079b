"""The public form of the status report: what the HTTP listener may show to anyone.

Owns :func:`public_report` and :func:`encode_json`. The public report is the report of
``whisperd status --json`` (:func:`daemon.web.report.collect`), except that it

* drops where things live on the server (``inbox``, ``outbox``, ``ledger``, the pid);
* rewrites absolute paths inside error messages: the inbox prefix goes (paths become
  inbox-relative), the outbox and state directory become ``<outbox>`` / ``<state>``, and
  any other absolute path keeps only its last component (``…/base.pt``);
* makes sure every string is printable (the report already shows names escaped; anything
  else that is not goes through :func:`daemon.text.display`), so encoding cannot fail;
* leaves the full ``files`` list out unless asked (it grows with the ledger).

:func:`encode_json` additionally escapes ``< > &`` and U+2028/9, and writes non-finite
floats as null, so the bytes are valid JSON and inert if a browser renders them as HTML.
"""

from __future__ import annotations

import json
import math
import posixpath
import re
from collections.abc import Mapping
from typing import Any

from daemon.text import display

HIDDEN_KEYS = frozenset({"inbox", "outbox", "ledger", "state_dir", "config", "config_path"})
HIDDEN_SERVICE_KEYS = frozenset({"pid"})
MESSAGE_KEYS = frozenset({"error", "last_error", "message", "reason"})

# An absolute path inside a message: "/" at the start or after a space, quote or "(",
# at least two components ("/srv/x"); stops at whitespace, quotes and ":" (errno suffix).
_ABSOLUTE = re.compile(r"""(?:^|(?<=[\s'"(=\[]))(/[^\s'"():]+/[^\s'"():]*)""")
_JSON_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_JSON_UNSAFE = re.compile("[<>&\u2028\u2029]")


def _prefixes(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(absolute prefix with a trailing slash, replacement), longest first."""
    pairs = []
    for key, repl in (("inbox", ""), ("outbox", "<outbox>/")):
        if isinstance(report.get(key), str) and report[key].startswith("/"):
            pairs.append((report[key].rstrip("/") + "/", repl))
    ledger = report.get("ledger")
    if isinstance(ledger, str) and ledger.startswith("/"):
        pairs.append((posixpath.dirname(ledger).rstrip("/") + "/", "<state>/"))
    return sorted(pairs, key=lambda p: len(p[0]), reverse=True)


def redact_paths(message: str, prefixes: list[tuple[str, str]]) -> str:
    """``message`` with server paths rewritten (see the module docstring)."""
    for prefix, repl in prefixes:
        message = message.replace(prefix, repl)

    def last_part(match: re.Match[str]) -> str:
        base = posixpath.basename(match.group(1).rstrip("/"))
        return f"…/{base}" if base else "…/"

    return _ABSOLUTE.sub(last_part, message)


def _clean(value: Any, key: str | None, prefixes: list[tuple[str, str]]) -> Any:
    kind = type(value)  # exact types first: this walks every field of every file
    if kind is str:
        if key in MESSAGE_KEYS:
            value = redact_paths(value, prefixes)
        return value if value.isprintable() else display(value)
    if value is None or kind is bool or kind is int:
        return value
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is dict or isinstance(value, Mapping):
        return {_clean(str(k), None, prefixes): _clean(v, str(k), prefixes)
                for k, v in value.items()}  # fmt: skip
    if kind is list or kind is tuple:
        return [_clean(v, key, prefixes) for v in value]
    if isinstance(value, int | float):
        return _clean(float(value) if isinstance(value, float) else int(value), key, prefixes)
    return display(str(value))


def public_report(report: Mapping[str, Any], *, include_files: bool = False) -> dict[str, Any]:
    """The report as the listener serves it (see the module docstring); pure.

    ``files`` (every file the ledger knows: megabytes for a large inbox) is left out
    unless ``include_files``; ``folders`` summarises what people look for in bounded lists.
    """
    out: dict[str, Any] = {k: v for k, v in report.items() if k not in HIDDEN_KEYS}
    service = report.get("service")
    if isinstance(service, Mapping):
        out["service"] = {k: v for k, v in service.items() if k not in HIDDEN_SERVICE_KEYS}
    if not include_files:
        out.pop("files", None)
    return _clean(out, None, _prefixes(report))


def encode_json(data: Any) -> bytes:
    """Compact UTF-8 JSON, HTML-inert; non-finite floats become null."""
    text = json.dumps(_finite(data), ensure_ascii=False, separators=(",", ":"))
    text = _JSON_UNSAFE.sub(lambda m: _JSON_ESCAPES[m.group(0)], text)
    return text.encode("utf-8", "backslashreplace")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
