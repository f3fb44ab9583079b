"""``whisperd retry [PATH... | --failed]``: queue failed files again (the service picks them up)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from daemon.config import Config
from daemon.queue import open_ledger


def run(cfg: Config, paths: list[str] | None) -> int:
    """Queue again the failed versions of ``paths`` (files or folders), or of every file."""
    rels = None if paths is None else [inbox_relative(cfg, p) for p in paths]
    with open_ledger(cfg) as ledger:
        count = ledger.retry(rels, now=time.time())
    print(f"{count} failed file{'s' if count != 1 else ''} queued again")
    return 0


def inbox_relative(cfg: Config, given: str) -> str:
    """A path given on the command line, relative to the inbox (taken as such when outside)."""
    absolute = Path(os.path.abspath(given))
    try:
        return absolute.relative_to(cfg.inbox).as_posix()
    except ValueError:
        return Path(given).as_posix().lstrip("/") if not given.startswith("./") else given[2:]
