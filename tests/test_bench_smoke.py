"""``python -m bench --smoke``: every part runs in seconds and writes a sane results table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.real_model
def test_bench_smoke_writes_tables(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=540,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads((tmp_path / "latest.json").read_text(encoding="utf-8"))
    markdown = (tmp_path / "latest.md").read_text(encoding="utf-8")

    assert data["smoke"] is True and data["errors"] == {}
    machine = data["machine"]
    assert machine["cores_logical"] >= 1 and machine["torch"] and machine["whisperd"]
    assert machine["model"] == "tiny.en"

    parts = data["parts"]
    assert set(parts) == {"throughput", "latency", "scale", "accuracy", "engines", "subtitles"}
    t = parts["throughput"]
    for key in ("a_rate", "b_rate", "c_rate", "c_over_a", "c_over_b"):
        assert t["median"][key] > 0, key
    assert t["memory"]["peak_rss_mb"] >= t["memory"]["rss_after_ready_mb"] > 0

    # Latency is measured beyond the stability window: at least the pipeline's own time,
    # and far below what a person would call slow for a 5 s clip.
    latency = parts["latency"]["inotify"]
    assert 0 < latency["median_processing_seconds"] <= latency["median_latency_seconds"] + 0.2
    assert latency["median_latency_seconds"] < 30
    scale = parts["scale"]["200"]
    for mode in ("inotify", "polling"):
        assert 0 < scale[mode]["startup_seconds"] < 30
        assert 0 < scale[mode]["rss_mb"] < 500  # idle, no model loaded
        assert scale[mode]["idle_cpu_percent"] < 5  # of one core, over the idle window
        assert scale[mode]["queued_by_service"] == 0  # every file was known and done
    accuracy = parts["accuracy"]["tiny.en/en"]
    assert accuracy["clips"] == 1 and 0 <= accuracy["wer_service"] <= 100
    subtitles = parts["subtitles"]["openai-whisper"]
    assert subtitles["cost"]["median_busy_ratio"] > 0
    mixed = subtitles["programmes"]["mixed"]
    assert mixed["default"]["words_away_from_speech"] == 0 and mixed["default"]["cues"] > 0
    assert subtitles["programmes"]["music_only"]["default"]["cues"] == 0

    for heading in ("## Machine", "## 1. Bulk throughput", "## 2. Latency",
                    "## 3. Scale and idle cost", "## 4. Accuracy", "## 5. Memory",
                    "## 6. Engines", "## 9. Subtitles"):  # fmt: skip
        assert heading in markdown
