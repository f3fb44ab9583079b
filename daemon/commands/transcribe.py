"""``whisperd transcribe FILE...``: the service's pipeline for files named on the command line.

Settings: the configuration's defaults, the folder rules when a file lies inside the inbox,
then the command-line flags. Outputs go to ``-o DIR`` or next to each file. One bad file
never stops the others; the exit status says whether all succeeded.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path, PurePosixPath

import structlog

from daemon.config import Config, JobSettings, Resolver, name_matcher, with_overrides
from daemon.engines import Engine, create
from daemon.errors import WhisperdError
from daemon.jobs import pipeline
from daemon.models import ModelCache

log = structlog.get_logger(__name__)


def _overrides(args: argparse.Namespace) -> dict:
    flags = {
        "model": args.model,
        "language": args.language,
        "task": args.task,
        "device": args.device,
        "formats": [f.strip() for f in args.formats.split(",")] if args.formats else None,
    }
    return {key: value for key, value in flags.items() if value is not None}


def _settings_for(rules: Resolver, source: Path) -> JobSettings:
    try:
        rel = source.relative_to(rules.cfg.inbox)
    except ValueError:
        return rules.cfg.defaults
    return rules.resolve(PurePosixPath(rel.as_posix()).parent).settings


class _Bar:
    """A per-file progress bar on a terminal (stderr); silent otherwise."""

    def __init__(self, label: str) -> None:
        self._bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=100, desc=label[-40:], unit="%", leave=False, file=sys.stderr)

    def update(self, fraction: float) -> None:
        if self._bar is not None:
            self._bar.n = round(fraction * 100)
            self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def run(cfg: Config, args: argparse.Namespace) -> int:
    overrides = _overrides(args)
    if overrides:
        cfg = with_overrides(cfg, **overrides)
    rules = Resolver(cfg)
    out_root = Path(args.output_dir).resolve() if args.output_dir else None
    cache = ModelCache(cfg.model_dir, cfg.models.cache_size, base_dir=cfg.path.parent)
    engine_by_name: dict[str, Engine] = {}
    is_media = name_matcher(cfg.watch.include)
    failures: list[str] = []
    audio_total = 0.0
    started = time.monotonic()
    for given in args.files:
        source = Path(os.path.abspath(given))
        bar = _Bar(given)
        try:
            if source.is_dir():
                raise WhisperdError(f"{given}: is a folder; name the media files in it")
            if not source.exists():
                raise WhisperdError(f"{given}: no such file")
            settings = _settings_for(rules, source)
            if settings.engine not in engine_by_name:
                engine_by_name[settings.engine] = create(settings.engine, cache)
            result = pipeline.run(
                source,
                source_label=given,
                settings=settings,
                out_dir=out_root or source.parent,
                engine=engine_by_name[settings.engine],
                is_media=is_media,
                progress=bar.update,
            )
        except WhisperdError as err:
            bar.close()
            failures.append(given)
            message = str(err)
            for prefix in (f"{source}: ", f"{given}: "):
                message = message.removeprefix(prefix)
            print(f"FAILED {given}: {message}", file=sys.stderr)
            continue
        except Exception as err:  # a bug: report it, keep going with the other files
            bar.close()
            failures.append(given)
            log.exception("internal error", file=given)
            print(f"FAILED {given}: internal error ({type(err).__name__}: {err})", file=sys.stderr)
            continue
        bar.close()
        audio_total += result.audio_seconds
        names = ", ".join(p.name for p in result.outputs)
        print(
            f"ok {given}: {result.transcript.language}, {result.audio_seconds:.1f} s audio "
            f"in {result.processing_seconds:.1f} s → {names}"
        )
    elapsed = time.monotonic() - started
    done = len(args.files) - len(failures)
    print(
        f"{len(args.files)} file{'s' if len(args.files) != 1 else ''}: {done} transcribed, "
        f"{len(failures)} failed ({audio_total:.1f} s of audio in {elapsed:.1f} s)"
    )
    return 1 if failures else 0
