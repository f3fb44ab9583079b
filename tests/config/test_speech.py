"""The vad, guard and subtitles sections; the old faster-whisper VAD keys read into them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from daemon.config import GuardSettings, Resolver, SubtitleSettings, VadSettings, with_overrides
from tests.config.support import load, write

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_the_subtitle_path() -> None:
    vad, guard, sub = VadSettings(), GuardSettings(), SubtitleSettings()
    assert vad.enabled and (vad.threshold, vad.min_silence_ms, vad.speech_pad_ms) == (0.5, 300, 200)
    assert guard.enabled and (guard.no_speech_prob, guard.avg_logprob) == (0.6, -1.0)
    assert (guard.repeat_limit, guard.hallucination_silence_threshold) == (3, None)
    assert sub.style == "readable" and sub.max_line_width is None  # null: the language's width
    assert (sub.max_duration, sub.min_gap, sub.max_pause) == (7.0, 0.083, 1.5)


def test_sections_merge_key_by_key_in_folder_rules(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
        defaults: {vad: {threshold: 0.6, speech_pad_ms: 300}, guard: {repeat_limit: 4}}
        folders:
          music: {vad: {threshold: 0.8}, guard: {stock_phrases: false}}
          music/raw: {subtitles: {style: whisper}, vad: {enabled: false}}
        """,
    )
    music = Resolver(config).resolve("music").settings
    assert (music.vad.threshold, music.vad.speech_pad_ms) == (0.8, 300)
    assert (music.guard.repeat_limit, music.guard.stock_phrases) == (4, False)
    raw = Resolver(config).resolve("music/raw").settings
    assert raw.subtitles.style == "whisper" and not raw.vad.enabled
    assert raw.vad.threshold == 0.8
    assert config.folders["music"] == {"vad": {"threshold": 0.8}, "guard": {"stock_phrases": False}}


def test_old_vad_keys_are_read_into_the_vad_section_with_a_notice(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
        defaults:
          vad_filter: false
          vad_parameters: {min_silence_duration_ms: 500, threshold: 0.4}
        folders:
          a: {vad_filter: true, vad_parameters: {speech_pad_ms: 100}, vad: {speech_pad_ms: 50}}
        """,
    )
    # vad_filter: false was the old default (faster-whisper's own filter off): ignored.
    assert config.defaults.vad.enabled
    assert (config.defaults.vad.min_silence_ms, config.defaults.vad.threshold) == (500, 0.4)
    a = Resolver(config).resolve("a").settings
    assert a.vad.enabled and a.vad.speech_pad_ms == 50  # the new key wins
    assert config.notices == (
        "defaults.vad_filter is deprecated and ignored: speech detection is now vad.enabled "
        "(default true, both engines)",
        "defaults.vad_parameters is deprecated: read as the vad section",
        "folders.a.vad_filter is deprecated: read as vad.enabled: true",
        "folders.a.vad_parameters is deprecated: read as the vad section",
    )
    # CLI overrides rebuild the configuration: the notices stay, once each.
    assert with_overrides(config, model="tiny").notices == config.notices


def test_check_config_shows_the_notices_and_passes(tmp_path: Path) -> None:
    cfg = write(tmp_path, "defaults: {vad_filter: true}\n")
    result = subprocess.run(
        [sys.executable, "-m", "daemon", "check-config", "-c", str(cfg)],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"{cfg}: warning: defaults.vad_filter is deprecated: read as vad.enabled: true",
        f"{cfg}: OK",
    ]


def test_notices_cannot_be_written_in_the_file(tmp_path: Path) -> None:
    from tests.config.support import errors_of

    assert errors_of(tmp_path, "notices: [hello]\n") == ["notices: unknown key"]
