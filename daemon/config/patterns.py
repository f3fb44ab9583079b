"""The one file-name matcher, whisperd's own files, what a ``ready_marker`` setting names,
and folder patterns.

:func:`name_matcher`: ``watch.include`` and ``watch.ignore`` globs, case-insensitive. The
watcher (is this file a candidate? is this path component ignored?), the output naming
(which siblings are media, for collision-safe stems) and ``whisperd explain`` all ask the
same question through it, so they can never disagree. :func:`own_file`: names whisperd
writes itself (its outputs, temp files, ``.error.txt``), never taken as input whatever the
patterns say: with ``outputs_beside_source`` they are written into the inbox.

:func:`marker_present`, :func:`marker_path`, :func:`folder_markers`: a ``ready_marker`` is
a template naming one file's marker (``'{name}.ready'``) or a pattern for the folder's
(``'*.done'``); intake waits for it, the worker removes it after success.

:func:`rule_key`, :func:`rule_matches`: a folder pattern (the key of a folder rule, an entry
of a notification target's ``folders``) and whether it covers a folder.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
from collections.abc import Callable, Iterable
from typing import Any

from daemon.config.tables import ERROR_SUFFIX, FORMATS, TEMP_SUFFIX

NameMatcher = Callable[[str], bool]
_OUTPUT_SUFFIXES = tuple(f".{fmt}" for fmt in FORMATS)


def own_file(name: str) -> bool:
    """Whether ``name`` is a file whisperd writes: an output format (txt, srt, vtt, tsv,
    json; no media file ends so), an ``.error.txt`` or a temp file."""
    low = name.lower()
    return low.endswith((*_OUTPUT_SUFFIXES, ERROR_SUFFIX, TEMP_SUFFIX))


@functools.lru_cache(maxsize=64)
def _compiled(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    parts = [f"(?:{fnmatch.translate(p)})" for p in patterns]
    return re.compile("|".join(parts), re.IGNORECASE) if parts else None


def name_matcher(patterns: Iterable[str], *, empty: bool = False) -> NameMatcher:
    """A test of one file name (not a path) against globs, ignoring case.

    With no patterns at all, every name matches when ``empty`` is True, none otherwise.
    """
    regex = _compiled(tuple(patterns))
    if regex is None:
        return lambda name: empty
    match = regex.match
    return lambda name: match(name) is not None


def marker_present(path: str, marker: str) -> bool:
    """Whether ``marker`` (a '{name}' template, or a pattern) exists beside ``path``."""
    folder, name = os.path.split(path)
    if "{" in marker:
        stem = os.path.splitext(name)[0]
        return os.path.isfile(os.path.join(folder, marker.format(name=name, stem=stem)))
    try:
        entries = os.listdir(folder or ".")
    except OSError:
        return False
    pattern = marker.lower()
    return any(fnmatch.fnmatchcase(e.lower(), pattern) for e in entries if e != name)


def folder_markers(folder: str, marker: str) -> list[str]:
    """The files of ``folder`` that a folder pattern (``'*.done'``) matches."""
    try:
        entries = os.listdir(folder or ".")
    except OSError:
        return []
    pattern = marker.lower()
    return [os.path.join(folder, e) for e in entries if fnmatch.fnmatchcase(e.lower(), pattern)]


def marker_path(path: str, marker: str) -> str | None:
    """The per-file marker of ``path`` (a '{name}' template), None for a folder pattern."""
    if "{" not in marker:
        return None
    folder, name = os.path.split(path)
    return os.path.join(folder, marker.format(name=name, stem=os.path.splitext(name)[0]))


# --- folder patterns (the keys of folder rules, a notify target's folders) -----------------


def is_glob(key: str) -> bool:
    return any(c in key for c in "*?[")


def rule_matches(key: str, parts: tuple[str, ...]) -> bool:
    """Whether rule ``key`` matches the folder ``parts`` or one of its ancestors."""
    pattern = key.split("/")
    return len(parts) >= len(pattern) and all(map(fnmatch.fnmatchcase, parts, pattern))


def rule_key(raw: Any) -> tuple[str, str | None]:
    """The normalised rule key and a problem with it, if any."""
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        return str(raw), "must be a folder name or pattern"
    text = str(raw).strip()
    if "\\" in text:
        return text, "use '/' between folder names"
    if text.startswith("/"):
        return text, "must be relative to the inbox, like 'es' or 'clients/*'"
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts:
        return text, "must be a folder inside the inbox (no '..')"
    if not parts:
        return text, "the inbox itself is configured by defaults"
    return "/".join(parts), None
