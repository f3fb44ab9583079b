"""The faster-whisper engine on the real models and speech clips, beside openai-whisper."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest
import srt

from daemon import engines, models
from daemon.config import VAD_KEYS, JobSettings, name_matcher
from daemon.errors import EmptyMediaError, ModelError
from daemon.jobs import pipeline
from daemon.media import Audio, decode
from daemon.transcript import Transcript
from tests.speech import Clip, clips, wer

ROOT = Path(__file__).resolve().parents[2]
FORMATS = ("txt", "srt", "vtt", "tsv", "json")
OFFLINE = {"https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
is_media = name_matcher(["*.wav", "*.flac", "*.ogg", "*.mp3"])


@pytest.fixture(scope="module")
def cache(model_dir: Path) -> models.ModelCache:
    return models.ModelCache(model_dir, capacity=4)


def run_all(
    name: str, cache: models.ModelCache, batch: list[Clip], settings: JobSettings, out: Path
) -> tuple[list[Transcript], float]:
    """Every clip through the real pipeline with engine ``name``; transcripts, engine seconds."""
    eng = engines.create(name, cache)
    audios = [decode(c.path) for c in batch]
    eng.transcribe(audios[0], settings)  # load the model outside the timing
    started = time.monotonic()
    results = [
        pipeline.run(c.path, source_label=c.path.name, settings=settings, out_dir=out,
                     engine=eng, is_media=is_media, audio=a)
        for c, a in zip(batch, audios, strict=True)
    ]  # fmt: skip
    return [r.transcript for r in results], time.monotonic() - started


def whisperd(*args: str, env: dict | None = None, prelude: str = "") -> subprocess.CompletedProcess:
    """The CLI in a subprocess; ``prelude`` runs first (e.g. to hide a package)."""
    code = f"{prelude}\nimport sys\nfrom daemon.cli import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


PLAIN = {"vad": {"enabled": False}, "subtitles": {"style": "whisper"}}


def test_vad_keys_are_faster_whispers():
    from faster_whisper.vad import VadOptions

    assert tuple(f.name for f in dataclasses.fields(VadOptions)) == VAD_KEYS


@pytest.mark.real_model
def test_english_tiny_en_all_formats_and_wer_beside_openai(cache, raw_openai, tmp_path: Path):
    batch = clips("en")
    # the plain path (Whisper's segments as cues), one cue per segment, against openai-whisper
    # itself (whisperd's openai engine gives its very texts: tests/e2e/test_transcribe.py)
    settings = JobSettings(model="tiny.en", device="cpu", beam_size=5, **PLAIN)
    ours, fast_s = run_all("faster-whisper", cache, batch, settings, tmp_path / "fw")
    theirs, slow_s = raw_openai("tiny.en", batch)
    for clip, transcript in zip(batch, ours, strict=True):
        stem = clip.path.stem
        assert sorted(p.name for p in (tmp_path / "fw").glob(f"{stem}.*")) == sorted(
            f"{stem}.{f}" for f in FORMATS
        )
        data = json.loads((tmp_path / "fw" / f"{stem}.json").read_text(encoding="utf-8"))
        assert data["engine"] == "faster-whisper" and data["language"] == "en"
        assert data["language_probability"] is None  # English-only model: nothing detected
        assert data["settings"]["compute_type"] == "auto"
        cues = list(srt.parse((tmp_path / "fw" / f"{stem}.srt").read_text(encoding="utf-8")))
        assert len(cues) == len(data["segments"]) == len(transcript.segments) > 0
        assert all(0 <= c.start.total_seconds() <= c.end.total_seconds() for c in cues)
        assert cues[-1].end.total_seconds() <= clip.duration + 0.5
        seg = transcript.segments[0]
        assert seg.id == 0 and seg.temperature == 0.0 and seg.avg_logprob < 0
        assert 0 <= seg.no_speech_prob <= 1 and seg.compression_ratio > 0
        assert transcript.extra["compute_type"] == "int8"
    refs = [c.reference for c in batch]
    fast = wer(refs, [t.text for t in ours], "en")
    slow = wer(refs, theirs, "en")
    print(f"English WER tiny.en beam 5: faster-whisper int8 {fast:.2f}% ({fast_s:.1f} s), "
          f"openai-whisper {slow:.2f}% ({slow_s:.1f} s)")  # fmt: skip
    assert abs(fast - slow) <= 0.5


@pytest.mark.real_model
def test_spanish_base_detects_language_wer_and_speed(cache, raw_openai, tmp_path: Path):
    batch = clips("es")
    refs = [c.reference for c in batch]
    settings = JobSettings(model="base", device="cpu", beam_size=5, **PLAIN)
    int8, fast_s = run_all("faster-whisper", cache, batch, settings, tmp_path / "fw")
    f32, f32_s = run_all(
        "faster-whisper", cache, batch, settings.model_copy(update={"compute_type": "float32"}),
        tmp_path / "f32",
    )  # fmt: skip
    theirs, slow_s = raw_openai("base", batch)  # openai-whisper itself, as above
    for transcript in int8:
        assert transcript.language == "es"
        assert 0.5 < transcript.language_probability <= 1.0
    data = json.loads((tmp_path / "fw" / f"{batch[0].path.stem}.json").read_text("utf-8"))
    assert data["language"] == "es" and data["language_probability"] > 0.5
    fast, exact = (wer(refs, [t.text for t in ts], "es") for ts in (int8, f32))
    slow = wer(refs, theirs, "es")
    audio = sum(c.duration for c in batch)
    print(f"Spanish WER base beam 5 on {audio:.1f} s: faster-whisper int8 {fast:.2f}% "
          f"({fast_s:.1f} s), float32 {exact:.2f}% ({f32_s:.1f} s), openai-whisper "
          f"{slow:.2f}% ({slow_s:.1f} s); speed-up int8 {slow_s / fast_s:.1f}x")  # fmt: skip
    # float32 is the same arithmetic as openai-whisper: every option must be mapped alike.
    assert abs(exact - slow) <= 0.5
    # int8 quantisation changes a few words; it must not make the transcript worse.
    assert fast <= slow + 0.5


@pytest.mark.real_model
def test_word_timestamps_and_wrapped_subtitles(model_dir: Path, cache, tmp_path: Path):
    clip = clips("en")[0]  # jfk.flac, 11 s
    settings = JobSettings(
        engine="faster-whisper", model=str(model_dir / "tiny.en.ct2"), device="cpu",
        subtitles={"max_line_width": 20, "max_line_count": 2},
    )  # fmt: skip
    result = pipeline.run(clip.path, source_label="jfk.flac", settings=settings,
                          out_dir=tmp_path, engine=engines.create("faster-whisper", cache),
                          is_media=is_media)  # fmt: skip
    data = json.loads((tmp_path / "jfk.json").read_text(encoding="utf-8"))
    words = [w for seg in data["segments"] for w in seg["words"]]
    assert [w["word"].strip(" ,.") for w in words[:4]] == ["And", "so", "my", "fellow"]
    assert all(w["start"] <= w["end"] for w in words)
    starts = [w["start"] for w in words]
    assert starts == sorted(starts) and starts[-1] > 5
    cues = list(srt.parse((tmp_path / "jfk.srt").read_text(encoding="utf-8")))
    assert len(cues) > len(data["segments"])  # cut by the line options, not per segment
    for cue in cues:
        lines = cue.content.splitlines()
        assert 1 <= len(lines) <= 2 and all(len(line) <= 20 for line in lines), cue.content
    assert result.transcript.model.endswith("tiny.en.ct2")


@pytest.mark.real_model
def test_batched_decoding_on_a_long_clip(cache):
    clip = next(c for c in clips("en") if c.duration > 30)  # 35.5 s: two windows
    settings = JobSettings(engine="faster-whisper", model="tiny.en", device="cpu", batch_size=2)
    transcript = engines.create("faster-whisper", cache).transcribe(decode(clip.path), settings)
    assert transcript.extra["batch_size"] == 2
    assert len(transcript.segments) >= 2
    assert transcript.segments[-1].end > 25
    assert wer([clip.reference], [transcript.text], "en") < 25


def silence(seconds: float) -> Audio:
    samples = np.zeros(int(seconds * 16000), dtype=np.float32)
    return Audio(samples, seconds, "pcm_f32le", 16000, 1, 0)


def write_wav(path: Path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as fh:
        fh.setnchannels(1)
        fh.setsampwidth(2)
        fh.setframerate(16000)
        fh.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())


@pytest.mark.real_model
def test_vad_filter_offline_keeps_the_original_timeline(tmp_path: Path):
    """Eight seconds of silence before speech: skipped by the VAD, timestamps still true."""
    jfk = clips("en")[0]
    source = tmp_path / "inbox" / "late start.wav"
    source.parent.mkdir()
    write_wav(source, np.concatenate([silence(8.0).samples, decode(jfk.path).samples]))
    cfg = tmp_path / "whisperd.yaml"
    cfg.write_text(
        f"model_dir: {ROOT / 'models'}\ninbox: inbox\noutbox: outbox\n"
        "defaults: {engine: faster-whisper, model: tiny.en, device: cpu, formats: [json],\n"
        "           vad_filter: true, vad_parameters: {min_silence_duration_ms: 500}}\n"
    )  # the old faster-whisper-only keys: read into vad, with a warning
    result = whisperd("transcribe", "-c", str(cfg), "-o", str(tmp_path / "out"), str(source),
                      env={**OFFLINE, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "out" / "late start.json").read_text(encoding="utf-8"))
    assert data["engine"] == "faster-whisper" and data["settings"]["vad"]["enabled"] is True
    assert data["settings"]["vad"]["min_silence_ms"] == 500
    assert "vad_filter" in result.stderr  # named in the deprecation warning
    assert 7.5 < data["segments"][0]["start"] < 9.0  # in the file's time, after the silence
    assert wer([jfk.reference], [data["text"]], "en") < 10


@pytest.mark.real_model
def test_cancel_between_segments(cache):
    clip = next(c for c in clips("en") if c.duration > 30)
    settings = JobSettings(model="tiny.en", device="cpu")
    cancel = threading.Event()
    seen: list[float] = []

    def progress(fraction: float) -> None:
        seen.append(fraction)
        cancel.set()

    with pytest.raises(engines.Cancelled):
        engines.create("faster-whisper", cache).transcribe(
            decode(clip.path), settings, progress=progress, cancel=cancel
        )
    assert len(seen) == 1 and 0 < seen[0] < 1


def test_bad_media_gives_the_same_typed_error(cache, tmp_path: Path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    for name in ("faster-whisper", "openai-whisper"):
        with pytest.raises(EmptyMediaError):
            pipeline.run(empty, source_label="empty.wav", settings=JobSettings(model="tiny.en"),
                         out_dir=tmp_path, engine=engines.create(name, cache),
                         is_media=is_media)  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.wav"]


def test_missing_package_is_a_clear_error(tmp_path: Path):
    source = tmp_path / "a.wav"
    source.write_bytes(b"")
    cfg = tmp_path / "whisperd.yaml"
    cfg.write_text(f"model_dir: {ROOT / 'models'}\ndefaults: {{engine: faster-whisper}}\n")
    hide = "import sys; sys.modules['faster_whisper'] = None"
    result = whisperd("transcribe", "-c", str(cfg), "--model", "tiny.en", str(source),
                      prelude=hide)  # fmt: skip
    assert result.returncode == 1
    assert (
        f"FAILED {source}: engine faster-whisper needs the faster-whisper package: "
        "pip install 'whisperd[faster]'"
    ) in result.stderr
    assert "Traceback" not in result.stderr
    check = whisperd("check-config", "-c", str(cfg), prelude=hide)  # validation stays light
    assert check.returncode == 0, check.stderr


def test_official_model_offline_says_how_to_import(tmp_path: Path):
    source = tmp_path / "a.wav"
    write_wav(source, decode(clips("en")[0].path).samples)  # speech: the engine must run
    cfg = tmp_path / "whisperd.yaml"
    cfg.write_text(f"model_dir: {tmp_path / 'models'}\ndefaults: {{engine: faster-whisper}}\n")
    started = time.monotonic()
    result = whisperd("transcribe", "-c", str(cfg), "--model", "small", str(source), env=OFFLINE)
    assert time.monotonic() - started < 60  # a refused connection, not a hang
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"FAILED {source}: model 'small' is not in {tmp_path / 'models'} as a " in result.stderr
    assert "downloading it from the Hugging Face hub failed" in result.stderr
    assert "whisperd models import DIR... --name small" in result.stderr


def test_pt_only_model_is_refused(model_dir: Path, tmp_path: Path):
    (tmp_path / "mine.pt").symlink_to(model_dir / "tiny.en.pt")
    cache = models.ModelCache(tmp_path)
    eng = engines.create("faster-whisper", cache)
    audio = silence(1.0)
    with pytest.raises(ModelError, match="faster-whisper cannot read"):
        eng.transcribe(audio, JobSettings(model="mine", device="cpu"))
    listed = {e.name: e.engines for e in models.list_models(tmp_path)}
    assert listed == {"mine": ("openai-whisper",)}
    both = {e.name: e.engines for e in models.list_models(model_dir)}
    assert both["tiny.en"] == both["base"] == ("openai-whisper", "faster-whisper")


def test_cache_keeps_engines_and_compute_types_apart(model_dir: Path):
    cache = models.ModelCache(model_dir, capacity=2)
    openai_model = cache.get("tiny.en", "cpu")
    key = models.CacheKey("faster-whisper", "tiny.en", "cpu", "int8", 0)
    eng = engines.create("faster-whisper", cache)
    audio = silence(1.0)
    eng.transcribe(audio, JobSettings(model="tiny.en", device="cpu"))
    assert cache.loaded("faster-whisper") == cache.loaded("openai-whisper") == {"tiny.en"}
    loaded = cache.get_for(key, lambda: pytest.fail("loaded twice"))
    assert type(loaded).__name__ == "WhisperModel"
    eng.transcribe(audio, JobSettings(model="tiny.en", device="cpu", compute_type="float32"))
    assert cache.loaded("openai-whisper") == set()  # least recently used: evicted
    assert cache.get("tiny.en", "cpu") is not openai_model
    assert eng.loaded_models() == {"tiny.en"} and cache.loaded() == {"tiny.en"}
