"""`whisperd transcribe` as a subprocess on the real models and the shared speech clips."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import srt
import webvtt

from tests.speech import clips, wer
from tests.synth import make_audio

ROOT = Path(__file__).resolve().parents[2]
FORMATS = ("txt", "srt", "vtt", "tsv", "json")


def whisperd(*args: str, env: dict | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "daemon", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=900,
    )


def check_outputs(out: Path, stem: str, duration: float) -> str:
    """Every format exists, parses with a real parser, and has sane timestamps; returns text."""
    for fmt in FORMATS:
        assert (out / f"{stem}.{fmt}").is_file(), f"{stem}.{fmt} missing"
    data = json.loads((out / f"{stem}.json").read_text(encoding="utf-8"))
    cues = list(srt.parse((out / f"{stem}.srt").read_text(encoding="utf-8")))
    vtt = webvtt.from_string((out / f"{stem}.vtt").read_text(encoding="utf-8"))
    rows = list(csv.reader(io.StringIO((out / f"{stem}.tsv").read_text()), delimiter="\t"))
    assert rows[0] == ["start", "end", "text"]
    assert len(cues) == len(vtt.captions) == len(rows) - 1 == len(data["segments"])
    starts = [c.start.total_seconds() for c in cues]
    assert starts == sorted(starts)
    for cue in cues:
        assert 0 <= cue.start.total_seconds() <= cue.end.total_seconds() <= duration + 0.5
    for caption in vtt.captions:
        assert caption.start_in_seconds <= caption.end_in_seconds <= duration + 0.5
    for start, end, _ in rows[1:]:
        assert 0 <= int(start) <= int(end) <= (duration + 0.5) * 1000
    assert abs(data["audio_duration"] - duration) < 0.1
    assert data["engine"] == "openai-whisper" and data["settings"]["beam_size"] == 5
    txt = (out / f"{stem}.txt").read_text(encoding="utf-8")
    assert " ".join(txt.split()) == " ".join(data["text"].split())
    return data["text"]


def plain_config(folder: Path) -> Path:
    """Whisper's own path (no speech detection, its segments as cues): the one that must
    equal raw openai-whisper word for word. The default path is in test_subtitles.py."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "plain.yaml"
    config.write_text(
        f"model_dir: {ROOT / 'models'}\n"
        "defaults: {vad: {enabled: false}, subtitles: {style: whisper}}\n"
    )
    return config


@pytest.mark.real_model
def test_english_tiny_en_all_formats_and_wer(raw_openai, tmp_path: Path):
    batch = clips("en")
    result = whisperd("transcribe", "-c", str(plain_config(tmp_path / "cfg")), "--model",
                      "tiny.en", "-o", str(tmp_path), *[str(c.path) for c in batch])  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"{len(batch)} files: {len(batch)} transcribed, 0 failed" in result.stdout
    texts = [check_outputs(tmp_path, c.path.stem, c.duration) for c in batch]
    ours = wer([c.reference for c in batch], texts, "en")
    raw = wer([c.reference for c in batch], raw_openai("tiny.en", batch)[0], "en")
    print(f"English WER tiny.en: whisperd {ours:.2f}%, raw openai-whisper {raw:.2f}%")
    assert ours <= 5.5
    assert ours == pytest.approx(raw, abs=1e-9)


@pytest.mark.real_model
def test_spanish_base_detects_language_and_wer(raw_openai, tmp_path: Path):
    batch = clips("es")
    result = whisperd("transcribe", "-c", str(plain_config(tmp_path / "cfg")), "--model",
                      "base", "-o", str(tmp_path), *[str(c.path) for c in batch])  # fmt: skip
    assert result.returncode == 0, result.stderr
    texts = []
    for clip in batch:
        texts.append(check_outputs(tmp_path, clip.path.stem, clip.duration))
        data = json.loads((tmp_path / f"{clip.path.stem}.json").read_text(encoding="utf-8"))
        assert data["language"] == "es"  # detected: no language was configured
        assert 0.5 < data["language_probability"] <= 1.0
    ours = wer([c.reference for c in batch], texts, "es")
    raw = wer([c.reference for c in batch], raw_openai("base", batch)[0], "es")
    print(f"Spanish WER base: whisperd {ours:.2f}%, raw openai-whisper {raw:.2f}%")
    assert ours <= 12.0
    assert ours == pytest.approx(raw, abs=1e-9)


