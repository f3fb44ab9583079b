"""What the service shows: the status report, Prometheus metrics and the HTTP listener.

Owns :mod:`.report` (the status report of ``whisperd status`` and ``/api/status``),
:mod:`.summary` (per-folder view for people, end estimates, retry commands), :mod:`.public`
(what of the report may be shown on a network, and its JSON encoding), :mod:`.metrics`
(the Prometheus registry and the events the service reports), :mod:`.http` (the read-only
listener: ``/metrics``, ``/api/status``, ``/``) and ``static/`` (the page: HTML, CSS, JS, no
framework, no CDN).

May import: :mod:`daemon.queue` (the report reads the ledger) and the leaves (config,
errors, text, log). The service hands the listener a status provider and a ledger snapshot
as callables; nothing here starts by itself.
"""

from daemon.web.http import ListenError, WebServer
from daemon.web.metrics import Metrics
from daemon.web.public import encode_json, public_report
from daemon.web.report import STATUS_KEY, collect, status_key

__all__ = ["STATUS_KEY", "ListenError", "Metrics", "WebServer", "collect", "encode_json",
           "public_report", "status_key"]  # fmt: skip
