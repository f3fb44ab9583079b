"""Notifications: what the people who drop files hear, by webhook or Apprise, durable and retried.

Owns the events sent when a file is done or failed and when a folder's batch is finished:
:mod:`.documents` (the JSON document and its text for people), :mod:`.idle` (the
folder_idle state machine), :mod:`.signing` (the webhook's HMAC-SHA256 signature),
:mod:`.targets` (one attempt: a webhook POST, an Apprise call), :mod:`.sender` (a lane per
target: order, backoff, give-up) and :mod:`.notifier` (what the service calls, and the
threads). Deliveries are stored in the ledger (:mod:`daemon.queue.deliveries`) before they
are sent; the targets come validated from the configuration (:mod:`daemon.config.operate`).

May import: :mod:`daemon.queue` (the delivery store) and the leaves (config, errors, log).
"""

from daemon.notify.notifier import Notifier
from daemon.notify.sender import Backoff
from daemon.notify.signing import SIGNATURE_HEADER, sign, verify

__all__ = ["SIGNATURE_HEADER", "Backoff", "Notifier", "sign", "verify"]
