"""Per-folder settings: which rules apply to a folder, how they merge, and a memo of results.

A file's settings are the ``defaults``, then every ``folders:`` rule that matches its folder
or one of its ancestors, from least to most specific: deeper keys win, then literal keys over
globs, then the later rule; ``*`` matches one folder name (:func:`derive`). A rule's own
values are validated when the file is loaded (:func:`validate_rules`); how the rules combine
is checked per folder (:class:`Resolver`).

The settings themselves are frozen; :class:`Resolver` keeps the memo of derived folders
outside them, one resolver per loaded configuration.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from pydantic import ValidationError

from daemon.config.checks import job_problems
from daemon.config.messages import Loc, show, translate
from daemon.config.patterns import is_glob, rule_key, rule_matches
from daemon.config.schema import Config, JobSettings
from daemon.errors import ConfigError


@dataclass(frozen=True)
class Resolved:
    """The job settings for one folder and the rule keys applied, least to most specific."""

    settings: JobSettings
    rules: tuple[str, ...]


def folder_parts(folder: str | PurePosixPath) -> tuple[str, ...]:
    """``'a/b/'``, ``PurePosixPath('a/b')`` → ``('a', 'b')``; the inbox itself is ``()``."""
    return tuple(p for p in PurePosixPath(folder).parts if p not in ("", ".", "/"))


def derive(cfg: Config, parts: tuple[str, ...]) -> Resolved:
    """The defaults with every matching rule merged over them (not checked across fields)."""
    rules = sorted(
        (key for key in cfg.folders if rule_matches(key, parts)),
        key=lambda k: (len(k.split("/")), not is_glob(k), list(cfg.folders).index(k)),
    )
    if not rules:
        return Resolved(cfg.defaults, ())
    merged = cfg.defaults.raw()  # "auto" settings stay null: the rule's mode decides
    for key in rules:
        merged = merge(merged, cfg.folders[key])
    return Resolved(JobSettings.model_validate(merged), tuple(rules))


class Resolver:
    """Settings per folder of one :class:`Config`, derived once per folder and remembered."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self._memo: dict[tuple[str, ...], Resolved] = {}
        self._lock = threading.Lock()

    def resolve(self, folder: str | PurePosixPath) -> Resolved:
        """Settings for files in ``folder`` (inbox-relative, '' or '.' for the inbox itself).

        Raises ConfigError if the rules combine into an invalid job (e.g. an English-only
        model from one rule, language es from another).
        """
        parts = folder_parts(folder)
        with self._lock:
            found = self._memo.get(parts)
        if found is not None:
            return found
        found = derive(self.cfg, parts)
        problems = job_problems(found.settings)
        if problems:
            where = "/".join(parts) or "."
            raise ConfigError(
                self.cfg.path,
                [f"folder {where!r}, rules {', '.join(found.rules)}: {problems[0][1]}"],
            )
        with self._lock:
            self._memo[parts] = found
        return found

    def settings_for_file(self, rel: str | PurePosixPath) -> JobSettings:
        """The settings of ``rel``'s folder, or the defaults where its rules clash: where an
        ``.error.txt`` goes and whether one is written (an error is never lost to another)."""
        try:
            return self.resolve(PurePosixPath(rel).parent).settings
        except ConfigError:
            return self.cfg.defaults


#: Sections of the job settings that a rule merges key by key.
SECTIONS = ("vad", "guard", "subtitles")


def merge(base: Mapping[str, Any], rule: Mapping[str, Any]) -> dict[str, Any]:
    """``rule`` over ``base``; the :data:`SECTIONS` merge key by key."""
    merged = dict(base)
    for key, value in rule.items():
        if key in SECTIONS and isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def sets(rule: Mapping[str, Any], dotted: str) -> bool:
    """Whether a folder rule sets the (possibly ``subtitles.``-dotted) key itself."""
    head, _, tail = dotted.partition(".")
    if head not in rule:
        return False
    sub = rule[head]
    return not tail or not isinstance(sub, Mapping) or tail in sub


def validate_rules(
    folders: Any, context: dict[str, Any]
) -> tuple[dict[str, dict[str, Any]], list[tuple[Loc, str]]]:
    """Validate each rule's values; keep the rule's own keys, normalised.

    Values are checked one by one here; how a rule combines with the defaults (and with
    the rules above it) is checked afterwards, on the merged settings.
    """
    if not isinstance(folders, Mapping):
        return {}, [(("folders",), f"must be a mapping of folder: settings, got {show(folders)}")]
    rules: dict[str, dict[str, Any]] = {}
    errors: list[tuple[Loc, str]] = []
    for raw_key, rule in folders.items():
        key, problem = rule_key(raw_key)
        loc: Loc = ("folders", key)
        if problem is None and key in rules:
            problem = "repeats a rule above (the same folder written differently)"
        if problem is None and not isinstance(rule, Mapping):
            problem = f"must be a mapping of settings like 'language: es', got {show(rule)}"
        if problem:
            errors.append((loc, problem))
            continue
        rule = {str(k): v for k, v in rule.items()}
        try:
            values = JobSettings.model_validate(rule, context=context).raw()
        except ValidationError as exc:
            errors += [(loc + where, message) for where, message in translate(exc, JobSettings)]
            continue
        rules[key] = {k: values[k] for k in rule}
        for section in SECTIONS:
            if isinstance(rule.get(section), Mapping):
                rules[key][section] = {k: values[section][k] for k in rule[section]}
    return rules, errors
