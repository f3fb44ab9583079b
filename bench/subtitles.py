"""Part 9: the subtitle path (speech detection, word timings, readable cues, the guard).

Two contenders, both ``whisperd transcribe`` in one process each (model tiny.en, beam 5,
fp32 on CPU, all five formats, ``language: en``):

* **plain**: ``vad: {enabled: false}, subtitles: {style: whisper}``: the engine on the
  whole file, Whisper's segments as cues, no word timings (whisperd before this part);
* **default**: the shipped defaults: speech detection, the engine on the speech clips,
  word timings, the guard, readable cues.

A. *cost*: the throughput clips (the English shared clips repeated to ``minutes`` of
   audio, distinct names), both contenders alternated per round, per engine. Busy time =
   the sum of the JSONs' ``processing_seconds`` (a warm-up clip first, left out: model
   loads are not counted); CPU = the subprocess's user + system time. Target with
   openai-whisper: default ≤ 1.15 × plain.
B. *programmes* (tests/programmes.py, built in memory, written as WAVs under the work
   folder): *mixed* (a music intro, 12 clips between silence, pink noise, music and low
   noise, a music outro), *lecture* (all 25 English clips with 0.5 s pauses), *sparse* (six
   clips a minute apart in silence and low noise: a long file with silence) and 60 s of
   each non-speech kind alone; ``short`` (``--subtitle-short``): the shorter mixed,
   lecture and sparse programmes of ``tests/e2e/test_subtitles.py``
   (:func:`tests.programmes.short_programmes`), without the non-speech files. Per
   engine, both contenders: words in cues that overlap no true speech (target 0), how early
   a cue starts before its speech (≤ 1 s), the share of cues within every rule on *mixed*
   and *lecture* (≥ 95 %), lecture WER against plain openai-whisper's (within 0.5 points),
   and the busy-time ratio per programme (the sparse one: faster, since silence is no
   longer decoded).
"""

from __future__ import annotations

import importlib.util
import resource
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bench import common

PLAIN = common.PLAIN
CONTENDERS = {"plain": PLAIN, "default": ""}


def engines() -> list[str]:
    found = ["openai-whisper"]
    if importlib.util.find_spec("faster_whisper") is not None:
        found.append("faster-whisper")
    return found


def transcribe(files: list[Path], engine: str, contender: str, root: Path) -> dict[str, Any]:
    """One ``whisperd transcribe`` run: per-stem JSON, wall and CPU seconds of the process."""
    root.mkdir(parents=True, exist_ok=True)
    config = common.write_config(root, model="tiny.en", language="en",
                                 extra=f", engine: {engine}{CONTENDERS[contender]}")  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = common.run_timed([common.PYTHON, "-m", "daemon", "transcribe", "-c", str(config),
                             "-o", str(root / "out"), *map(str, files)], timeout=7200)  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    docs = {f.stem: common.read_json(root / "out" / f"{f.stem}.json") for f in files}
    return {"wall": wall, "cpu": cpu, "docs": docs, "out": root / "out"}


def _busy(run: dict[str, Any], skip: str = "000_warmup") -> float:
    return sum(d["processing_seconds"] for stem, d in run["docs"].items() if stem != skip)


def cost(work: Path, engine: str, *, minutes: float, rounds: int, smoke: bool) -> dict[str, Any]:
    """A: plain and default alternated on the throughput clips; busy and CPU ratios."""
    from bench.throughput import batch

    items = batch("tiny.en", minutes * 60, smoke)
    warm = min(common.clips("en"), key=lambda c: abs(c.duration - 2.0))
    audio = sum(c.duration for _, c in items)
    rows = []
    for r in range(rounds):
        files = [common.copy_clip(warm.path, work / "src", "000_warmup")]
        files += [common.copy_clip(c.path, work / "src", stem) for stem, c in items]
        row: dict[str, Any] = {}
        for contender in CONTENDERS:
            found = transcribe(files, engine, contender, work / f"{contender}-{r}")
            row[f"{contender}_busy"] = round(_busy(found), 2)
            row[f"{contender}_cpu"] = round(found["cpu"], 2)
            shutil.rmtree(work / f"{contender}-{r}", ignore_errors=True)
        row["busy_ratio"] = round(row["default_busy"] / row["plain_busy"], 3)
        row["cpu_ratio"] = round(row["default_cpu"] / row["plain_cpu"], 3)
        rows.append(row)
        shutil.rmtree(work / "src", ignore_errors=True)
    return {
        "files": len(items),
        "audio_seconds": round(audio, 1),
        "rounds": rows,
        "median_busy_ratio": common.median(r["busy_ratio"] for r in rows),
        "median_cpu_ratio": common.median(r["cpu_ratio"] for r in rows),
    }


