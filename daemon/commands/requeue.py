"""``whisperd requeue PATH... | --all-done | --folder F``: transcribe done files again.

After a model upgrade or a change of settings that only the engine can honour (a model, a
language, word timings), done files are queued again as fresh jobs with the settings and
model their folder has *now*: attempts and crash counts start over, the service picks them
up as it does any queued file. Their outputs stay where they are until the new ones are
renamed over them (same names), so nobody sees a file without a transcript meanwhile; an
output whose name changes (``output_name`` with ``{model}``) is left in place. A file no
longer in the inbox, or changed since it was transcribed, is skipped and named (a changed
file is queued by the service anyway).
"""

from __future__ import annotations

import time

from daemon.commands.retry import inbox_relative
from daemon.config import Config, Resolver
from daemon.errors import ConfigError
from daemon.jobs.source import SourceState, check_version
from daemon.queue import open_ledger
from daemon.service.startup import version_policy
from daemon.text import display


def run(cfg: Config, paths: list[str] | None, folder: str | None) -> int:
    """Queue again the done files named (files or folders), under ``folder``, or all."""
    under = [inbox_relative(cfg, p) for p in paths] if paths else None
    if folder is not None:
        under = [*(under or []), inbox_relative(cfg, folder)]
    rules = Resolver(cfg)
    chosen, skipped = [], []
    with open_ledger(cfg) as ledger:
        policy = version_policy(ledger, cfg.inbox)
        for job in ledger.done_jobs(under):
            try:
                state = check_version(cfg.inbox / job.path, job.fingerprint, policy)
            except OSError as err:
                skipped.append(f"{display(job.path)}: cannot read it ({err.strerror})")
                continue
            if state is not SourceState.CURRENT:
                why = "no longer in the inbox" if state is SourceState.GONE else "changed since"
                skipped.append(f"{display(job.path)}: {why}")
                continue
            try:
                settings = rules.resolve(job.path.rpartition("/")[0]).settings
            except ConfigError as err:
                skipped.append(f"{display(job.path)}: {'; '.join(err.errors)}")
                continue
            chosen.append((job.id, settings.model, settings.model_dump_json()))
        requeued = ledger.requeue_done(chosen, now=time.time())
    for line in skipped:
        print(f"skipped {line}")
    count = len(requeued)
    print(f"{count} done file{'s' if count != 1 else ''} queued again; the running service "
          "transcribes them (the old outputs stay until the new ones replace them)")  # fmt: skip
    return 0 if count or not skipped else 1
