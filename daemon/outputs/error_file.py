"""The ``.error.txt`` beside a failed file's outputs: what failed and how to retry.

``<outbox>/<dir>/<stem>.error.txt`` (or ``<dir>/<stem>.error.txt`` beside the source, with
``outputs_beside_source``) uses the same collision-safe stem as the outputs, is written
atomically (its folder is created when the file has no outputs yet), and is removed once a
version of the file succeeds. With ``error_files: false`` none is written: the failure is
in ``whisperd status`` only.
"""

from __future__ import annotations

import shlex
from datetime import UTC, datetime
from pathlib import Path

import structlog

from daemon.config import Config, JobSettings, name_matcher
from daemon.config.tables import ERROR_SUFFIX
from daemon.errors import WhisperdError
from daemon.outputs.atomic import write_atomic
from daemon.outputs.naming import fit_stem, output_dir, source_stem

log = structlog.get_logger(__name__)


def error_file(cfg: Config, source: Path, settings: JobSettings | None = None) -> Path:
    """Where the ``.error.txt`` of ``source`` (a path in the inbox) goes, with the settings
    of its folder (``cfg.defaults`` when they are not known)."""
    stem = source_stem(source, name_matcher(cfg.watch.include))
    folder = output_dir(cfg, settings or cfg.defaults, source)
    return folder / (fit_stem(stem) + ERROR_SUFFIX)


def write_error_file(
    cfg: Config,
    rel_path: str,
    source: Path,
    error: str,
    attempts: int,
    settings: JobSettings | None = None,
) -> None:
    """Write the error file of a job that failed for good; log (never raise) when it cannot."""
    settings = settings or cfg.defaults
    if not settings.error_files:
        return
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
        target = error_file(cfg, source, settings)
        target.parent.mkdir(parents=True, exist_ok=True)  # the folder may have no outputs yet
        write_atomic(target, text)
    except (WhisperdError, OSError) as err:
        log.error("error_file_failed", error=str(err))


def shell_quote(text: str) -> str:
    """``text`` quoted for a shell, with ``./`` before a leading dash (not an option)."""
    return shlex.quote(text if not text.startswith("-") else f"./{text}")
