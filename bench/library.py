"""Part 3, media library: ``outputs_beside_source`` over a library that is all subtitled.

The tree is ``shows × 5 seasons × N`` episodes (``Show 007/Season 03/Show 007 - S03E12.mkv``,
a real 1 s Matroska file each, a few kB): 90 % with an ``.en.srt`` beside them, 10 % with an
English subtitle stream inside. The ledger starts empty (a library pointed at for the first
time). Measured, with the shipped watch defaults and ``language: en``:

* **first start**: process start → READY=1 (the start-up scan), then → every video recorded
  in the ledger (each checked for subtitles: a folder listing, and for the ones without a
  sidecar, their streams read through PyAV); how many were queued (must be 0) and skipped;
  RSS and idle CPU after that, over the idle window;
* **restart** with that ledger: start → READY=1 and idle CPU (nothing is looked at again).
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import common

SEASONS = 5
EMBEDDED_EVERY = 10  # one video in ten has its subtitles inside, the others beside


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def make_videos(work: Path) -> tuple[Path, Path]:
    """A tiny real Matroska video, and the same with an English subtitle stream."""
    plain, subbed, sub = work / "plain.mkv", work / "subbed.mkv", work / "in.srt"
    sub.write_text("1\n00:00:00,100 --> 00:00:00,900\nHello.\n\n", encoding="utf-8")
    src = ("-f", "lavfi", "-i", "testsrc=size=16x16:rate=5:duration=1",
           "-f", "lavfi", "-i", "sine=duration=1:sample_rate=8000")  # fmt: skip
    codecs = ("-c:v", "mpeg4", "-c:a", "aac", "-ac", "1", "-b:a", "16k")
    _ffmpeg(*src, "-map", "0:v", "-map", "1:a", *codecs, str(plain))
    _ffmpeg(*src, "-i", str(sub), "-map", "0:v", "-map", "1:a", "-map", "2:s", *codecs,
            "-c:s", "srt", "-metadata:s:s:0", "language=eng", str(subbed))  # fmt: skip
    return plain, subbed


def make_library(inbox: Path, videos: int, plain: Path, subbed: Path) -> int:
    """The tree; returns how many videos it holds."""
    episodes = max(1, min(20, videos // (SEASONS * 10)))
    shows = max(1, videos // (SEASONS * episodes))
    made = 0
    for show in range(shows):
        for season in range(1, SEASONS + 1):
            folder = inbox / f"Show {show:03d}" / f"Season {season:02d}"
            folder.mkdir(parents=True)
            for episode in range(1, episodes + 1):
                stem = f"Show {show:03d} - S{season:02d}E{episode:02d}"
                if made % EMBEDDED_EVERY == 0:
                    shutil.copyfile(subbed, folder / f"{stem}.mkv")
                else:
                    shutil.copyfile(plain, folder / f"{stem}.mkv")
                    (folder / f"{stem}.en.srt").write_text("1\n00:00:00,100 --> 00:00:00,900\n"
                                                           "Hi.\n\n", encoding="utf-8")  # fmt: skip
                made += 1
    return made


def states(state: Path) -> dict[str, int]:
    """Rows per state (read straight from the file, no lock)."""
    try:
        with sqlite3.connect(f"file:{state / 'ledger.sqlite3'}?mode=ro", uri=True) as conn:
            rows = conn.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall()
    except sqlite3.Error:
        return {}
    return dict(rows)


def _idle(service: common.Service, seconds: float) -> dict[str, float]:
    before = common.tree_cpu(service.pid)
    started = time.monotonic()
    time.sleep(seconds)
    window = time.monotonic() - started
    cpu = common.tree_cpu(service.pid) - before
    return {"idle_cpu_percent": round(100.0 * cpu / window, 3),
            "rss_mb": round(common.tree_rss(service.pid) / 2**20, 1)}  # fmt: skip


def measure(work: Path, videos: int, *, model: str, idle_seconds: float) -> dict[str, Any]:
    """A library of ``videos`` videos, first start and restart (see the module docstring)."""
    root = work / f"library{videos}"
    root.mkdir(parents=True)
    plain, subbed = make_videos(root)
    total = make_library(root / "inbox", videos, plain, subbed)
    config = common.write_config(root, model=model, language="en",
                                 watch="outputs_beside_source: true\n")  # fmt: skip
    out: dict[str, Any] = {"videos": total, "embedded_every": EMBEDDED_EVERY}
    with common.Service(root, config) as service:
        ready = service.start()
        started = time.monotonic() - ready
        while sum(states(service.state).values()) < total:
            if time.monotonic() - started > 1800:
                raise TimeoutError(f"only {sum(states(service.state).values())} recorded")
            time.sleep(0.2)
        recorded = time.monotonic() - started
        first = {"startup_seconds": round(ready, 2), "all_recorded_seconds": round(recorded, 2),
                 **_idle(service, idle_seconds)}  # fmt: skip
    found = states(root / "var")
    first["queued"] = found.get("queued", 0) + found.get("running", 0) + found.get("done", 0)
    first["skipped"] = found.get("skipped", 0)
    out["first_start"] = first
    with common.Service(root, config) as service:
        ready = service.start()
        out["restart"] = {"startup_seconds": round(ready, 2), **_idle(service, idle_seconds)}
    found = states(root / "var")
    out["restart"]["queued"] = found.get("queued", 0) + found.get("running", 0)
    written = [p for p in (root / "inbox").rglob("*") if p.suffix in (".json", ".txt")]
    out["files_written"] = len(written) + (root / "outbox").exists()
    shutil.rmtree(root, ignore_errors=True)
    return out