def build_programmes(folder: Path, smoke: bool, short: bool = False) -> dict[str, Any]:
    """The programmes as WAVs in ``folder``: {name: Programme}; ``short``: the test's set."""
    from tests import programmes as P

    folder.mkdir(parents=True, exist_ok=True)
    if short:  # the non-speech files alone are left to the tests (default path only)
        made = {k: v for k, v in P.short_programmes().items() if not k.endswith("_only")}
    elif smoke:
        clips = P.english()[:2]
        made = {"mixed": P.mixed_programme(clips, gap=3.0),
                "music_only": P.nonspeech_programme("music", 10.0)}  # fmt: skip
    else:
        made = {"mixed": P.mixed_programme(), "lecture": P.lecture_programme(),
                "sparse": P.sparse_programme()}  # fmt: skip
        made |= {f"{k}_only": P.nonspeech_programme(k) for k in P.NON_SPEECH}
    for name, prog in made.items():
        P.write_wav(prog, folder / f"{name}.wav")
    return made


def evaluate(files, made, engine: str, work: Path) -> dict[str, Any]:
    """B: both contenders on every programme; the checks per programme (on the srt, by
    :mod:`tests.programmes`, independent of whisperd's own rule report)."""
    from tests.programmes import rule_checks, speech_checks

    out: dict[str, Any] = {}
    for contender in CONTENDERS:
        found = transcribe(files, engine, contender, work / f"{engine}-{contender}")
        for name, prog in made.items():
            doc = found["docs"][name]
            srt_text = (found["out"] / f"{name}.srt").read_text(encoding="utf-8")
            sub = doc.get("subtitles") or {}
            out.setdefault(name, {})[contender] = {
                **speech_checks(srt_text, prog.speech),
                "within_all": rule_checks(srt_text)["within_all"] if prog.reference else None,
                "reported_within_all": sub.get("within_all"),
                "max_cps": sub.get("max_cps"),
                "wer": common.wer([prog.reference], [doc["text"]], "en") if prog.reference
                else None,
                "busy_seconds": round(doc["processing_seconds"], 2),
                "speech_seconds": doc.get("speech_seconds"),
                "dropped": len(doc.get("dropped") or []),
                "srt_head": srt_text[:900],
            }  # fmt: skip
    for name in made:
        row = out[name]
        row["busy_ratio"] = round(row["default"]["busy_seconds"] / row["plain"]["busy_seconds"], 3)
    return out


def run(
    work: Path, *, smoke: bool, rounds: int, minutes: float, short: bool = False
) -> dict[str, Any]:
    """Both sections for each engine; the targets."""
    names = engines() if not smoke else ["openai-whisper"]
    made = build_programmes(work / "programmes", smoke, short)
    files = [work / "programmes" / f"{n}.wav" for n in made]
    result: dict[str, Any] = {
        "programmes": {n: round(p.duration, 1) for n, p in made.items()},
        "short": short,
        "minutes": minutes,
        "rounds": rounds,
    }
    for engine in names:
        result[engine] = {
            "cost": cost(work / f"cost-{engine}", engine, minutes=minutes, rounds=rounds,
                         smoke=smoke),
            "programmes": evaluate(files, made, engine, Path(tempfile.mkdtemp(dir=work))),
        }  # fmt: skip
    result["targets"] = targets(result, names)
    return result


def targets(result: dict[str, Any], names: list[str]) -> dict[str, bool]:
    found: dict[str, bool] = {}
    base = result["openai-whisper"]["programmes"]
    for engine in names:
        progs = result[engine]["programmes"]
        ours = {n: p["default"] for n, p in progs.items()}
        short = "openai" if engine == "openai-whisper" else "faster"
        found[f"{short}: 0 words away from speech"] = all(
            o["words_away_from_speech"] == 0 for o in ours.values())  # fmt: skip
        found[f"{short}: no cue > 1 s early"] = all(
            o["max_lead_seconds"] <= 1.0 for o in ours.values())  # fmt: skip
        found[f"{short}: >= 95 % cues within every rule"] = all(
            ours[n]["within_all"] >= 0.95 for n in ("mixed", "lecture") if n in ours)  # fmt: skip
        if "lecture" in ours:
            delta = ours["lecture"]["wer"] - base["lecture"]["plain"]["wer"]
            found[f"{short}: lecture WER within 0.5 points of plain openai"] = delta <= 0.5
        if "sparse" in progs:
            found[f"{short}: sparse programme faster than plain"] = (
                progs["sparse"]["busy_ratio"] < 1.0)  # fmt: skip
    found["openai: default <= 1.15 x plain (busy)"] = (
        result["openai-whisper"]["cost"]["median_busy_ratio"] <= 1.15
    )
    return found
