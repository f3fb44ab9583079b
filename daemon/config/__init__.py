"""Configuration: the schema, loading with located errors, per-folder rules, cross-checks.

Owns everything about ``whisperd.yaml``: :mod:`.schema` (frozen pydantic models, a
description on every field), :mod:`.values` (the value types and their messages),
:mod:`.tables` (engines, formats, languages, official models, default patterns),
:mod:`.library` (media-library value types, the defaults that follow the output mode),
:mod:`.languages` (Whisper codes ↔ ISO 639-1/-2), :mod:`.speech` (the vad, guard and
subtitles sections), :mod:`.deprecated` (old keys read into new ones, with a notice),
:mod:`.load` (find → YAML → validate → cross-check), :mod:`.rules` (settings per folder),
:mod:`.checks` (combinations that cannot work), :mod:`.messages` (how errors read) and
:mod:`.patterns` (the one file-name matcher).

A leaf: every package may import it; it imports only :mod:`daemon.errors` and
:mod:`daemon.whisper_parts`.
"""

from daemon.config.load import (
    DSN_VAR,
    ENV_VAR,
    LOCAL_CONFIG,
    SYSTEM_CONFIG,
    builtin_config,
    find_config,
    load_config,
    with_overrides,
)
from daemon.config.patterns import (
    NameMatcher,
    folder_markers,
    marker_path,
    marker_present,
    name_matcher,
    own_file,
)
from daemon.config.rules import Resolved, Resolver
from daemon.config.schema import (
    Config,
    JobSettings,
    JobsSettings,
    LedgerSettings,
    LogSettings,
    MediaServerSettings,
    ModelsSettings,
    NodeSettings,
    WatchSettings,
    WorkerSettings,
)
from daemon.config.speech import GuardSettings, SubtitleSettings, VadSettings
from daemon.config.tables import (
    COMPUTE_TYPES,
    ENGINES,
    FORMATS,
    IGNORE_PATTERNS,
    MEDIA_PATTERNS,
    OFFICIAL_MODELS,
    PLACEHOLDERS,
    SKIP_MARKER,
    VAD_KEYS,
)
from daemon.config.values import model_name

__all__ = [
    "COMPUTE_TYPES",
    "DSN_VAR",
    "ENGINES",
    "ENV_VAR",
    "FORMATS",
    "IGNORE_PATTERNS",
    "LOCAL_CONFIG",
    "MEDIA_PATTERNS",
    "OFFICIAL_MODELS",
    "PLACEHOLDERS",
    "SKIP_MARKER",
    "SYSTEM_CONFIG",
    "VAD_KEYS",
    "Config",
    "GuardSettings",
    "JobSettings",
    "JobsSettings",
    "LedgerSettings",
    "LogSettings",
    "MediaServerSettings",
    "ModelsSettings",
    "NameMatcher",
    "NodeSettings",
    "Resolved",
    "Resolver",
    "SubtitleSettings",
    "VadSettings",
    "WatchSettings",
    "WorkerSettings",
    "builtin_config",
    "find_config",
    "folder_markers",
    "load_config",
    "marker_path",
    "marker_present",
    "model_name",
    "name_matcher",
    "own_file",
    "with_overrides",
]
