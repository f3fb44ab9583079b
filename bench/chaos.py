"""Part 7: chaos. ``whisperd run`` with the real model while a driver kills it (SIGKILL at
30 random moments), stops it (SIGTERM at 5), renames the inbox away and back, fills the
outbox's filesystem (a tmpfs; needs root) and frees it, and rewrites files during their
jobs; then every guarantee is checked and the counts reported.

The driver and the checks are the test suite's (tests/e2e/chaos_driver.py,
tests/e2e/chaos_checks.py); the suite runs a short version with the fake engine. Files are
the short English speech clips (WAV, up to 4 s), 40 names cycling through them; each rewrite
puts another clip of another length in place, so a stale output shows in its JSON.
Decoding is greedy (``beam_size: null``, temperature 0): the engine's speed is not what this
part measures, and short jobs let the kills land among many jobs rather than in a few.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from bench import common
from tests.e2e.chaos_checks import verify
from tests.e2e.chaos_driver import Driver
from tests.e2e.chaos_plan import Blob, Plan

MAX_CLIP_SECONDS = 4.0  # short clips: many jobs within the run
MIN_GAP_SECONDS = 0.1  # lengths of two clips differ by this much at least
GREEDY = {"beam_size": None, "temperature": 0.0}


class ClipMedia:
    """Versions from the shared English clips; the versions of a file differ in length."""

    suffix = ".wav"

    def __init__(self, clips: list[tuple[Path, float]], versions: int) -> None:
        n = len(clips)
        if n < versions:
            raise ValueError(f"{n} clips cannot give {versions} distinct versions per file")
        self.clips = clips
        # version v of file i is clip (i + step * v) mod n: distinct for v < versions
        self.step = next(s for s in range(1, n) if len({s * v % n for v in range(versions)})
                         == versions)  # fmt: skip

    def blob(self, index: int, version: int) -> Blob:
        path, seconds = self.clips[(index + self.step * version) % len(self.clips)]
        return Blob(path.read_bytes(), seconds)


def pick_clips() -> list[tuple[Path, float]]:
    """English WAV clips up to 4 s whose lengths are at least 0.1 s apart."""
    found = sorted((c.duration, c.path) for c in common.clips("en")
                   if c.path.suffix == ".wav" and c.duration <= MAX_CLIP_SECONDS)  # fmt: skip
    chosen: list[tuple[Path, float]] = []
    for duration, path in found:
        if not chosen or duration - chosen[-1][1] >= MIN_GAP_SECONDS:
            chosen.append((path, duration))
    return chosen


def plan(*, model: str, smoke: bool, seed: int) -> Plan:
    """40 files, 30 kills, 5 stops (the issue's figures); a few of each with ``smoke``."""
    common_settings = {"model": model, "defaults": GREEDY, "rewrite_wait": 5.0,
                       "stop_timeout": 3.0, "aim_into": 1.5, "away_seconds": (2.0, 6.0),
                       "full_seconds": (4.0, 10.0), "stop_patience": 240.0}  # fmt: skip
    if smoke:
        return Plan(seed=seed, files=6, kills=3, terms=1, inbox_renames=1, disk_fills=1,
                    rewrites=2, window=40.0, settle_timeout=120.0, **common_settings)  # fmt: skip
    return Plan(seed=seed, files=40, kills=30, terms=5, inbox_renames=3, disk_fills=3,
                rewrites=10, window=300.0, settle_timeout=300.0, **common_settings)  # fmt: skip


def run(work: Path, *, model: str, smoke: bool, seed: int | None = None) -> dict[str, Any]:
    """One chaos run with ``model``; the checks' figures, findings and the run's timeline."""
    chosen = random.SystemRandom().randrange(1_000_000) if seed is None else seed
    the_plan = plan(model=model, smoke=smoke, seed=chosen)
    media = ClipMedia(pick_clips(), the_plan.max_versions)
    with Driver(work, the_plan, media, fake=False) as driver:
        result = driver.run()
        report = verify(result)
    planned = {"files": the_plan.files, "kills": the_plan.kills, "terms": the_plan.terms,
               "inbox_renames": the_plan.inbox_renames, "disk_fills": the_plan.disk_fills,
               "rewrites": the_plan.rewrites, "window_seconds": the_plan.window,
               "crash_limit": the_plan.crash_limit}  # fmt: skip
    return {**report.figures, "model": model, "plan": planned, "summary": report.summary(),
            "timeline": result.timeline}  # fmt: skip
