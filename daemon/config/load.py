"""Loading the configuration: find the file, read YAML, validate, cross-check; located errors.

The pipeline is fixed: :func:`load_config` reads the YAML file → validates the top-level
sections, the job defaults and the values of every folder rule → runs the cross-field
checks, among them each rule merged over the defaults (and the rules above it). Every
problem is collected and raised at once as a :class:`~daemon.errors.ConfigError`, one line
per problem with its dotted location. The environment enters only here
(``$WHISPERD_CONFIG`` in :func:`find_config`, ``$XDG_CACHE_HOME`` in :func:`builtin_config`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from daemon.config.checks import config_problems, job_problems, located
from daemon.config.deprecated import migrate
from daemon.config.messages import Loc, YamlLoader, line, show, translate, yaml_problem
from daemon.config.operate import validate_targets
from daemon.config.rules import derive, merge, sets, validate_rules
from daemon.config.schema import Config
from daemon.config.values import absolute
from daemon.errors import ConfigError

ENV_VAR = "WHISPERD_CONFIG"
LOCAL_CONFIG = Path("config/whisperd.yaml")  # relative to the current directory
SYSTEM_CONFIG = Path("/etc/whisperd/whisperd.yaml")

_SECTIONS = (
    "defaults", "folders", "watch", "jobs", "workers", "models", "ledger", "node", "log",
)  # fmt: skip
DSN_VAR = "WHISPERD_LEDGER_DSN"


def _prepare(raw: Mapping[Any, Any]) -> tuple[dict[str, Any], list[tuple[Loc, str]], list[str]]:
    """The raw mapping made ready to validate: errors so far, notices of deprecated keys."""
    # An empty section ('watch:' with every key commented out) means its defaults.
    data = {str(k): v for k, v in raw.items() if not (k in _SECTIONS and v is None)}
    errors: list[tuple[Loc, str]] = _lift_top_level(data)
    for key in ("path", "notices"):  # Config fields, but set by the loader, not the file
        if key in data:
            del data[key]
            errors.append(((key,), "unknown key"))
    data, notices, old_key_errors = migrate(data)
    return data, errors + old_key_errors, notices


def _build(
    raw: Mapping[Any, Any],
    path: Path,
    overridden: frozenset[str] = frozenset(),
    notices: tuple[str, ...] = (),
    env: Mapping[str, str] | None = None,
) -> Config:
    """Validate a parsed configuration: sections, folder rules, then cross-field checks.

    Long: one pipeline in order (sections, rules, cross-checks, the ledger's dsn, located
    errors), kept in one place so the order stays visible.
    """
    data, errors, found = _prepare(raw)
    notices = (*notices, *found)
    model_dir = data.get("model_dir", Config.model_fields["model_dir"].default)
    usable = isinstance(model_dir, os.PathLike) or (
        isinstance(model_dir, str) and model_dir.strip()
    )
    context = {
        "base": path.parent,
        "model_dir": absolute(model_dir, path.parent) if usable else None,
    }
    rules, rule_errors = validate_rules(data.pop("folders", {}), context)
    targets, target_errors = validate_targets(data.pop("notify", None))
    cfg = None
    try:
        cfg = Config.model_validate(
            {**data, "path": path, "notices": notices, "folders": rules, "notify": targets},
            context=context,
        )
    except ValidationError as exc:
        errors += translate(exc, Config)
        if all(loc[:1] == ("defaults",) for loc, _ in errors):  # the rest can be cross-checked
            rest = {k: v for k, v in data.items() if k != "defaults"}
            errors += config_problems(
                Config.model_validate({**rest, "path": path}, context=context)
            )
    errors += rule_errors + target_errors
    if cfg is not None and not errors:
        cfg, dsn_errors = _with_dsn(cfg, os.environ if env is None else env)
        errors += dsn_errors
        errors += config_problems(cfg)
        for problem in job_problems(cfg.defaults):
            by_override = located(problem, ("defaults",), lambda k: k.split(".")[0] in overridden)
            errors.append(by_override or located(problem, ("defaults",), lambda k: True))
        # Rules are checked against the file's defaults; with CLI overrides, a rule that
        # no longer fits fails only the files it covers, in Resolver.resolve().
        for key, rule in cfg.folders.items() if not overridden else ():
            for problem in job_problems(derive(cfg, tuple(key.split("/"))).settings):
                found = located(problem, ("folders", key), lambda k, r=rule: sets(r, k))
                if found:
                    errors.append(found)
    if errors:
        relabel = [
            (
                ("overrides", *loc[1:])
                if loc[:1] == ("defaults",) and loc[1:2] and loc[1] in overridden
                else loc,
                m,
            )
            for loc, m in errors
        ]
        raise ConfigError(path, [line(loc, m) for loc, m in relabel])
    return cfg


def _lift_top_level(data: dict[str, Any]) -> list[tuple[Loc, str]]:
    """``outputs_beside_source`` may be written at the top level: it is the defaults' value."""
    if "outputs_beside_source" not in data:
        return []
    value = data.pop("outputs_beside_source")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, Mapping):
        return []  # the defaults' own error is reported
    if "outputs_beside_source" in defaults:
        return [(("outputs_beside_source",), "also set in defaults: set it in one place")]
    data["defaults"] = {**defaults, "outputs_beside_source": value}
    return []


