"""The ``.error.txt`` beside a failed file's outputs: what failed and how to retry.

``<outbox>/<dir>/<stem>.error.txt`` uses the same collision-safe stem as the outputs, is
written atomically (its folder is created when the file has no outputs yet), and is removed
once a version of the file succeeds.
"""

from __future__ import annotations

import shlex
from datetime import UTC, datetime
from pathlib import Path

import structlog

from daemon.config import Config, name_matcher
from daemon.errors import WhisperdError
from daemon.outputs.atomic import write_atomic
from daemon.outputs.naming import fit_stem, mirror_dir, source_stem

log = structlog.get_logger(__name__)

ERROR_SUFFIX = ".error.txt"


def error_file(cfg: Config, source: Path) -> Path:
    """Where the ``.error.txt`` of ``source`` (a path in the inbox) goes."""
    stem = source_stem(source, name_matcher(cfg.watch.include))
    return mirror_dir(cfg.inbox, cfg.outbox, source) / (fit_stem(stem) + ERROR_SUFFIX)


def write_error_file(cfg: Config, rel_path: str, source: Path, error: str, attempts: int) -> None:
    """Write the error file of a job that failed for good; log (never raise) when it cannot."""
    when = datetime.now(UTC).isoformat(timespec="seconds")
    text = (
        f"whisperd could not transcribe: {rel_path}\n"
        f"error: {error}\n"
        f"attempts: {attempts}, last at {when}\n"
        "\n"
        "What to do: if the file is damaged or incomplete, copy a good version over it (a\n"
        "changed file is picked up again automatically). To try this same file again, run:\n"
        f"    whisperd retry {shell_quote(rel_path)}\n"
    )
    try:
        target = error_file(cfg, source)
        target.parent.mkdir(parents=True, exist_ok=True)  # the folder may have no outputs yet
        write_atomic(target, text)
    except (WhisperdError, OSError) as err:
        log.error("error_file_failed", error=str(err))


def shell_quote(text: str) -> str:
    """``text`` quoted for a shell, with ``./`` before a leading dash (not an option)."""
    return shlex.quote(text if not text.startswith("-") else f"./{text}")
