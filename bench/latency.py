"""Part 2: latency of one ≈5 s file, from its rename into the inbox to its last output.

The service runs with the shipped watch settings (``stable_seconds`` 5, ``poll_interval``
5), once with inotify (``poll: auto`` on a local disk) and once polling (``poll: always``).
A warm-up file is dropped first so that the model is loaded; then each drop is timed whole.
A renamed-in WAV that nobody writes and whose header says it is whole is ready at once
(:mod:`daemon.intake.readiness`), so ``stable_seconds`` is not part of it any more; results
from before that (``stable_seconds_subtracted`` 5) had the window taken off.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from bench import common

CLIP = "ljspeech/LJ001-0004.wav"  # 5.1 s of clean speech


def _drop(service: common.Service, clip: Path, stem: str) -> tuple[float, float | None]:
    """Rename a copy in; seconds until its outputs exist, and the pipeline's own seconds."""
    staged = common.copy_clip(clip, service.root / "staging", stem)
    started = time.monotonic()
    os.rename(staged, service.inbox / staged.name)
    common.wait_for(lambda: common.outputs_done(service.outbox, [stem]), 300, interval=0.01)
    elapsed = time.monotonic() - started
    meta = common.read_json(service.outbox / f"{stem}.json")
    return elapsed, meta.get("processing_seconds")


def run(work: Path, *, model: str, smoke: bool, drops: int) -> dict[str, Any]:
    """Median latency per watch mode."""
    clip = common.SPEECH / CLIP
    modes = {"inotify": "", "polling": "watch: {poll: always}\n"}
    if smoke:
        modes = {"inotify": ""}
    result: dict[str, Any] = {"clip": CLIP, "stable_seconds": common.SHIPPED_STABLE_SECONDS,
                              "stable_seconds_subtracted": 0.0}  # fmt: skip
    for mode, watch in modes.items():
        root = work / mode
        root.mkdir(parents=True)
        config = common.write_config(root, model=model, language="en", watch=watch)
        samples = []
        with common.Service(root, config) as service:
            service.start()
            _drop(service, clip, "warmup")
            for i in range(drops):
                elapsed, processing = _drop(service, clip, f"drop{i}")
                samples.append({
                    "latency": round(elapsed, 3),
                    "processing": processing,
                })  # fmt: skip
        result[mode] = {
            "median_latency_seconds": common.median(s["latency"] for s in samples),
            "median_processing_seconds": common.median(s["processing"] for s in samples),
            "drops": samples,
        }
        shutil.rmtree(root, ignore_errors=True)
    return result
