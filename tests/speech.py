"""The shared speech clips (../shared/speech) and word error rate, as the clips' README says."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import pytest

SPEECH = Path(__file__).resolve().parents[2] / "shared" / "speech"


@dataclass(frozen=True)
class Clip:
    path: Path
    language: str
    duration: float
    reference: str


def clips(language: str | None = None) -> list[Clip]:
    manifest = SPEECH / "manifest.tsv"
    if not manifest.is_file():
        pytest.fail(f"the shared speech clips are missing: {manifest} (see the README)")
    with open(manifest, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    found = [
        Clip(SPEECH / r["file"], r["language"], float(r["duration_seconds"]),
             r["reference_transcript"])
        for r in rows
    ]  # fmt: skip
    return [c for c in found if language is None or c.language == language]


def normalizer(language: str):
    from whisper.normalizers import BasicTextNormalizer, EnglishTextNormalizer

    return EnglishTextNormalizer() if language == "en" else BasicTextNormalizer()


def wer(references: list[str], hypotheses: list[str], language: str) -> float:
    """Corpus word error rate in percent, both sides normalised."""
    import jiwer

    norm = normalizer(language)
    refs = [norm(r) for r in references]
    hyps = [norm(h) for h in hypotheses]
    return 100.0 * jiwer.wer(refs, hyps)
