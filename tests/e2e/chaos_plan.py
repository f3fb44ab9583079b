"""What a chaos run is: its :class:`Plan`, the seeded :func:`timeline` of its events, the
versions of its files (:class:`Blob`, :class:`Media`) and what it recorded
(:class:`FileRecord`, :class:`ChaosResult`). Carried out by tests/e2e/chaos_driver.py,
judged by tests/e2e/chaos_checks.py.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tests.e2e.chaos_env import ChaosService

FORMATS = ("txt", "srt", "vtt", "tsv", "json")


@dataclass(frozen=True)
class Plan:
    """What one chaos run does; every random choice follows from ``seed``."""

    seed: int
    files: int = 20
    kills: int = 8
    terms: int = 2
    inbox_renames: int = 1
    disk_fills: int = 1
    rewrites: int = 5
    window: float = 30.0  # seconds over which the events are spread
    away_seconds: tuple[float, float] = (1.0, 2.5)
    full_seconds: tuple[float, float] = (2.0, 4.0)
    rewrite_wait: float = 2.0  # seconds a rewrite waits for a running job to hit
    aimed: float = 0.5  # share of the kills that wait for a running job, then strike in it
    aimed_first: int = 2  # the first kills are aimed whatever the share says
    aim_into: float = 0.8  # seconds into a job at most, for an aimed kill
    on_success: str = "keep"  # or "move" (into <root>/archive)
    crash_limit: int = 2
    stop_timeout: float = 2.0
    settle_timeout: float = 30.0
    stop_patience: float = 60.0  # seconds a stop may wait (crash_limit) before it is skipped
    fake_delay: float = 0.8  # seconds per job of the fake engine
    outbox_mb: int = 16  # size of the outbox's tmpfs
    max_versions: int = 3  # versions written per file at most (the first + rewrites)
    model: str = "tiny.en"
    defaults: dict = field(default_factory=dict)  # more settings of the config's defaults


@dataclass(frozen=True)
class Blob:
    """One version of a file: its bytes and the audio length its outputs must name."""

    data: bytes
    seconds: float


class Media(Protocol):
    """Where the files' versions come from (synthesised audio, or speech clips)."""

    suffix: str

    def blob(self, index: int, version: int) -> Blob:
        """Version ``version`` of file ``index``; lengths differ between versions of a file."""
        ...


@dataclass(order=True)
class Event:
    at: float  # seconds after the start
    seq: int
    kind: str = field(compare=False)
    arg: int = field(compare=False, default=0)


def timeline(plan: Plan) -> list[Event]:
    """The seeded events of ``plan``, in time order (ends of away/fill periods included)."""
    rng = random.Random(plan.seed)
    w = plan.window
    first = max(1, plan.files * 2 // 5)  # these are in the inbox before the first start
    events: list[tuple[float, str, int]] = [(0.0, "drop", i) for i in range(first)]
    events += [(rng.uniform(0.5, 0.6 * w), "drop", i) for i in range(first, plan.files)]
    # The first kills are aimed (Driver._kill): they fall while files are still coming in.
    early = min(plan.aimed_first, plan.kills)
    events += [(rng.uniform(1.0, 0.4 * w), "kill", 0) for _ in range(early)]
    events += [(rng.uniform(1.0, w), "kill", 0) for _ in range(plan.kills - early)]
    events += [(rng.uniform(1.0, w), "term", 0) for _ in range(plan.terms)]
    events += [(rng.uniform(0.1 * w, 0.9 * w), "rewrite", 0) for _ in range(plan.rewrites)]
    periods = (("away", "back", plan.inbox_renames, plan.away_seconds),
               ("fill", "free", plan.disk_fills, plan.full_seconds))  # fmt: skip
    for kind, end, count, span in periods:
        last_end = 0.0
        for start in sorted(rng.uniform(0.1 * w, 0.8 * w) for _ in range(count)):
            start = max(start, last_end + 0.5)  # one period of a kind at a time
            last_end = start + rng.uniform(*span)
            events += [(start, kind, 0), (last_end, end, 0)]
    ordered = sorted(events, key=lambda e: (e[0], e[1] != "drop"))
    return [Event(at, seq, kind, arg) for seq, (at, kind, arg) in enumerate(ordered)]


def file_name(index: int, suffix: str) -> str:
    """Files spread over the inbox root and two levels of folders (mirrored in the outbox)."""
    folder = ("", "talks/", "talks/2024/")[index % 3]
    return f"{folder}f{index:02d}{suffix}"


@dataclass
class FileRecord:
    """One file of the run: its path in the inbox and every version the driver wrote."""

    index: int
    rel: str
    versions: list[Blob] = field(default_factory=list)
    killed_mid_job: int = 0  # kills that found one of its versions running

    @property
    def current(self) -> Blob:
        return self.versions[-1]


@dataclass
class ChaosResult:
    """What a run did and saw; :func:`tests.e2e.chaos_checks.verify` judges it."""

    plan: Plan
    inbox: Path
    outbox: Path
    archive: Path | None
    files: dict[str, FileRecord]
    stats: Counter
    timeline: list[str]
    findings: list[str]  # guarantees broken during the run (exit statuses, running rows)
    disk_full_skipped: str | None
    settled: bool
    seconds: float
    service: ChaosService
