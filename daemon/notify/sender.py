"""One lane per target: sends that target's due deliveries one at a time, and retries.

Each target has its own lane (and, in the service, its own thread), so a slow or dead
endpoint only ever delays its own deliveries. Within a lane:

* **Order**: due deliveries go oldest ``next_at`` first, one request at a time (no burst of
  parallel requests at a struggling receiver). A retried delivery may arrive after newer
  ones: order is not guaranteed, receivers sort on ``created_at``.
* **Backoff**: after a retryable failure the delivery waits
  ``min(initial * 2**(n-1), maximum)`` scaled by a random factor in ``[1 - jitter, 1]``,
  where n is the larger of its own attempts and the lane's consecutive failures, and at
  least the server's Retry-After. The lane pauses for the same time: a dead endpoint is
  probed once per backoff, not once per pending delivery.
* **Give up**: a delivery still failing ``give_up_after`` seconds after its event is
  abandoned with one warning line; the last retry is scheduled at that deadline so it gets
  a final chance. A rejection (4xx) gives up at once, also with one line.

:meth:`Lane.step` is one iteration with the time passed in, so tests drive it without
threads; :meth:`Lane.run` is the thread body.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from daemon.notify.targets import SendResult, Target
from daemon.queue import Delivery, DeliveryStore

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Backoff:
    """Delays between attempts: exponential, capped, with jitter."""

    initial: float = 5.0
    maximum: float = 3600.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if not (0 < self.initial <= self.maximum and 0 <= self.jitter < 1):
            raise ValueError(
                f"invalid backoff {self}: need 0 < initial <= maximum, 0 <= jitter < 1"
            )

    def delay(self, attempt: int, rnd: float) -> float:
        """Seconds before retry number ``attempt`` (1-based); ``rnd`` uniform in [0, 1)."""
        nominal = min(self.initial * 2.0 ** max(0, min(attempt - 1, 60)), self.maximum)
        return nominal * (1.0 - self.jitter * rnd)


DEFAULT_BACKOFF = Backoff()


class Lane:
    """The deliveries of one target."""

    def __init__(
        self,
        target: Target,
        store: DeliveryStore,
        backoff: Backoff,
        *,
        clock: Callable[[], float],
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.target = target
        self.key = target.config.key
        self.label = target.config.label
        self.store, self.backoff, self.clock, self.rng = store, backoff, clock, rng
        self.wake = threading.Event()
        self.paused_until = 0.0
        self.failures = 0  # consecutive retryable failures of this target

    def step(self, now: float) -> bool:
        """Attempt the oldest due delivery; False when none is due (or the lane is paused)."""
        if now < self.paused_until:
            return False
        due = self.store.due(now, target=self.key, limit=1)
        if not due:
            return False
        delivery = due[0]
        result = self.target.send(delivery, now)
        self._record(delivery, result, self.clock())
        return True

    def next_wake(self, now: float) -> float | None:
        """When :meth:`step` may next have work (``now`` if at once); None: nothing pending."""
        next_due = self.store.next_due(target=self.key)
        if next_due is None:
            return None
        return max(next_due, self.paused_until, now)

    def run(self, stop: threading.Event, poll: float) -> None:
        """Thread body: step until ``stop``; sleeps at most ``poll`` s between checks."""
        while not stop.is_set():
            try:
                if self.step(self.clock()):
                    continue
                now = self.clock()
                wake = self.next_wake(now)
                wait = poll if wake is None else min(poll, max(0.0, wake - now))
            except Exception as err:  # the store failed (disk, closed): keep the thread alive
                if stop.is_set():  # stop() timed out mid-send and the store is closed now
                    log.info("notification_result_dropped", target=self.label, error=str(err))
                    return
                log.exception("notification_lane_error", target=self.label)
                wait = poll
            self.wake.wait(wait)
            self.wake.clear()

    def _record(self, delivery: Delivery, result: SendResult, now: float) -> None:
        if result.outcome == "sent":
            self.store.mark_sent(delivery.id, now)
            if self.failures:
                log.info("notification_target_recovered", target=self.label, failures=self.failures)
            self.failures, self.paused_until = 0, 0.0
            log.debug(
                "notification_sent",
                target=self.label,
                delivery=delivery.id,
                notify_event=delivery.event,
                attempts=delivery.attempts + 1,
            )
        elif result.outcome == "reject":
            self._give_up(delivery, result.error, now)
        else:
            self._retry(delivery, result, now)

    def _retry(self, delivery: Delivery, result: SendResult, now: float) -> None:
        self.failures += 1
        attempt = max(delivery.attempts + 1, self.failures)
        delay = max(self.backoff.delay(attempt, self.rng()), result.retry_after or 0.0)
        deadline = delivery.created_at + self.target.config.give_up_after
        if now >= deadline:
            self.paused_until = now + delay  # the endpoint is still failing: probe it later
            self._give_up(delivery, result.error, now)
            return
        next_at = min(now + delay, deadline)  # a last attempt at the deadline
        self.store.mark_retry(delivery.id, next_at, result.error, now)
        self.paused_until = next_at
        if self.failures == 1:  # once per outage; the give-up line follows if it lasts
            log.warning(
                "notification_target_failing",
                target=self.label,
                error=result.error,
                retry_in=round(next_at - now, 1),
            )
        else:
            log.debug(
                "notification_retry",
                target=self.label,
                delivery=delivery.id,
                error=result.error,
                retry_in=round(next_at - now, 1),
            )

    def _give_up(self, delivery: Delivery, error: str, now: float) -> None:
        self.store.mark_given_up(delivery.id, error, now)
        log.warning(
            "notification_given_up",
            target=self.label,
            delivery=delivery.id,
            notify_event=delivery.event,
            attempts=delivery.attempts + 1,
            age_seconds=round(now - delivery.created_at, 1),
            error=error,
        )
