"""Part 6: faster-whisper against openai-whisper, model base, beam 5, the Spanish clips.

Alternated per round: ``whisperd transcribe`` with each engine, then ``whisperd run`` with
each engine. Two times per command: the wall time (transcribe: the whole command, interpreter
start-up included; run: drop → last output, the stability window included) and the busy time
(transcribe: the pipeline's own seconds, the sum of processing_seconds in the JSON outputs; run:
from the first job's start to the last job's end, in the ledger). Model loading is in both.
The speed-up target is judged on the busy time, which is what the engine changes; the wall
ratios are reported beside it. faster-whisper runs at its default compute type (int8 on CPU).
When the configuration rejects ``engine: faster-whisper`` the part reports "not available".
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import accuracy, common

ENGINES = ("openai-whisper", "faster-whisper")


def available(work: Path, model: str) -> str | None:
    """None when faster-whisper can be configured; else why not."""
    if importlib.util.find_spec("faster_whisper") is None:
        return "the faster_whisper package is not installed"
    root = Path(tempfile.mkdtemp(dir=work))
    config = common.write_config(root, model=model, language="es",
                                 extra=", engine: faster-whisper")  # fmt: skip
    check = subprocess.run(
        [common.PYTHON, "-m", "daemon", "check-config", "-c", str(config)],
        cwd=common.ROOT, capture_output=True, text=True, check=False,
        env={**os.environ, "PYTHONPATH": str(common.ROOT)},
    )  # fmt: skip
    if check.returncode != 0:
        return f"config rejects engine: faster-whisper ({check.stderr.strip()[-300:]})"
    return None


def busy_seconds(state: Path) -> float:
    """First job start → last job end, from the service's ledger (read-only)."""
    from daemon.queue import open_ledger

    with open_ledger(state, readonly=True) as ledger:
        jobs = [j for j in ledger.history() if j.state == "done"]
    return max(j.finished_at for j in jobs) - min(j.started_at for j in jobs)


def service_run(
    engine: str, model: str, clips: list[common.Clip], root: Path
) -> tuple[float, float, dict]:
    """``whisperd run`` with ``engine``: wall seconds (drop → every output), busy seconds
    (ledger) and texts."""
    config = common.write_config(root, model=model, language="es", extra=f", engine: {engine}")
    staged = [common.copy_clip(c.path, root / "staging", c.path.stem) for c in clips]
    with common.Service(root, config) as service:
        service.start()
        started = time.monotonic()
        for path in staged:
            os.rename(path, service.inbox / path.name)
        stems = [c.path.stem for c in clips]
        common.wait_for(lambda: common.outputs_done(service.outbox, stems), 1800, interval=0.1)
        elapsed = time.monotonic() - started
    texts = {
        str(c.path): common.read_json(service.outbox / f"{c.path.stem}.json")["text"].strip()
        for c in clips
    }
    return elapsed, busy_seconds(service.state), texts


def run(work: Path, *, model: str, smoke: bool, rounds: int, ctx: dict) -> dict[str, Any]:
    """Wall-time ratios (openai / faster) and WER of each engine."""
    why = available(work, model)
    if why is not None:
        return {"available": False, "reason": why}
    clips = common.clips("es")
    if smoke:
        clips = clips[:1]
    refs = [c.reference for c in clips]
    keys = [str(c.path) for c in clips]
    keys_all = [f"{m}:{e}" for m in ("transcribe", "run") for e in ENGINES]
    times: dict[str, list[float]] = {k: [] for k in keys_all}
    busy: dict[str, list[float]] = {k: [] for k in keys_all}
    texts: dict[str, dict[str, str]] = {}
    for r in range(rounds):
        for engine in ENGINES:
            got, seconds, pipeline = accuracy.service_texts(model, "es", clips, work,
                                                            engine=engine)  # fmt: skip
            times[f"transcribe:{engine}"].append(seconds)
            busy[f"transcribe:{engine}"].append(pipeline)
            texts[f"transcribe:{engine}"] = got
        for engine in ENGINES:
            root = work / f"run-{engine}-{r}"
            root.mkdir()
            seconds, worked, got = service_run(engine, model, clips, root)
            times[f"run:{engine}"].append(seconds)
            busy[f"run:{engine}"].append(worked)
            texts[f"run:{engine}"] = got
            shutil.rmtree(root, ignore_errors=True)
    audio = sum(c.duration for c in clips)
    result: dict[str, Any] = {"available": True, "model": model, "clips": len(clips),
                              "audio_seconds": round(audio, 1), "rounds": rounds}  # fmt: skip
    for key, values in times.items():
        result[key] = {
            "median_seconds": round(common.median(values), 2),
            "seconds": [round(v, 2) for v in values],
            "median_busy_seconds": round(common.median(busy[key]), 2),
            "busy_seconds": [round(v, 2) for v in busy[key]],
            "wer": common.wer(refs, [texts[key][k] for k in keys], "es"),
        }
    for mode in ("transcribe", "run"):
        ratios = [
            o / f for o, f in zip(times[f"{mode}:openai-whisper"], times[f"{mode}:faster-whisper"],
                                  strict=True)
        ]  # fmt: skip
        result[f"{mode}_speedup_faster_over_openai"] = round(common.median(ratios), 2)
        busy_ratios = [
            o / f for o, f in zip(busy[f"{mode}:openai-whisper"], busy[f"{mode}:faster-whisper"],
                                  strict=True)
        ]  # fmt: skip
        result[f"{mode}_busy_speedup_faster_over_openai"] = round(common.median(busy_ratios), 2)
    return result
