"""The ``whisperd`` command: argument parsing and exit codes; the work is in the modules."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from enum import IntEnum
from pathlib import Path, PurePosixPath

from daemon import __version__
from daemon import config as config_mod
from daemon import log as logsetup
from daemon.errors import AlreadyRunningError, ConfigError, WhisperdError


class Exit(IntEnum):
    OK = 0
    FAILED = 1  # some files failed (transcribe), or the command could not do its work
    USAGE = 2  # bad arguments (argparse uses 2 as well)
    CONFIG = 3  # the configuration is invalid or missing
    ALREADY_RUNNING = 4  # another service holds the state_dir lock
    INTERRUPTED = 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="whisperd",
        description="Watched-folder transcription with OpenAI Whisper.",
    )
    parser.add_argument("--version", action="version", version=f"whisperd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "-c",
            "--config",
            metavar="FILE",
            help="configuration file (default: $WHISPERD_CONFIG, ./config/whisperd.yaml, "
            "/etc/whisperd/whisperd.yaml)",
        )
        return p

    p = with_config(sub.add_parser("run", help="run the watched-folder service (foreground)"))
    p = with_config(sub.add_parser("status", help="queue, running jobs, failures, throughput"))
    p.add_argument("--json", action="store_true", help="machine-readable, with every file")
    p = with_config(sub.add_parser("retry", help="queue failed files again"))
    p.add_argument("paths", nargs="*", metavar="PATH", help="inbox files or folders")
    p.add_argument("--failed", action="store_true", help="every failed file")

    p = with_config(sub.add_parser("transcribe", help="transcribe files named here, once"))
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--model", "-m", help="model name or checkpoint path")
    p.add_argument("--language", "-l", help="language code or name (default: detect)")
    p.add_argument("--task", choices=["transcribe", "translate"])
    p.add_argument("--formats", "-f", help="comma-separated: txt,srt,vtt,tsv,json or all")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    p.add_argument("-o", "--output-dir", metavar="DIR", help="default: next to each file")

    with_config(sub.add_parser("check-config", help="validate the configuration"))
    p = with_config(sub.add_parser("explain", help="effective settings and outputs for a path"))
    p.add_argument("path", metavar="PATH", help="a file in (or relative to) the inbox")

    models = sub.add_parser("models", help="list or import models")
    msub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    p = with_config(msub.add_parser("list", help="models available in model_dir"))
    p.add_argument("--model-dir", metavar="DIR", help="instead of the config's model_dir")
    p = with_config(
        msub.add_parser("import", help="convert a CTranslate2 / faster-whisper model directory")
    )
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="model directories (all parts)")
    p.add_argument("--name", required=True, help="the name to use as `model:` in the config")
    p.add_argument("--model-dir", metavar="DIR", help="instead of the config's model_dir")
    p.add_argument("--force", action="store_true", help="replace an existing model")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(_dispatch(args))
    except ConfigError as err:
        print(f"whisperd: {err}", file=sys.stderr)
        return Exit.CONFIG
    except AlreadyRunningError as err:
        print(f"whisperd: {err}", file=sys.stderr)
        return Exit.ALREADY_RUNNING
    except WhisperdError as err:
        print(f"whisperd: {err}", file=sys.stderr)
        return Exit.FAILED
    except KeyboardInterrupt:
        print("whisperd: interrupted", file=sys.stderr)
        return Exit.INTERRUPTED


def _test_engine_hook(env: dict[str, str] | os._Environ[str]) -> None:
    """WHISPERD_TEST_ENGINE=module:Class replaces every engine (tests only: a fast fake)."""
    spec = env.get("WHISPERD_TEST_ENGINE")
    if not spec:
        return
    import importlib

    from daemon import engine

    module, _, cls = spec.partition(":")
    factory = getattr(importlib.import_module(module), cls)
    for name in list(engine.ENGINES):
        engine.ENGINES[name] = factory


def _dispatch(args: argparse.Namespace) -> int:
    command = args.command
    _test_engine_hook(os.environ)
    logsetup.setup("warning")  # until the configuration says otherwise; logs go to stderr
    if command == "models":
        return _models(args)
    if command == "transcribe":
        from daemon import transcribe_cmd

        cfg = _load(args.config, required=False)
        logsetup.setup(cfg.log.level, cfg.log.format)
        return transcribe_cmd.run(cfg, args)
    cfg = _load(args.config)
    logsetup.setup(cfg.log.level if command == "run" else "warning", cfg.log.format)
    if command == "check-config":
        print(f"{cfg.path}: OK")
        return Exit.OK
    if command == "explain":
        return _explain(cfg, args.path)
    from daemon import service

    if command == "run":
        return service.run(cfg)
    if command == "status":
        return service.status(cfg, as_json=args.json)
    if command == "retry":
        if not args.paths and not args.failed:
            print("whisperd retry: name files or folders, or pass --failed", file=sys.stderr)
            return Exit.USAGE
        return service.retry(cfg, args.paths or None)
    raise AssertionError(command)


def _load(explicit: str | None, *, required: bool = True) -> config_mod.Config:
    try:
        path = config_mod.find_config(explicit, os.environ)
    except ConfigError:
        if required or explicit:
            raise
        return config_mod.builtin_config()
    return config_mod.load_config(path)


def _explain(cfg: config_mod.Config, given: str) -> int:
    from daemon.pipeline import media_matcher, plan_outputs

    path = Path(given)
    absolute = path if path.is_absolute() else (Path.cwd() / path)
    try:
        rel = PurePosixPath(Path(os.path.abspath(absolute)).relative_to(cfg.inbox).as_posix())
    except ValueError:
        rel = PurePosixPath(given)  # taken as inbox-relative
    source = cfg.inbox / rel
    resolved = cfg.resolve(rel.parent)
    settings = resolved.settings
    from daemon.outputs import mirror_dir

    out_dir = mirror_dir(cfg.inbox, cfg.outbox, source)
    language = settings.language or "{language}"
    targets = plan_outputs(source, settings, out_dir, language, media_matcher(cfg.watch.include))
    print(f"file:     {rel}")
    print(f"folder:   {rel.parent.as_posix()}")
    print(
        "rules:    defaults"
        + "".join(f" < {key!r}" for key in resolved.rules)
        + ("" if resolved.rules else " (no folder rule matches)")
    )
    eligible = media_matcher(cfg.watch.include)(rel.name)
    print(f"watched:  {'yes' if eligible else 'no: the name matches no watch.include pattern'}")
    print("settings:")
    for key, value in settings.model_dump(mode="json").items():
        origin = next(
            (rule for rule in reversed(resolved.rules) if key in cfg.folders[rule]), "defaults"
        )
        print(f"  {key}: {json.dumps(value, ensure_ascii=False)}   [{origin}]")
    if settings.needs_word_timestamps and not settings.word_timestamps:
        print("  (word timestamps are computed anyway: a subtitle option needs them)")
    print("outputs:")
    for target in targets.values():
        print(f"  {target}")
    if settings.language is None and "{language}" in settings.output_name:
        print("  ({language} is the language detected in each file)")
    return Exit.OK


def _models(args: argparse.Namespace) -> int:
    from daemon import models

    model_dir = Path(args.model_dir).resolve() if args.model_dir else _load(args.config).model_dir
    if args.models_command == "import":
        info = models.import_model([Path(s) for s in args.sources], args.name, model_dir,
                                   force=args.force)  # fmt: skip
        kind = "multilingual" if info["multilingual"] else "English-only"
        print(
            f"imported {args.name!r} ({kind}, {info['size'] / 1e6:.0f} MB, "
            f"sha256 {info['sha256'][:12]}…) into {model_dir / (args.name + '.pt')}"
        )
        return Exit.OK
    entries = models.list_models(model_dir)
    if not entries:
        print(
            f"no models in {model_dir}; import one with 'whisperd models import DIR... --name NAME'"
        )
        return Exit.OK
    print(f"models in {model_dir}:")
    width = max(len(e.name) for e in entries)
    for e in entries:
        lang = {True: "multilingual", False: "English-only", None: "?"}[e.multilingual]
        print(
            f"  {e.name:<{width}}  {e.size / 1e6:7.1f} MB  {e.origin:<11}  {lang:<12}  "
            f"{', '.join(e.engines):<30}  {e.detail}"
        )
    return Exit.OK