def _with_dsn(cfg: Config, env: Mapping[str, str]) -> tuple[Config, list[tuple[Loc, str]]]:
    """The PostgreSQL ledger's dsn: ``$WHISPERD_LEDGER_DSN``, else ``dsn_file``, else ``dsn``."""
    ledger = cfg.ledger
    if ledger.backend != "postgresql":
        return cfg, []
    dsn = (env.get(DSN_VAR) or "").strip() or None
    if dsn is None and ledger.dsn_file is not None:
        try:
            dsn = ledger.dsn_file.read_text(encoding="utf-8").strip() or None
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            return cfg, [(("ledger", "dsn_file"), f"cannot read {ledger.dsn_file}: {reason}")]
        if dsn is None:
            return cfg, [(("ledger", "dsn_file"), f"{ledger.dsn_file} is empty")]
    dsn = dsn or (ledger.dsn or "").strip() or None
    if dsn is None:
        return cfg, [(
            ("ledger", "dsn"),
            f"required for backend postgresql (or set ${DSN_VAR}, or ledger.dsn_file)",
        )]  # fmt: skip
    return cfg.model_copy(update={"ledger": ledger.model_copy(update={"dsn": dsn})}), []


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read, validate and return the configuration in ``path``; raises ConfigError.

    ``env`` (default: the process environment, read now) may supply the ledger's dsn.
    """
    path = Path(os.path.abspath(path))
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, ["file not found"]) from None
    except IsADirectoryError:
        raise ConfigError(path, ["is a folder, not a YAML file"]) from None
    except PermissionError:
        raise ConfigError(path, ["permission denied: this user cannot read it"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(path, [f"is not UTF-8 text (bad byte at offset {exc.start})"]) from None
    except OSError as exc:
        raise ConfigError(path, [f"cannot be read: {exc.strerror or exc}"]) from None
    try:
        raw = yaml.load(text, Loader=YamlLoader)  # a SafeLoader subclass: safe_load + duplicates
    except yaml.YAMLError as exc:
        raise ConfigError(path, [yaml_problem(exc)]) from None
    if raw is None:
        raise ConfigError(path, ["is empty: it must hold settings like 'inbox: /srv/inbox'"])
    if not isinstance(raw, dict):
        raise ConfigError(path, [f"must be a mapping of key: value settings, got {show(raw)}"])
    return _build(raw, path, env=env)


def find_config(explicit: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path:
    """The configuration file to use: ``-c`` value, $WHISPERD_CONFIG, ./config, /etc."""
    for given, how in ((explicit, "given with -c"), (env.get(ENV_VAR), f"from ${ENV_VAR}")):
        if given is not None and str(given) != "":
            path = Path(os.path.abspath(given))
            if path.is_file():
                return path
            problem = "is a folder, not a YAML file" if path.is_dir() else "file not found"
            raise ConfigError(path, [f"{problem} ({how})"])
    candidates = (Path.cwd() / LOCAL_CONFIG, SYSTEM_CONFIG)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ConfigError(
        "whisperd",
        [
            f"no configuration file: looked for {candidates[0]} and {candidates[1]} "
            f"(pass one with -c PATH or set ${ENV_VAR})"
        ],
    )


def builtin_config(env: Mapping[str, str] | None = None) -> Config:
    """The schema defaults with no folder rules, for ``whisperd transcribe`` without a file.

    Paths are under the current directory, except model_dir: openai-whisper's own download
    cache ($XDG_CACHE_HOME/whisper or ~/.cache/whisper), so models already fetched are reused.
    """
    env = os.environ if env is None else env
    cache = env.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    raw = {
        "inbox": "inbox",
        "outbox": "outbox",
        "state_dir": "var",
        "model_dir": f"{cache}/whisper",
    }
    return _build(raw, Path.cwd() / "<built-in defaults>")


def with_overrides(cfg: Config, **job_settings: Any) -> Config:
    """A copy whose defaults take these job settings (CLI flags), validated like the file.

    Folder rules still apply over the new defaults; one that no longer fits them (say an
    English-only model over a Spanish folder) fails in :class:`~daemon.config.rules.Resolver`
    for its files only. Errors are located as ``overrides.<key>``; a relative model path is
    taken from the config folder, so pass absolute paths.
    """
    raw = cfg.model_dump(exclude={"path", "notices", "defaults"})
    raw["defaults"] = merge(cfg.defaults.raw(), job_settings)
    return _build(raw, cfg.path, overridden=frozenset(job_settings), notices=cfg.notices)
