"""``whisperd render [PATH... | --all]``: write the outputs again from the stored JSON.

For each done file (the newest done version of each path named, or of every path), the
JSON output is read back (:func:`daemon.outputs.read_transcript`) and every format of the
file's *current* settings is written again (formats, subtitle limits and style,
output_name), atomically, without running the engine: minutes for an archive instead of
GPU days. Outputs of the old set that the new one does not write again are removed, except
the JSON itself (it is what the next ``render`` reads). A file whose JSON lacks what the
settings need (word timings for subtitle limits; or no JSON kept at all) is named with
the command that transcribes it again: ``whisperd requeue``. Safe while the service runs
(a file being transcribed is not done, so not rendered).
"""

from __future__ import annotations

import time
from pathlib import Path, PurePosixPath
from typing import Any

import structlog

from daemon.commands.retry import inbox_relative
from daemon.config import Config, JobSettings, Resolver, name_matcher
from daemon.errors import ConfigError, OutputError
from daemon.outputs import (
    from_ledger,
    ledger_name,
    missing_words,
    output_dir,
    plan_outputs,
    read_transcript,
    write_outputs,
)
from daemon.queue import Job, JobStore, open_ledger
from daemon.text import display
from daemon.web.summary import shell_arg

log = structlog.get_logger(__name__)

_WORD_OPTIONS = ("max_line_width", "max_line_count", "max_words_per_line", "highlight_words")


class NeedsRequeue(Exception):
    """This file cannot be rendered from what was stored; transcribing it again can."""


def run(cfg: Config, paths: list[str] | None) -> int:
    """Render the done files of ``paths`` (files or folders), or of every file."""
    rels = None if paths is None else [inbox_relative(cfg, p) for p in paths]
    rules = Resolver(cfg)
    rendered, problems = 0, 0
    with open_ledger(cfg) as ledger:
        jobs = ledger.done_jobs(rels)
        for job in jobs:
            try:
                render_one(cfg, rules, ledger, job)
                rendered += 1
            except NeedsRequeue as why:
                problems += 1
                print(f"{display(job.path)}: cannot render again: {why} (transcribe it again "
                      f"with: whisperd requeue {shell_arg(job.path)})")  # fmt: skip
            except (OutputError, ConfigError) as err:
                problems += 1
                print(f"{display(job.path)}: cannot render again: {err}")
    if not jobs:
        named = "" if rels is None else ": " + ", ".join(map(display, rels))
        print(f"no done file matches{named}")
        return 1
    print(f"{rendered} file{'s' if rendered != 1 else ''} rendered again"
          + (f"; {problems} could not be" if problems else ""))  # fmt: skip
    return 1 if problems else 0


def _json_output(cfg: Config, job: Job) -> Path:
    for rel in job.outputs:
        if rel.endswith(".json"):
            return from_ledger(cfg.outbox, rel)
    raise NeedsRequeue("no JSON output was kept (formats did not include json)")


def _needs_words(settings: JobSettings) -> str | None:
    sub = settings.subtitles
    for name in _WORD_OPTIONS:
        if getattr(sub, name) not in (None, False):
            return f"subtitles.{name}"
    if sub.style == "readable" and ("srt" in settings.formats or "vtt" in settings.formats):
        return "subtitles.style readable (its cues are built from words)"
    return None


def render_one(cfg: Config, rules: Resolver, ledger: JobStore, job: Job) -> list[Path]:
    """Write every current format of one done file from its JSON; the outputs written."""
    started = time.monotonic()
    stored = _json_output(cfg, job)
    transcript, meta = read_transcript(stored)
    settings = rules.resolve(PurePosixPath(job.path).parent).settings
    option = _needs_words(settings)
    if option and missing_words(transcript):
        raise NeedsRequeue(f"its JSON has no word timings, which {option} needs")
    source = cfg.inbox / job.path
    targets = plan_outputs(source, settings, output_dir(cfg, settings, source),
                           transcript.language, name_matcher(cfg.watch.include))  # fmt: skip
    written = write_outputs(transcript, targets, subtitles=settings.subtitles,
                            meta=_meta(meta, settings))  # fmt: skip
    # the JSON read stays when the settings no longer write one: the next render reads it
    kept = [stored] if "json" not in settings.formats and stored.exists() else []
    for rel in job.outputs:
        old = from_ledger(cfg.outbox, rel)
        if old not in written and old not in kept:
            old.unlink(missing_ok=True)
    outputs = [ledger_name(cfg.outbox, p) for p in (*written, *kept)]
    ledger.set_outputs(job.id, outputs)
    log.info("rendered", file=job.path, outputs=[p.name for p in written],
             seconds=round(time.monotonic() - started, 3))  # fmt: skip
    return written


def _meta(meta: dict[str, Any], settings: JobSettings) -> dict[str, Any]:
    """The JSON's meta for the new JSON: what produced the transcript stays; the output
    settings are the current ones; when it was rendered is added."""
    used = dict(meta.get("settings") or {})
    current = settings.model_dump(mode="json")
    for key in ("formats", "subtitles", "output_name"):
        used[key] = current[key]
    return {**meta, "settings": used, "rendered_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
