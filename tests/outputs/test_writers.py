"""Every output format rendered and parsed back; subtitle wrapping options."""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import json
import os
from pathlib import Path

import pytest
import srt
import webvtt

from daemon.config import FORMATS, SubtitleSettings
from daemon.outputs import (
    output_paths,
    render,
    write_outputs,
)
from daemon.transcript import Segment, Transcript
from tests.outputs.support import (
    META,
    PLAIN,
    SEGMENT_TEXTS,
    expected_texts,
    make_transcript,
    vtt_seconds,
)

# --- every format, parsed back -----------------------------------------------------------


@pytest.mark.parametrize("with_words", [True, False])
def test_all_formats_written_and_parse_back(tmp_path: Path, with_words: bool) -> None:
    transcript = make_transcript(with_words)
    targets = output_paths(tmp_path / "out", "meeting 1", FORMATS)
    written = write_outputs(transcript, targets, subtitles=PLAIN, meta=META)

    assert written == [tmp_path / "out" / f"meeting 1.{f}" for f in FORMATS]
    assert sorted(os.listdir(tmp_path / "out")) == sorted(f"meeting 1.{f}" for f in FORMATS)

    txt = targets["txt"].read_text(encoding="utf-8")
    assert txt.splitlines() == expected_texts()

    subs = list(srt.parse(targets["srt"].read_text(encoding="utf-8")))
    assert [s.content for s in subs] == expected_texts()
    assert subs[0].start.total_seconds() == 0.0
    for prev, cur in itertools.pairwise(subs):
        assert prev.start <= prev.end <= cur.start <= cur.end

    vtt = webvtt.from_string(targets["vtt"].read_text(encoding="utf-8"))
    assert [c.text for c in vtt.captions] == expected_texts()
    starts = [vtt_seconds(c.start) for c in vtt.captions]
    ends = [vtt_seconds(c.end) for c in vtt.captions]
    assert starts[0] == 0.0
    assert all(s <= e for s, e in zip(starts, ends, strict=True))
    assert all(e <= s for e, s in zip(ends, starts[1:], strict=False))

    with open(targets["tsv"], encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert rows[0] == ["start", "end", "text"]
    assert [r[2] for r in rows[1:]] == expected_texts()
    assert [int(r[0]) for r in rows[1:]] == [round(s.start * 1000) for s in transcript.segments]
    assert [int(r[1]) for r in rows[1:]] == [round(s.end * 1000) for s in transcript.segments]

    doc = json.loads(targets["json"].read_text(encoding="utf-8"))
    assert doc["source"] == "team/meeting 1.mp3"
    assert doc["language"] == "en"
    assert doc["language_probability"] == 0.9877
    assert doc["model"] == "tiny.en" and doc["engine"] == "openai-whisper"
    assert doc["settings"] == META["settings"]
    assert doc["audio_duration"] == 12.346
    assert doc["processing_seconds"] == 1.235
    assert doc["whisperd_version"]
    assert dt.datetime.fromisoformat(doc["created_at"]).utcoffset() == dt.timedelta(0)
    assert [s["text"] for s in doc["segments"]] == [t for _, t in SEGMENT_TEXTS]
    seg = doc["segments"][1]
    assert seg["avg_logprob"] == -0.1235 and seg["compression_ratio"] == 1.235
    assert ("words" in seg) is with_words
    if with_words:
        assert seg["words"][0] == {"start": 5.0, "end": 5.36, "word": " Ça", "probability": 0.9}
    # Non-ASCII is written as UTF-8, not as \u escapes.
    assert "日本語" in targets["json"].read_text(encoding="utf-8")


def test_json_created_at_defaults_to_now_utc_and_nan_becomes_null() -> None:
    seg = Segment(id=0, start=0.0, end=1.0, text=" x", avg_logprob=float("nan"))
    t = Transcript("x", "en", None, (seg,), 1.0, "tiny", "openai-whisper")
    doc = json.loads(render(t, "json", subtitles=PLAIN, meta={"source": "x.wav"}))
    assert doc["segments"][0]["avg_logprob"] is None
    age = dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(doc["created_at"])
    assert dt.timedelta(0) <= age < dt.timedelta(minutes=1)


def test_json_source_with_undecodable_bytes_is_valid_utf8() -> None:
    t = make_transcript()
    out = render(t, "json", subtitles=PLAIN, meta={"source": os.fsdecode(b"caf\xe9.mp3")})
    assert json.loads(out.encode("utf-8"))["source"] == "caf\\xe9.mp3"


# --- subtitle options --------------------------------------------------------------------


def test_line_wrapping_applies_when_words_exist() -> None:
    options = SubtitleSettings(style="whisper", max_line_width=20, max_line_count=2)
    text = render(make_transcript(True), "srt", subtitles=options, meta={})
    subs = list(srt.parse(text))
    assert len(subs) > len(SEGMENT_TEXTS)  # the long segments were split
    for sub in subs:
        lines = sub.content.split("\n")
        assert len(lines) <= 2
        assert all(len(line) <= 20 for line in lines), lines
    # No word is lost or reordered by the wrapping.
    assert (
        " ".join(s.content.replace("\n", " ") for s in subs).split()
        == " ".join(expected_texts()).split()
    )

    vtt = webvtt.from_string(render(make_transcript(True), "vtt", subtitles=options, meta={}))
    assert all(len(c.lines) <= 2 and all(len(x) <= 20 for x in c.lines) for c in vtt.captions)


def test_line_options_ignored_without_words() -> None:
    options = SubtitleSettings(style="whisper", max_line_width=20, max_line_count=2)
    subs = list(srt.parse(render(make_transcript(False), "srt", subtitles=options, meta={})))
    assert [s.content for s in subs] == expected_texts()


def test_max_words_per_line() -> None:
    options = SubtitleSettings(style="whisper", max_words_per_line=3)
    subs = list(srt.parse(render(make_transcript(True), "srt", subtitles=options, meta={})))
    assert all(len(sub.content.split()) <= 3 for sub in subs)
    assert len(subs) > len(SEGMENT_TEXTS)


def test_highlight_words_underlines_each_word() -> None:
    plain = render(make_transcript(True), "vtt", subtitles=PLAIN, meta={})
    assert "<u>" not in plain
    options = SubtitleSettings(style="whisper", highlight_words=True)
    vtt = webvtt.from_string(render(make_transcript(True), "vtt", subtitles=options, meta={}))
    underlined = [c.raw_text for c in vtt.captions if "<u>" in c.raw_text]
    assert "<u>Hello</u> world," in underlined[0]
    total_words = sum(len(t.split()) for t in expected_texts())
    assert len(underlined) == total_words
    subs = list(srt.parse(render(make_transcript(True), "srt", subtitles=options, meta={})))
    assert sum("<u>" in s.content for s in subs) == total_words


def test_mixed_words_and_blank_segments_keep_all_text() -> None:
    base = make_transcript(True)
    segs = (
        base.segments[0],
        Segment(id=1, start=4.0, end=4.5, text="  "),  # blank: no empty cue
        Segment(id=2, start=5.0, end=6.0, text=" no words --> here\nsecond line"),
        base.segments[2],
    )
    t = Transcript("x", "en", None, segs, 12.0, "tiny", "openai-whisper")
    options = SubtitleSettings(style="whisper", max_line_width=20, max_line_count=2)
    subs = list(srt.parse(render(t, "srt", subtitles=options, meta={})))
    assert [s.content for s in subs] == [
        expected_texts()[0],
        "no words -> here second line",
        expected_texts()[2],
    ]


def test_negative_time_is_clamped_not_crashing() -> None:
    seg = Segment(id=0, start=-0.02, end=1.0, text=" early")
    t = Transcript("early", "en", None, (seg,), 1.0, "tiny", "openai-whisper")
    subs = list(srt.parse(render(t, "srt", subtitles=PLAIN, meta={})))
    assert subs[0].start.total_seconds() == 0.0 and subs[0].content == "early"
