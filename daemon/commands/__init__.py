"""Commands: one module per ``whisperd`` command, doing the command's work and its output.

:mod:`.transcribe`, :mod:`.status`, :mod:`.retry`, :mod:`.explain`, :mod:`.models`,
:mod:`.ledger` (``ledger migrate``);
``whisperd run`` is :func:`daemon.service.run`. The CLI (:mod:`daemon.cli`) parses the
arguments, loads the configuration and maps errors to exit codes; it calls these.

May import any stage below it (service, intake, queue, jobs, media, engines, models,
outputs) and the leaves.
"""
