"""Deprecated settings, read into their successors before validation, with a notice each.

``vad_filter`` and ``vad_parameters`` were faster-whisper's own speech filter; speech
detection is now whisperd's, for both engines, in the ``vad`` section (on by default):

* ``vad_filter: true`` is read as ``vad: {enabled: true}``; ``vad_filter: false`` was the
  old default and only turned faster-whisper's filter off, so it is ignored (``vad.enabled:
  false`` turns the new detection off);
* ``vad_parameters`` keys become ``vad`` keys (``min_silence_duration_ms`` →
  ``min_silence_ms``, ...); a key the rule also sets in ``vad`` keeps the ``vad`` value.

:func:`migrate` rewrites the defaults and every folder rule of the raw YAML mapping; the
loader keeps the notices in ``Config.notices`` (the CLI shows them as warnings).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from daemon.config.messages import Loc, show

#: faster-whisper's VAD option names (``vad_parameters``) → the ``vad`` section's keys.
RENAMED_VAD_KEYS = {
    "threshold": "threshold",
    "neg_threshold": "neg_threshold",
    "min_speech_duration_ms": "min_speech_ms",
    "max_speech_duration_s": "max_speech_s",
    "min_silence_duration_ms": "min_silence_ms",
    "speech_pad_ms": "speech_pad_ms",
}


def _rule(settings: Mapping[str, Any], loc: Loc) -> tuple[dict, list[str], list[tuple[Loc, str]]]:
    """One settings mapping without the old keys; notices and errors about them."""
    out = dict(settings)
    notices: list[str] = []
    errors: list[tuple[Loc, str]] = []
    where = ".".join(map(str, loc))
    vad = dict(out["vad"]) if isinstance(out.get("vad"), Mapping) else None
    added: dict[str, Any] = {}
    if "vad_filter" in out:
        value = out.pop("vad_filter")
        if value is True:
            added["enabled"] = True
            notices.append(f"{where}.vad_filter is deprecated: read as vad.enabled: true")
        elif value is False:
            notices.append(
                f"{where}.vad_filter is deprecated and ignored: speech detection is now "
                "vad.enabled (default true, both engines)"
            )
        else:
            errors.append(((*loc, "vad_filter"), f"must be true or false, got {show(value)}"))
    if "vad_parameters" in out:
        params = out.pop("vad_parameters")
        if params is not None and not isinstance(params, Mapping):
            errors.append(((*loc, "vad_parameters"), f"must be a mapping, got {show(params)}"))
            params = None
        for key, value in (params or {}).items():
            if key not in RENAMED_VAD_KEYS:
                known = ", ".join(RENAMED_VAD_KEYS)
                errors.append(((*loc, "vad_parameters"), f"unknown VAD parameter "
                               f"{show(key)} (use {known})"))  # fmt: skip
            elif isinstance(value, int | float) and not isinstance(value, bool):
                new = RENAMED_VAD_KEYS[key]
                added[new] = round(value) if new.endswith("_ms") and math.isfinite(value) else value
            else:
                errors.append(((*loc, "vad_parameters", key), f"must be a number, got "
                               f"{show(value)}"))  # fmt: skip
        if params:
            notices.append(f"{where}.vad_parameters is deprecated: read as the vad section")
    if added:
        out["vad"] = {**added, **(vad or {})}
    return out, notices, errors


def migrate(raw: Mapping[str, Any]) -> tuple[dict[str, Any], list[str], list[tuple[Loc, str]]]:
    """``raw`` (the YAML mapping) with deprecated keys read into their successors."""
    data = dict(raw)
    notices: list[str] = []
    errors: list[tuple[Loc, str]] = []
    if isinstance(data.get("defaults"), Mapping):
        data["defaults"], n, e = _rule(data["defaults"], ("defaults",))
        notices += n
        errors += e
    if isinstance(data.get("folders"), Mapping):
        folders = {}
        for key, rule in data["folders"].items():
            if isinstance(rule, Mapping):
                rule, n, e = _rule(rule, ("folders", str(key)))
                notices += n
                errors += e
            folders[key] = rule
        data["folders"] = folders
    return data, notices, errors
