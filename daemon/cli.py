"""The ``whisperd`` command: argument parsing and exit codes.

The work of each command is in :mod:`daemon.commands` (``run``: :mod:`daemon.service`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from enum import IntEnum
from pathlib import Path

from daemon import __version__
from daemon import log as logsetup
from daemon.config import Config, builtin_config, find_config, load_config
from daemon.errors import AlreadyRunningError, ConfigError, WhisperdError


class Exit(IntEnum):
    OK = 0
    FAILED = 1  # some files failed (transcribe), or the command could not do its work
    USAGE = 2  # bad arguments (argparse uses 2 as well)
    CONFIG = 3  # the configuration is invalid or missing
    ALREADY_RUNNING = 4  # another service holds the state_dir lock
    INTERRUPTED = 130


def _with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help="configuration file (default: $WHISPERD_CONFIG, ./config/whisperd.yaml, "
        "/etc/whisperd/whisperd.yaml)",
    )
    return p


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="whisperd",
        description="Watched-folder transcription with OpenAI Whisper.",
    )
    parser.add_argument("--version", action="version", version=f"whisperd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = _with_config(sub.add_parser("run", help="run the watched-folder service (foreground)"))
    p = _with_config(sub.add_parser("status", help="queue, running jobs, failures, throughput"))
    p.add_argument("--json", action="store_true", help="machine-readable, with every file")
    p = _with_config(sub.add_parser("retry", help="queue failed files again"))
    p.add_argument("paths", nargs="*", metavar="PATH", help="inbox files or folders")
    p.add_argument("--failed", action="store_true", help="every failed file")

    p = _with_config(sub.add_parser("render", help="write outputs again from the stored JSON"))
    p.add_argument("paths", nargs="*", metavar="PATH", help="inbox files or folders")
    p.add_argument("--all", action="store_true", help="every done file")
    p = _with_config(sub.add_parser("requeue", help="transcribe done files again (new jobs)"))
    p.add_argument("paths", nargs="*", metavar="PATH", help="inbox files or folders")
    p.add_argument("--all-done", action="store_true", help="every done file")
    p.add_argument("--folder", metavar="F", help="the done files in this inbox folder")

    p = _with_config(sub.add_parser("transcribe", help="transcribe files named here, once"))
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--model", "-m", help="model name or checkpoint path")
    p.add_argument("--language", "-l", help="language code or name (default: detect)")
    p.add_argument("--task", choices=["transcribe", "translate"])
    p.add_argument("--formats", "-f", help="comma-separated: txt,srt,vtt,tsv,json or all")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    p.add_argument("-o", "--output-dir", metavar="DIR", help="default: next to each file")

    _with_config(sub.add_parser("check-config", help="validate the configuration"))
    p = _with_config(sub.add_parser("explain", help="effective settings and outputs for a path"))
    p.add_argument("path", metavar="PATH", help="a file in (or relative to) the inbox")
    _ledger_commands(sub)
    _model_commands(sub)
    return parser


def _ledger_commands(sub: argparse._SubParsersAction) -> None:
    ledger = sub.add_parser("ledger", help="move the job ledger (SQLite → PostgreSQL)")
    lsub = ledger.add_subparsers(dest="ledger_command", required=True, metavar="ACTION")
    p = _with_config(
        lsub.add_parser("migrate", help="copy this server's SQLite ledger into PostgreSQL")
    )
    p.add_argument("--to", metavar="DSN",
                   help="the empty PostgreSQL database (default: the configured ledger.dsn "
                   "or $WHISPERD_LEDGER_DSN)")  # fmt: skip


def _model_commands(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="list or import models")
    msub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    p = _with_config(msub.add_parser("list", help="models available in model_dir"))
    p.add_argument("--model-dir", metavar="DIR", help="instead of the config's model_dir")
    p = _with_config(
        msub.add_parser("import", help="convert a CTranslate2 / faster-whisper model directory")
    )
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="model directories (all parts)")
    p.add_argument("--name", required=True, help="the name to use as `model:` in the config")
    p.add_argument("--model-dir", metavar="DIR", help="instead of the config's model_dir")
    p.add_argument("--force", action="store_true", help="replace an existing model")


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


def _dispatch(args: argparse.Namespace) -> int:
    command = args.command
    logsetup.setup("warning")  # until the configuration says otherwise; logs go to stderr
    if command == "models":
        return _models(args)
    if command == "transcribe":
        from daemon.commands import transcribe

        cfg = _load(args.config, required=False)
        logsetup.setup(cfg.log.level, cfg.log.format)
        _warn_deprecated(cfg)
        return transcribe.run(cfg, args)
    cfg = _load(args.config)
    logsetup.setup(cfg.log.level if command in ("run", "render") else "warning", cfg.log.format)
    if command == "check-config":
        for notice in cfg.notices:
            print(f"{cfg.path}: warning: {notice}")
        print(f"{cfg.path}: OK")
        return Exit.OK
    if command == "run":
        _warn_deprecated(cfg)
    if command == "explain":
        from daemon.commands import explain

        return explain.run(cfg, args.path)
    if command == "run":
        from daemon import service

        return service.run(cfg)
    if command == "status":
        from daemon.commands import status

        return status.show(cfg, as_json=args.json)
    if command == "ledger":
        from daemon.commands import ledger

        return ledger.migrate(cfg, args.to)
    if command == "retry":
        if not args.paths and not args.failed:
            print("whisperd retry: name files or folders, or pass --failed", file=sys.stderr)
            return Exit.USAGE
        from daemon.commands import retry

        return retry.run(cfg, args.paths or None)
    if command in ("render", "requeue"):
        return _render_or_requeue(cfg, args)
    raise AssertionError(command)


def _render_or_requeue(cfg: Config, args: argparse.Namespace) -> int:
    everything = args.all if args.command == "render" else args.all_done
    chosen = bool(args.paths) or everything or getattr(args, "folder", None) is not None
    if not chosen or (everything and (args.paths or getattr(args, "folder", None))):
        flags = "--all" if args.command == "render" else "--all-done or --folder F"
        print(f"whisperd {args.command}: name files or folders, or pass {flags} (not both)",
              file=sys.stderr)  # fmt: skip
        return Exit.USAGE
    if args.command == "render":
        from daemon.commands import render

        return render.run(cfg, None if everything else args.paths)
    from daemon.commands import requeue

    return requeue.run(cfg, None if everything else args.paths, args.folder)


def _warn_deprecated(cfg: Config) -> None:
    """One warning per deprecated setting the configuration still uses."""
    import structlog

    for notice in cfg.notices:
        structlog.get_logger("daemon.config").warning("deprecated setting", detail=notice)


def _load(explicit: str | None, *, required: bool = True) -> Config:
    try:
        path = find_config(explicit, os.environ)
    except ConfigError:
        if required or explicit:
            raise
        return builtin_config()
    return load_config(path)


def _models(args: argparse.Namespace) -> int:
    from daemon.commands import models

    model_dir = Path(args.model_dir).resolve() if args.model_dir else _load(args.config).model_dir
    if args.models_command == "import":
        return models.import_(args.sources, args.name, model_dir, force=args.force)
    return models.list_(model_dir)
