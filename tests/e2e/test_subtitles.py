"""The subtitle path on the default config, with the real tiny.en model and both engines.

``whisperd transcribe`` (a subprocess, the shipped defaults: speech detection, word timings,
the guard, readable cues) on programmes of :mod:`tests.programmes`: a mixed one (a music
intro, speech clips between digital silence, pink noise, music and low noise, a music
outro), a lecture (English clips with 0.5 s pauses), a sparse one (clips a minute apart in
silence and low noise) and 60 s of each non-speech kind alone
(:func:`tests.programmes.short_programmes`). What a viewer would check, on the written
files, with checks that do not use whisperd's own report: no words on screen where nobody
speaks, no cue before its speech, cues within the timed-text rules, the same words as raw
openai-whisper, empty outputs for a file without speech. The full-length programmes, and
the plain path beside them, are in ``python -m bench --parts subtitles``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import programmes as P
from tests.speech import normalizer, wer

# Both engines on about 8 minutes of audio: a few minutes on 2 quiet cores, more when busy.
pytestmark = [pytest.mark.real_model, pytest.mark.timeout(1500)]

ROOT = Path(__file__).resolve().parents[2]
ENGINES = ("openai-whisper", "faster-whisper")
NON_SPEECH = tuple(f"{kind}_only" for kind in P.NON_SPEECH)
SPEECH = ("mixed", "lecture", "sparse")


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The programmes, written as WAVs: {"folder": Path, name: Programme}."""
    folder = tmp_path_factory.mktemp("programmes")
    found: dict[str, Any] = P.short_programmes()
    for name, programme in found.items():
        P.write_wav(programme, folder / f"{name}.wav")
    return {"folder": folder, **found}


@pytest.fixture(scope="module", params=ENGINES)
def outputs(
    request: pytest.FixtureRequest,
    made: dict[str, Any],
    model_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """Every programme through ``whisperd transcribe`` with this engine: the output folder."""
    root = tmp_path_factory.mktemp(request.param)
    config = root / "whisperd.yaml"
    config.write_text(
        f"model_dir: {model_dir}\ndefaults: {{engine: {request.param}, model: tiny.en}}\n",
        encoding="utf-8",
    )
    files = sorted(str(p) for p in made["folder"].glob("*.wav"))
    result = subprocess.run(
        [sys.executable, "-m", "daemon", "transcribe", "-c", str(config), "-o",
         str(root / "out"), *files],
        capture_output=True, text=True, cwd=ROOT, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{len(files)} files: {len(files)} transcribed, 0 failed" in result.stdout
    return root / "out"


def srt_of(out: Path, name: str) -> str:
    return (out / f"{name}.srt").read_text(encoding="utf-8")


def json_of(out: Path, name: str) -> dict[str, Any]:
    return json.loads((out / f"{name}.json").read_text(encoding="utf-8"))


def test_no_words_where_nobody_speaks_and_no_early_cue(outputs: Path, made: dict[str, Any]) -> None:
    for name in SPEECH:
        found = P.speech_checks(srt_of(outputs, name), made[name].speech)
        assert found["cues"] > 0, name
        assert found["words_away_from_speech"] == 0, (name, found["examples"])
        assert found["max_lead_seconds"] <= 1.0, (name, found)
    first = P.srt_cues(srt_of(outputs, "mixed"))[0]
    assert first[0] >= 8.0 - 0.3  # nothing on screen during the 8 s music intro


def test_cues_are_readable(outputs: Path) -> None:
    for name in ("mixed", "lecture"):
        checked = P.rule_checks(srt_of(outputs, name))
        assert checked["within_all"] >= 0.95, (name, checked["outside"])
        report = json_of(outputs, name)["subtitles"]  # what whisperd says of its cues
        assert report["count"] == checked["cues"]
        assert report["within_all"] >= 0.95 and report["max_cps"] <= 20.0 + 0.01


def test_cues_carry_the_words_of_the_transcript(outputs: Path) -> None:
    """Resegmenting changes no word: the cues read, in order, as the txt does."""
    norm = normalizer("en")
    for name in ("mixed", "lecture"):
        cues = " ".join(" ".join(lines) for _, _, lines in P.srt_cues(srt_of(outputs, name)))
        txt = (outputs / f"{name}.txt").read_text(encoding="utf-8")
        assert norm(cues).split() == norm(txt).split(), name


def test_a_file_without_speech_gives_empty_outputs(outputs: Path) -> None:
    for name in NON_SPEECH:
        assert (outputs / f"{name}.txt").read_text(encoding="utf-8").strip() == "", name
        assert P.srt_cues(srt_of(outputs, name)) == [], name
        assert "-->" not in (outputs / f"{name}.vtt").read_text(encoding="utf-8"), name
        doc = json_of(outputs, name)
        assert doc["segments"] == [] and doc["speech_seconds"] == 0, name
        assert doc["dropped"] == [], name  # no engine ran: nothing to drop


@pytest.fixture(scope="module")
def raw_lecture_wer(made: dict[str, Any], model_dir: Path) -> float:
    """Raw openai-whisper on the lecture: whole file, its defaults, whisperd's decoding
    options (beam 5, best of 5, the temperature fallback; fp32 on CPU)."""
    import whisper

    from daemon import models

    model = models.load("tiny.en", "cpu", model_dir)
    lecture = made["lecture"]
    text = whisper.transcribe(model, lecture.samples, language="en", beam_size=5, best_of=5,
                              fp16=False)["text"]  # fmt: skip
    return wer([lecture.reference], [text], "en")


def test_lecture_wer_within_half_a_point_of_raw_openai_whisper(
    outputs: Path, made: dict[str, Any], raw_lecture_wer: float
) -> None:
    lecture = made["lecture"]
    text = json_of(outputs, "lecture")["text"]
    ours = wer([lecture.reference], [text], "en")
    print(f"lecture WER {outputs.parent.name}: {ours:.2f} %, raw openai {raw_lecture_wer:.2f} %")
    assert ours <= raw_lecture_wer + 0.5
