"""Part 4: WER per model and language, the service's text against raw openai-whisper's.

Service side: ``whisperd transcribe`` on the plain path (:data:`bench.common.PLAIN`: no
speech detection, Whisper's own cues), which must not change a word of the engine's result.
Reference side: bench.raw (``whisper.transcribe``, beam 5, best_of 5, fp32; reused from the
throughput or engines part when they ran). Both must give the same text clip by clip. The
default path (speech detection) decodes only the speech, so its text differs; part 9
(:mod:`bench.subtitles`) measures its WER against the plain path's.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench import common


def service_texts(
    model: str,
    language: str,
    clips: list[common.Clip],
    work: Path,
    engine: str = "openai-whisper",
    extra: str = "",
) -> tuple[dict[str, str], float, float]:
    """``whisperd transcribe`` on the clips: {clip path: text}, wall seconds of the command,
    and the pipeline's own seconds (the sum of each JSON's processing_seconds: model load
    included, interpreter start-up not)."""
    out = Path(tempfile.mkdtemp(dir=work))
    config = common.write_config(out, model=model, language=language,
                                 extra=f", engine: {engine}{extra}")  # fmt: skip
    seconds = common.run_timed([
        common.PYTHON, "-m", "daemon", "transcribe", "-c", str(config), "--formats", "json",
        "-o", str(out / "o"), *(str(c.path) for c in clips),
    ])  # fmt: skip
    data = {str(c.path): common.read_json(out / "o" / f"{c.path.stem}.json") for c in clips}
    texts = {key: d["text"].strip() for key, d in data.items()}
    return texts, seconds, sum(d["processing_seconds"] for d in data.values())


def raw_texts(model: str, language: str, clips: list[common.Clip], work: Path) -> dict[str, str]:
    """bench.raw on the clips: {clip path: text}."""
    out = Path(tempfile.mkdtemp(dir=work))
    result = subprocess.run(
        [common.PYTHON, "-m", "bench.raw", str(common.model_path(model)), language, str(out),
         *(str(c.path) for c in clips)],
        cwd=common.ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"bench.raw failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])["texts"]


def run(work: Path, *, models: list[str], smoke: bool, ctx: dict) -> dict[str, Any]:
    """WER of both sides and per-clip identity for each (model, language)."""
    combos = [
        (m, lang) for m in models for lang in (("en",) if m.endswith(".en") else ("en", "es"))
    ]
    result: dict[str, Any] = {}
    for model, language in combos:
        clips = common.clips(language)
        if smoke:
            clips = [min(clips, key=lambda c: abs(c.duration - 2.0))]
        reused = ctx.get((model, language), {})
        service = service_texts(model, language, clips, work, extra=common.PLAIN)[0]
        raw = reused.get("raw") or raw_texts(model, language, clips, work)
        keys = [str(c.path) for c in clips]
        refs = [c.reference for c in clips]
        differing = [
            {"clip": Path(k).name, "service": service[k], "raw": raw[k]}
            for k in keys
            if service[k] != raw[k]
        ]
        result[f"{model}/{language}"] = {
            "clips": len(clips),
            "wer_service": common.wer(refs, [service[k] for k in keys], language),
            "wer_raw": common.wer(refs, [raw[k] for k in keys], language),
            "identical": len(keys) - len(differing),
            "differing": differing,
            "service_source": "whisperd transcribe, plain path",
        }
    result["targets"] = {
        "service text == raw text, every clip": all(
            v["identical"] == v["clips"] for v in result.values() if isinstance(v, dict)
        )
    }
    return result
