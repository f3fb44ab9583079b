"""Part 1 (bulk throughput) and part 5 (the service's peak RSS during it).

Contenders, alternated a, b, c per round, same model and settings (beam 5, best_of 5,
temperature fallback, fp32 on CPU, all five formats):

* a: the ``whisper`` command once per file (the model is loaded for every file);
* b: raw openai-whisper in one process (bench.raw): the floor for the openai engine;
* c: ``whisperd run``, READY before the drop; the drop renames every file into the inbox at
  once; the end is when every output of every file exists (stability window included).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from bench import common
from bench.common import Clip


def batch(model: str, min_seconds: float, smoke: bool) -> list[tuple[str, Clip]]:
    """(distinct stem, clip) pairs: the clips repeated until ``min_seconds`` of audio."""
    pool = common.clips("en")  # tiny.en is English-only; the same batch for any model
    if smoke:
        pool = [min(pool, key=lambda c: abs(c.duration - 2.0))]
    items: list[tuple[str, Clip]] = []
    total, i = 0.0, 0
    while total < min_seconds or not items:
        clip = pool[i % len(pool)]
        items.append((f"{i:03d}_{clip.path.stem}", clip))
        total += clip.duration
        i += 1
        if smoke:
            break
    return items


def stage(items: list[tuple[str, Clip]], folder: Path) -> list[Path]:
    """Copies of the batch in ``folder`` under their distinct names."""
    return [common.copy_clip(clip.path, folder, stem) for stem, clip in items]


def run_cli(model: str, language: str, files: list[Path], out: Path) -> float:
    """a: the whisper CLI once per file; total wall seconds."""
    started = time.monotonic()
    for path in files:
        common.run_timed([
            common.WHISPER_CLI, str(path), "--model", str(common.model_path(model)),
            "--language", language, "--beam_size", "5", "--fp16", "False",
            "--output_format", "all", "--output_dir", str(out),
        ])  # fmt: skip
    return time.monotonic() - started


def run_raw(model: str, language: str, files: list[Path], out: Path) -> tuple[float, dict]:
    """b: raw openai-whisper in one process; wall seconds (load included) and its texts."""
    import subprocess

    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    result = subprocess.run(
        [common.PYTHON, "-m", "bench.raw", str(common.model_path(model)), language, str(out),
         *map(str, files)],
        cwd=common.ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise RuntimeError(f"bench.raw failed: {result.stderr[-2000:]}")
    return elapsed, json.loads(result.stdout.strip().splitlines()[-1])


def run_service(
    model: str, language: str, items: list[tuple[str, Clip]], root: Path
) -> dict[str, Any]:
    """c: whisperd run; drop → last output, the RSS after READY and the peak during the run."""
    root.mkdir(parents=True, exist_ok=True)
    config = common.write_config(root, model=model, language=language)
    staging = root / "staging"
    files = stage(items, staging)
    stems = [stem for stem, _ in items]
    with common.Service(root, config) as service:
        ready = service.start()
        time.sleep(1.0)
        rss_ready = common.tree_rss(service.pid)
        with common.PeakRss(service.pid) as peak:
            started = time.monotonic()
            for path in files:
                os.rename(path, service.inbox / path.name)
            common.wait_for(
                lambda: common.outputs_done(service.outbox, stems), timeout=3600, interval=0.1
            )
            elapsed = time.monotonic() - started
    texts = {
        stem: common.read_json(root / "outbox" / f"{stem}.json")["text"].strip() for stem in stems
    }
    return {"seconds": elapsed, "ready_seconds": ready, "rss_ready": rss_ready,
            "rss_peak": peak.peak, "texts": texts}  # fmt: skip


def run(
    work: Path, *, model: str, smoke: bool, rounds: int, min_seconds: float, ctx: dict
) -> dict[str, Any]:
    """Alternate a, b, c for ``rounds`` rounds; rates, per-round ratios and their medians."""
    language = "en"
    items = batch(model, min_seconds, smoke)
    audio = sum(clip.duration for _, clip in items)
    per_round: list[dict[str, Any]] = []
    for r in range(rounds):
        base = work / f"round{r}"
        files = stage(items, base / "src")
        a = run_cli(model, language, files, base / "a")
        b, raw = run_raw(model, language, files, base / "b")
        c = run_service(model, language, items, base / "c")
        for name, out in (("a", base / "a"), ("b", base / "b")):
            missing = [s for s, _ in items if not common.outputs_done(out, [s])]
            if missing:
                raise RuntimeError(f"contender {name} wrote no outputs for {missing[:3]}")
        per_round.append({
            "a_seconds": round(a, 2), "b_seconds": round(b, 2), "c_seconds": round(c["seconds"], 2),
            "a_rate": round(audio / a, 3), "b_rate": round(audio / b, 3),
            "c_rate": round(audio / c["seconds"], 3),
            "c_over_a": round(a / c["seconds"], 3), "c_over_b": round(b / c["seconds"], 3),
            "b_load_seconds": round(raw["load_seconds"], 2),
            "c_ready_seconds": round(c["ready_seconds"], 2),
            "c_rss_ready_mb": round(c["rss_ready"] / 2**20, 1),
            "c_rss_peak_mb": round(c["rss_peak"] / 2**20, 1),
        })  # fmt: skip
        if r == 0:  # raw openai-whisper's text of each clip feeds the accuracy part
            by_clip: dict[str, Any] = {"raw": {}}
            for (_, clip), path in zip(items, files, strict=True):
                by_clip["raw"].setdefault(str(clip.path), raw["texts"][str(path)])
            ctx[(model, language)] = by_clip
        shutil.rmtree(base, ignore_errors=True)
    med = {
        key: common.median(r[key] for r in per_round)
        for key in ("a_rate", "b_rate", "c_rate", "c_over_a", "c_over_b")
    }
    return {
        "files": len(items),
        "audio_seconds": round(audio, 1),
        "rounds": per_round,
        "median": med,
        "memory": {
            "rss_after_ready_mb": common.median(r["c_rss_ready_mb"] for r in per_round),
            "peak_rss_mb": max(r["c_rss_peak_mb"] for r in per_round),
        },
        "targets": {
            "c_over_a >= 2": med["c_over_a"] >= 2.0,
            "c_over_b >= 0.9": med["c_over_b"] >= 0.9,
        },
    }
