"""The service: ``whisperd run`` wires intake, the queue and the workers.

Owns the long-running process: :mod:`.core` (lock, signals, the main loop, stop, reload),
:mod:`.startup` (what is finished before new work: interrupted commits, source actions,
recovery), :mod:`.bridge` (what a file found by intake becomes in the ledger) and
:mod:`.health` (STATUS=, the status record ``whisperd status`` reads, the watchdog).

May import: intake, queue, jobs, engines, models, outputs, mediaserver (started here, told
by the workers) and the leaves (config, errors, version, systemd, lock, log).
"""

from daemon.service.core import Service, run

__all__ = ["Service", "run"]
