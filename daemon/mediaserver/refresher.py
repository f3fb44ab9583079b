"""Asking the media server to rescan, without ever making the caller wait.

:class:`Refresher` owns a background thread and a queue. :meth:`Refresher.submit` (called
by a worker after subtitles were written beside a video) only puts the video's path on the
queue. The
thread groups submissions by folder:

* **Batching**: a folder is sent ``window`` seconds after its first submission, with every
  video submitted for it meanwhile: one rescan per folder per window however many files
  were written. All folders due at the same moment go in one batch (one request for
  Jellyfin/Emby), at most ``max_batch`` folders per batch.
* **Rate limit**: batches are at least ``min_interval`` seconds apart.
* **Retries**: a folder whose refresh failed transiently (timeout, refused connection,
  5xx, 429) is retried after ``backoff * 2**(attempt-1)`` seconds (capped at
  ``backoff_max``), up to ``max_attempts`` attempts, then dropped. Refused tokens (401/403)
  and other refusals are not retried: retrying cannot help.
* Every outcome is logged with structlog and counted in :attr:`Refresher.counters`.
* :meth:`Refresher.close` stops the thread; with ``flush`` it first makes one last attempt
  for everything still pending (bounded by the client's HTTP timeout).

One iteration is the public :meth:`Refresher.step` with the clock passed in, so tests can
drive batching and backoff without sleeping (construct with ``start=False``).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from daemon.errors import MediaServerAuthError, MediaServerError, MediaServerUnavailable
from daemon.mediaserver.client import MediaServerClient

log = structlog.get_logger(__name__)

_COUNTERS = (
    "submitted",  # paths handed to submit()
    "batches",  # batches sent to the client
    "refreshed",  # folders the server accepted
    "failed",  # failed attempts (any reason)
    "retries",  # attempts scheduled again after a transient failure
    "auth_failures",  # attempts refused for the token (401/403)
    "rejected",  # attempts refused otherwise (4xx, no library for the folder)
    "dropped",  # folders given up (attempts exhausted, refused, queue full, closed)
)


@dataclass
class _Pending:
    due: float  # when to send (first submission + window, or the retry time)
    videos: set[str] = field(default_factory=set)
    attempts: int = 0


class Refresher:
    """Batches, rate-limits and retries media-server rescans on a background thread."""

    def __init__(
        self,
        client: MediaServerClient,
        *,
        window: float = 10.0,
        min_interval: float = 2.0,
        max_attempts: int = 5,
        backoff: float = 5.0,
        backoff_max: float = 300.0,
        max_batch: int = 50,
        max_pending: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        start: bool = True,
    ) -> None:
        self._client = client
        self._window, self._min_interval = window, min_interval
        self._max_attempts, self._backoff, self._backoff_max = max_attempts, backoff, backoff_max
        self._max_batch, self._max_pending = max_batch, max_pending
        self._clock = clock
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._pending: dict[str, _Pending] = {}
        self._next_send = float("-inf")
        self._pending_count = 0
        self._counts = dict.fromkeys(_COUNTERS, 0)
        self._lock = threading.Lock()  # guards _counts (read from other threads)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if start:
            self._thread = threading.Thread(target=self._run, name="media-refresh", daemon=True)
            self._thread.start()

    # --- caller side -------------------------------------------------------------------

    def submit(self, video: str | os.PathLike[str]) -> None:
        """Schedule a rescan of ``video``'s folder (pass the video whose sidecar was written).

        Never blocks and never raises for server trouble; after :meth:`close` it is ignored.
        """
        if self._stop.is_set():
            return
        self._count("submitted")
        self._queue.put(os.path.abspath(os.fspath(video)))

    @property
    def counters(self) -> dict[str, int]:
        """A snapshot of the outcome counters (see the module docstring)."""
        with self._lock:
            return dict(self._counts)

    @property
    def pending_count(self) -> int:
        """Folders waiting to be sent or retried (as of the last iteration)."""
        return self._pending_count

    def close(self, timeout: float = 15.0, *, flush: bool = True) -> None:
        """Stop the thread; with ``flush``, one last attempt for what is pending first."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._queue.put(None)  # wake the thread
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("mediaserver.close_timeout", pending=len(self._pending))
                return
        self._final(flush)

    # --- the loop ------------------------------------------------------------------------

    def _run(self) -> None:
        tick = 1.0  # wake at least this often to notice close()
        while not self._stop.is_set():
            delay = self.step()
            timeout = tick if delay is None else min(max(delay, 0.0), tick)
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                continue
            if item is not None:
                self._accept(item, self._clock())

    def _final(self, flush: bool) -> None:
        """After the loop: accept what is queued, then one attempt each or drop."""
        self._drain(self._clock())
        if flush and self._pending:
            self._send(sorted(self._pending), self._clock(), final=True)
        for folder in list(self._pending):
            self._give_up(folder, "closed before it could be sent")
        self._pending_count = 0

    def step(self, now: float | None = None) -> float | None:
        """One iteration: take queued submissions, send what is due.

        Returns the seconds until something is next due, or None when nothing is pending.
        """
        now = self._clock() if now is None else now
        self._drain(now)
        due = sorted(f for f, p in self._pending.items() if p.due <= now)
        if due and now >= self._next_send:
            self._send(due[: self._max_batch], now)
        self._pending_count = len(self._pending)
        if not self._pending:
            return None
        next_due = min(p.due for p in self._pending.values())
        return max(next_due, self._next_send) - now

    def _drain(self, now: float) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                self._accept(item, now)

    def _accept(self, video: str, now: float) -> None:
        folder = os.path.dirname(video)
        entry = self._pending.get(folder)
        if entry is None:
            if len(self._pending) >= self._max_pending:
                self._count("dropped")
                log.error("mediaserver.queue_full", folder=folder, pending=len(self._pending))
                return
            entry = self._pending[folder] = _Pending(due=now + self._window)
        entry.videos.add(video)

    # --- sending -------------------------------------------------------------------------

    def _send(self, folders: list[str], now: float, *, final: bool = False) -> None:
        batch = {f: sorted(self._pending[f].videos) for f in folders}
        self._next_send = now + self._min_interval
        self._count("batches")
        started = time.monotonic()
        try:
            outcomes = self._client.refresh(batch)
        except Exception as err:  # a client bug must not kill the thread
            log.exception("mediaserver.client_error", kind=self._client.kind)
            outcomes = {f: MediaServerUnavailable(f"client error: {err!r}") for f in folders}
        took = round(time.monotonic() - started, 3)
        done = [f for f in folders if outcomes.get(f) is None]
        for folder in done:
            del self._pending[folder]
        if done:
            self._count("refreshed", len(done))
            log.info("mediaserver.refreshed", kind=self._client.kind, folders=done, took=took)
        for folder in folders:
            error = outcomes.get(folder)
            if error is not None:
                self._failed(folder, error, now, final)

    def _failed(self, folder: str, error: MediaServerError, now: float, final: bool) -> None:
        entry = self._pending[folder]
        entry.attempts += 1
        self._count("failed")
        if isinstance(error, MediaServerAuthError):
            self._count("auth_failures")
            self._give_up(folder, str(error))
        elif not error.transient:
            self._count("rejected")
            self._give_up(folder, str(error))
        elif final or entry.attempts >= self._max_attempts:
            self._give_up(folder, f"{error} (after {entry.attempts} attempts)")
        else:
            delay = min(self._backoff_max, self._backoff * 2 ** (entry.attempts - 1))
            entry.due = now + delay
            self._count("retries")
            log.warning(
                "mediaserver.retry",
                kind=self._client.kind,
                folder=folder,
                attempt=entry.attempts,
                delay=delay,
                error=str(error),
            )

    def _give_up(self, folder: str, reason: str) -> None:
        self._pending.pop(folder, None)
        self._count("dropped")
        log.error("mediaserver.refresh_failed", kind=self._client.kind, folder=folder, error=reason)

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n