@pytest.mark.real_model
def test_corrupt_file_fails_alone(model_dir: Path, tmp_path: Path):
    good = clips("en")[0].path
    corrupt = tmp_path / "broken.mp3"
    make_audio(tmp_path / "whole.mp3", seconds=3.0)
    corrupt.write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00" + os.urandom(4000))
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    out = tmp_path / "out"
    result = whisperd("transcribe", "--model", "tiny.en", "-o", str(out),
                      str(corrupt), str(good), str(empty))  # fmt: skip
    assert result.returncode == 1
    failed = [line for line in result.stderr.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 2, result.stderr
    assert failed[0].startswith(f"FAILED {corrupt}: looks like MP3 but cannot be opened: ")
    assert failed[0].endswith("(the file is damaged or truncated; re-export or re-copy it)")
    assert failed[1] == (
        f"FAILED {empty}: the file is empty (0 bytes) "
        "(if it is still being copied, wait until the copy has finished)"
    )
    assert "Traceback" not in result.stderr
    assert "3 files: 1 transcribed, 2 failed" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{good.stem}.{f}" for f in FORMATS)


def test_outputs_next_to_the_file_with_chosen_formats(model_dir: Path, tmp_path: Path):
    source = tmp_path / "talk one.wav"
    shutil.copy(clips("en")[3].path, source)  # a 2 s LibriSpeech clip
    result = whisperd("transcribe", "--model", "tiny.en", "--formats", "srt,json", str(source))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["talk one.json", "talk one.srt",
                                                          "talk one.wav"]  # fmt: skip


def test_bad_flags_are_config_errors(tmp_path: Path):
    source = tmp_path / "a.wav"
    make_audio(source, seconds=0.5)
    result = whisperd("transcribe", "--model", "tiny.en", "--language", "es", str(source))
    assert result.returncode == 3
    assert "English-only" in result.stderr and "Traceback" not in result.stderr
    result = whisperd("transcribe", "--formats", "srt,docx", str(source))
    assert result.returncode == 3
    assert "'docx' is not a format" in result.stderr


def test_missing_model_offline_says_how_to_import(tmp_path: Path):
    # real speech: a file without speech is finished without loading any model
    source = min(clips("en"), key=lambda c: c.duration).path
    cfg = tmp_path / "whisperd.yaml"
    cfg.write_text(f"model_dir: {tmp_path / 'models'}\n")
    # A proxy on a closed port makes the download fail fast even on a machine with a network.
    offline = {"https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
    result = whisperd("transcribe", "-c", str(cfg), "--model", "small", str(source), env=offline)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "model 'small' is not in" in result.stderr
    assert "whisperd models import" in result.stderr


def test_check_config_and_explain(tmp_path: Path):
    result = whisperd("check-config", "-c", str(ROOT / "config" / "whisperd.yaml"))
    assert result.returncode == 0 and result.stdout.strip().endswith(": OK")
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "defaults:\n  language: xx\n  formats: [srt, docx]\nfolders:\n  es: {beam_size: 0}\n"
    )
    result = whisperd("check-config", "-c", str(bad))
    assert result.returncode == 3
    assert "3 configuration errors" in result.stderr
    assert "defaults.language: 'xx' is not a Whisper language" in result.stderr
    assert "defaults.formats[1]: 'docx' is not a format" in result.stderr
    assert "folders.es.beam_size:" in result.stderr
    assert "Traceback" not in result.stderr

    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "inbox: in\noutbox: out\nmodel_dir: " + str(ROOT / "models") + "\n"
        "defaults: {output_name: '{stem}.{language}'}\n"
        "folders:\n  es: {language: es}\n  '*/subtitles': {formats: [srt, vtt], "
        "subtitles: {max_line_width: 42, max_line_count: 2}}\n"
    )
    result = whisperd("explain", "-c", str(cfg), "es/subtitles/película.mp4")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "rules:    defaults < 'es' < '*/subtitles'" in out
    assert '  language: "es"   [es]' in out
    assert f"  {tmp_path / 'out' / 'es' / 'subtitles' / 'película.es.srt'}" in out
    assert f"  {tmp_path / 'out' / 'es' / 'subtitles' / 'película.es.vtt'}" in out
    assert ".txt" not in out
    assert "word timestamps are computed anyway" in out


def test_models_import_and_list_cli(tmp_path: Path):
    from scripts.install_models import source_dirs

    dirs = [str(d) for d in source_dirs("base")]
    result = whisperd("models", "import", *dirs, "--name", "mybase", "--model-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "imported 'mybase' (multilingual" in result.stdout
    listed = whisperd("models", "list", "--model-dir", str(tmp_path))
    assert listed.returncode == 0
    assert "mybase" in listed.stdout and "imported" in listed.stdout
    again = whisperd("models", "import", *dirs, "--name", "mybase", "--model-dir", str(tmp_path))
    assert again.returncode == 1 and "already exists" in again.stderr
    partial = whisperd("models", "import", dirs[0], "--name", "x", "--model-dir", str(tmp_path))
    assert partial.returncode == 1 and "config.json" in partial.stderr
