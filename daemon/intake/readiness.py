"""When a stable-looking file is really complete: the writer, its container, its marker.

:class:`Judge` decides for one settling file (its fingerprint unchanged since ``since``),
in this order of trust:

1. **A ready marker**, when the folder's rule asks for one (``ready_marker``): without it
   the file waits; with it, the file is ready as soon as no one writes it.
2. **Local writers** (:mod:`daemon.intake.writers`): a file open for writing by any process
   waits, however long the writer pauses. When the probe says nobody writes it, the file is
   ready at once if its writer was seen closing it (inotify's IN_CLOSE_WRITE) or if its
   container says where it ends and is whole; otherwise after ``stable_seconds``.
3. **The container** (:mod:`daemon.media.completeness`): a file whose structure says it is
   cut (an MP4 without its ``moov``, a WAV shorter than its header, an Ogg without its
   last page, a preallocated file with a zero tail) is *incomplete*: the service records it
   so (``whisperd status`` shows why) and takes it again when it changes.
4. **Time**, where nothing better can tell (a network mount, an unknown format):
   ``stable_seconds``, at least ``network_stable_seconds`` on a network filesystem.

The verdict is read once per fingerprint (bounded reads: a few hundred kB at most).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import structlog

from daemon.config import WatchSettings, marker_present
from daemon.intake.writers import WriterProbe, WriterStatus
from daemon.media.completeness import Verdict, check
from daemon.version import Fingerprint

log = structlog.get_logger(__name__)


class State(Enum):
    WAIT = "wait"
    READY = "ready"
    INCOMPLETE = "incomplete"


@dataclass(frozen=True)
class Decision:
    state: State
    reason: str  # why it waits, or why it is incomplete ('' when ready)


@dataclass
class Settling:
    """What the judge knows of one pending file (kept by the stability tracker)."""

    fp: Fingerprint
    since: float  # when ``fp`` was first seen
    closed: bool = False  # a writer closed it after ``fp`` was first seen
    verdict: Verdict | None = None  # of ``fp``, read once


MarkerFor = Callable[[str], str | None]  # inbox-relative path -> the folder's ready_marker


class Judge:
    """Decides whether a settling file is ready (see the module docstring)."""

    def __init__(
        self,
        options: WatchSettings,
        *,
        network: bool,
        writers: WriterProbe | None = None,
        marker_for: MarkerFor = lambda rel: None,
    ) -> None:
        self._window = max(options.stable_seconds,
                           options.network_stable_seconds if network else 0.0)  # fmt: skip
        self._writers = writers or WriterProbe()
        self._marker_for = marker_for

    @property
    def window(self) -> float:
        """Seconds a file must stay unchanged where nothing better tells."""
        return self._window

    def decide(self, rel: str, path: str, state: Settling, now: float) -> Decision:
        """The decision for ``rel`` at ``path`` (OSError when it cannot be read right now)."""
        try:
            writer = self._writers.check(path)
        except FileNotFoundError:
            raise
        except OSError:
            writer = WriterStatus(None, "none", "cannot probe", ())
        if writer.writing:
            return Decision(State.WAIT, f"open for writing ({writer.reason})")
        marker = self._marker_for(rel)
        if marker is not None and not marker_present(path, marker):
            return Decision(State.WAIT, f"waiting for its ready marker {marker!r}")
        if state.verdict is None:
            state.verdict = check(path)
        verdict = state.verdict
        stable = now - state.since >= self._window
        if verdict.state == "incomplete":
            if stable or state.closed or marker is not None:
                return Decision(State.INCOMPLETE, verdict.reason)
            return Decision(State.WAIT, f"incomplete so far ({verdict.reason})")
        if marker is not None:
            return Decision(State.READY, "")
        if writer.writing is False and (state.closed or verdict.conclusive):
            return Decision(State.READY, "")  # closed by its writer, or whole by its own word
        if stable:
            return Decision(State.READY, "")
        return Decision(State.WAIT, "settling")
