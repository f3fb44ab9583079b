"""``whisperd render``: outputs written again from the stored JSON with the current settings,
on a real ledger and real writers (the real-model run is in tests/e2e/test_operate_real.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from daemon.commands import render
from daemon.config import load_config
from daemon.outputs import missing_words, read_transcript, write_outputs
from daemon.queue import open_ledger
from daemon.transcript import Dropped, Segment, Transcript, Word
from daemon.version import Fingerprint

TEXT = "And so my fellow Americans ask not what your country can do for you"


def transcript(words: bool = True) -> Transcript:
    tokens = [f" {w}" for w in TEXT.split()]
    timed = tuple(Word(i * 0.5, i * 0.5 + 0.4, w, 0.9) for i, w in enumerate(tokens))
    segment = Segment(0, 0.0, len(tokens) * 0.5, " " + TEXT, timed if words else None)
    return Transcript(TEXT, "en", 0.99, (segment,), 7.0, "tiny.en", "openai-whisper")


def setup(tmp_path: Path, *, words: bool, formats: str = "[txt, srt, json]") -> Path:
    """A done job of talks/jfk.wav whose outputs were written from :func:`transcript`."""
    config = tmp_path / "whisperd.yaml"
    config.write_text(
        f"inbox: {tmp_path / 'inbox'}\noutbox: {tmp_path / 'outbox'}\n"
        f"state_dir: {tmp_path / 'var'}\ndefaults: {{formats: {formats}}}\n"
    )
    (tmp_path / "inbox" / "talks").mkdir(parents=True)
    (tmp_path / "inbox" / "talks" / "jfk.wav").write_bytes(b"audio")
    out = tmp_path / "outbox" / "talks"
    targets = {f: out / f"jfk.{f}" for f in ("txt", "srt", "json")}
    write_outputs(transcript(words), targets, subtitles=load_config(config).defaults.subtitles,
                  meta={"source": "talks/jfk.wav", "settings": {"model": "tiny.en"},
                        "processing_seconds": 3.0})  # fmt: skip
    with open_ledger(tmp_path / "var") as ledger:
        job = ledger.enqueue("talks/jfk.wav", Fingerprint(5, 1, 1), model="tiny.en",
                             settings_json="{}")  # fmt: skip
        ledger.claim("w")
        ledger.complete(job.id, outputs=[f"talks/jfk.{f}" for f in ("txt", "srt", "json")],
                        audio_seconds=7.0, processing_seconds=3.0, language="en")  # fmt: skip
    return config


def rewrite(config: Path, extra: str) -> None:
    config.write_text(config.read_text() + extra)


def test_the_json_reads_back_into_the_same_transcript(tmp_path: Path) -> None:
    setup(tmp_path, words=True)
    back, meta = read_transcript(tmp_path / "outbox" / "talks" / "jfk.json")
    original = transcript()
    assert back.segments == original.segments and back.language == "en"
    assert (back.duration, back.model, meta["source"]) == (7.0, "tiny.en", "talks/jfk.wav")
    assert not missing_words(back) and missing_words(transcript(words=False))


def test_speech_regions_and_drops_read_back_and_survive_a_render(tmp_path: Path) -> None:
    config = setup(tmp_path, words=True)
    stored = tmp_path / "outbox" / "talks" / "jfk.json"
    music = Dropped(9.0, 11.0, " Thanks for watching!", "outside_speech")
    speech = ((0.0, 8.0),)
    write_outputs(replace(transcript(), speech=speech, dropped=(music,)), {"json": stored},
                  subtitles=load_config(config).defaults.subtitles,
                  meta={"source": "talks/jfk.wav"})  # fmt: skip
    back, meta = read_transcript(stored)
    assert (back.speech, back.dropped) == (speech, (music,))
    assert not {"speech", "speech_seconds", "dropped", "subtitles"} & set(meta)  # not stale
    assert render.run(load_config(config), None) == 0
    again = json.loads(stored.read_text())
    assert again["speech"] == [[0.0, 8.0]] and again["dropped"][0]["reason"] == "outside_speech"
    assert again["subtitles"]["count"] >= 1  # the readable cues, built again from the words


def test_render_cuts_lines_at_the_new_width_and_records_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = setup(tmp_path, words=True)
    srt = tmp_path / "outbox" / "talks" / "jfk.srt"
    assert max(map(len, srt.read_text().splitlines())) > 20
    rewrite(config, "folders: {talks: {subtitles: {max_line_width: 20, max_line_count: 1}}}\n")
    assert render.run(load_config(config), None) == 0
    assert "1 file rendered again" in capsys.readouterr().out
    lines = [ln for ln in srt.read_text().splitlines() if ln and "-->" not in ln
             and not ln.isdigit()]  # fmt: skip
    assert max(map(len, lines)) <= 20 and " ".join(lines) == TEXT
    stored = json.loads((tmp_path / "outbox" / "talks" / "jfk.json").read_text())
    assert stored["settings"]["subtitles"]["max_line_width"] == 20
    assert stored["settings"]["model"] == "tiny.en" and "rendered_at" in stored


def test_formats_and_names_follow_the_settings_and_the_json_stays(tmp_path: Path) -> None:
    config = setup(tmp_path, words=True)
    rewrite(config, "folders: {talks: {formats: [vtt], output_name: '{stem}.{language}'}}\n")
    assert render.run(load_config(config), ["talks"]) == 0
    out = tmp_path / "outbox" / "talks"
    assert sorted(p.name for p in out.iterdir()) == ["jfk.en.vtt", "jfk.json"]
    with open_ledger(tmp_path / "var", readonly=True) as ledger:
        [job] = ledger.done_jobs()
    assert sorted(job.outputs) == ["talks/jfk.en.vtt", "talks/jfk.json"]
    assert render.run(load_config(config), ["talks/jfk.wav"]) == 0  # and again, from it


def test_without_word_timings_it_names_requeue(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = setup(tmp_path, words=False)
    srt = tmp_path / "outbox" / "talks" / "jfk.srt"
    before = srt.read_text()
    rewrite(config, "folders: {talks: {subtitles: {max_line_width: 20}}}\n")
    assert render.run(load_config(config), None) == 1
    assert (
        "talks/jfk.wav: cannot render again: its JSON has no word timings, which "
        "subtitles.max_line_width needs (transcribe it again with: whisperd requeue "
        "talks/jfk.wav)"
    ) in capsys.readouterr().out.splitlines()
    assert srt.read_text() == before  # nothing half-done


def test_nothing_to_render_and_a_lost_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = setup(tmp_path, words=True)
    assert render.run(load_config(config), ["other"]) == 1
    assert "no done file matches: other" in capsys.readouterr().out
    (tmp_path / "outbox" / "talks" / "jfk.json").unlink()
    assert render.run(load_config(config), None) == 1
    assert "the JSON output is gone" in capsys.readouterr().out
