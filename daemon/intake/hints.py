"""Change events as hints: watchdog's inotify observer records paths to look at, nothing else.

The observer's thread only adds paths (and whether a writer closed the file) to
:class:`Hints`; the watcher takes them in its own step. Beyond ``MAX_HINTS`` distinct paths
between two steps the hints are dropped and a full rescan is asked for instead. Only the
events worth a hint are subscribed (:data:`EVENTS`): our own reads (the completeness check,
the writer probe) would otherwise come back as "opened" and "closed_no_write" events;
leaving them out of the inotify mask means they are never even delivered.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import structlog
from watchdog import events
from watchdog.events import FileSystemEvent, FileSystemEventHandler

try:  # inotify exists on Linux only; elsewhere the watcher always polls.
    from watchdog.observers.inotify import InotifyObserver
except Exception:  # pragma: no cover - non-Linux or a libc without inotify
    InotifyObserver = None  # type: ignore[assignment,misc]

log = structlog.get_logger(__name__)

INOTIFY = InotifyObserver is not None
MAX_HINTS = 10_000  # more distinct hinted paths between two steps: drop them, rescan instead
EVENTS = (
    events.FileCreatedEvent, events.FileModifiedEvent, events.FileMovedEvent,
    events.FileDeletedEvent, events.FileClosedEvent, events.DirCreatedEvent,
    events.DirMovedEvent, events.DirDeletedEvent,
)  # fmt: skip


class _Handler(FileSystemEventHandler):
    """Runs in watchdog's thread: records paths to look at, nothing else."""

    def __init__(self, sink: Callable[[str, bool], None]) -> None:
        self._sink = sink

    def on_any_event(self, event: FileSystemEvent) -> None:
        kind = event.event_type
        if kind in ("opened", "closed_no_write") or (event.is_directory and kind == "modified"):
            return  # a directory's "modified" fires on every create: its entries hint instead
        self._sink(os.fsdecode(event.src_path), kind == "closed")
        if kind == "moved" and event.dest_path:
            self._sink(os.fsdecode(event.dest_path), False)


class Hints:
    """Paths hinted since the last :meth:`take` (thread-safe)."""

    def __init__(self) -> None:
        self._paths: dict[str, bool] = {}  # path -> a writer closed it
        self._lock = threading.Lock()
        self._overflow = False

    def handler(self) -> FileSystemEventHandler:
        """A watchdog handler feeding these hints."""
        return _Handler(self.add)

    def add(self, path: str, closed: bool) -> None:
        """Called from watchdog's thread."""
        with self._lock:
            if len(self._paths) >= MAX_HINTS:
                self._overflow = True
                self._paths.clear()
            elif not self._overflow:
                self._paths[path] = self._paths.get(path, False) or closed

    def take(self) -> dict[str, bool] | None:
        """The hints so far (emptied); None when too many came and a rescan is needed."""
        with self._lock:
            paths, self._paths = self._paths, {}
            overflow, self._overflow = self._overflow, False
        return None if overflow else paths


def start_observer(root: str, handler: FileSystemEventHandler) -> Any:
    """A started inotify observer of ``root`` (recursive); raises when it cannot start."""
    observer = InotifyObserver()
    try:
        observer.schedule(handler, root, recursive=True, event_filter=EVENTS)
        observer.start()
    except BaseException:
        join(observer)
        raise
    return observer


def join(observer: Any) -> None:
    """Stop and join an observer; a half-started one may refuse, and is dropped anyway."""
    try:
        observer.stop()
        observer.join(timeout=5)
    except Exception as err:
        log.debug("observer stop failed", error=str(err))


def threads(observer: Any) -> list[threading.Thread]:
    """The threads an observer runs (all must be alive for it to work)."""
    if observer is None:
        return []
    fd_reader = getattr(observer, "_inotify_fd", None)  # watchdog ≥ 6 reads inotify in a thread
    reader = [fd_reader] if isinstance(fd_reader, threading.Thread) else []
    return [observer, *observer.emitters, *reader]
