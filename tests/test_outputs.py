"""Outputs: path mapping, rendering parsed back with real parsers, atomic writes on real disks."""

from __future__ import annotations

import csv
import datetime as dt
import errno
import hashlib
import io
import itertools
import json
import os
from pathlib import Path

import pytest
import srt
import webvtt

from daemon.errors import OutputPathError, OutputWriteError
from daemon.outputs import (
    FORMATS,
    MAX_STEM_BYTES,
    NAME_MAX,
    SubtitleOptions,
    _write_error,
    cleanup_temp_files,
    colliding_stem,
    fit_stem,
    mirror_dir,
    output_paths,
    render,
    source_stem,
    write_atomic,
    write_outputs,
)
from daemon.transcript import Segment, Transcript, Word

PLAIN = SubtitleOptions()
META = {
    "source": "team/meeting 1.mp3",
    "settings": {"model": "tiny.en", "task": "transcribe", "language": None},
    "processing_seconds": 1.23456,
    "created_at": "2024-05-01T12:00:00+00:00",
}


def _words(start: float, text: str, step: float = 0.4) -> tuple[Word, ...]:
    out = []
    for i, token in enumerate(text.split()):
        s = round(start + i * step, 3)
        out.append(Word(start=s, end=round(s + step * 0.9, 3), word=" " + token, probability=0.9))
    return tuple(out)


SEGMENT_TEXTS = [
    (0.0, " Hello world, this is the first sentence of a rather long test."),
    (5.0, " Ça marche très bien, déjà vu — naïve façade."),
    (9.0, " 日本語 も 大丈夫 です"),
]


def make_transcript(with_words: bool = True) -> Transcript:
    segments = []
    for i, (start, text) in enumerate(SEGMENT_TEXTS):
        words = _words(start, text) if with_words else None
        end = words[-1].end if words else start + 3.5
        segments.append(
            Segment(
                id=i,
                start=start,
                end=end,
                text=text,
                words=words,
                avg_logprob=-0.123456,
                no_speech_prob=0.0123456,
                compression_ratio=1.23456,
                temperature=0.0,
            )
        )
    return Transcript(
        text="".join(t for _, t in SEGMENT_TEXTS),
        language="en",
        language_probability=0.987654,
        segments=tuple(segments),
        duration=12.3456,
        model="tiny.en",
        engine="openai-whisper",
    )


def vtt_seconds(stamp: str) -> float:
    h, m, s = stamp.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def expected_texts() -> list[str]:
    return [t.strip() for _, t in SEGMENT_TEXTS]


def temp_files(folder: Path) -> list[str]:
    return [n for n in os.listdir(folder) if n.endswith(".whisperd-tmp")]


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
    options = SubtitleOptions(max_line_width=20, max_line_count=2)
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
    options = SubtitleOptions(max_line_width=20, max_line_count=2)
    subs = list(srt.parse(render(make_transcript(False), "srt", subtitles=options, meta={})))
    assert [s.content for s in subs] == expected_texts()


def test_max_words_per_line() -> None:
    options = SubtitleOptions(max_words_per_line=3)
    subs = list(srt.parse(render(make_transcript(True), "srt", subtitles=options, meta={})))
    assert all(len(sub.content.split()) <= 3 for sub in subs)
    assert len(subs) > len(SEGMENT_TEXTS)


def test_highlight_words_underlines_each_word() -> None:
    plain = render(make_transcript(True), "vtt", subtitles=PLAIN, meta={})
    assert "<u>" not in plain
    options = SubtitleOptions(highlight_words=True)
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
    options = SubtitleOptions(max_line_width=20, max_line_count=2)
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


# --- path mapping ------------------------------------------------------------------------


@pytest.mark.parametrize("stem", ["", ".", "..", "../x", "a/b", "a\\b", "/abs", "nul\x00"])
def test_output_name_escapes_rejected(tmp_path: Path, stem: str) -> None:
    with pytest.raises(OutputPathError):
        output_paths(tmp_path, stem, ["srt"])


def test_output_paths_maps_each_format(tmp_path: Path) -> None:
    assert output_paths(tmp_path, "talk.v2.final", ["srt", "json"]) == {
        "srt": tmp_path / "talk.v2.final.srt",
        "json": tmp_path / "talk.v2.final.json",
    }
    with pytest.raises(ValueError):
        output_paths(tmp_path, "a", ["docx"])


def test_mirror_dir_maps_subfolders(tmp_path: Path) -> None:
    inbox, outbox = tmp_path / "in", tmp_path / "out"
    assert mirror_dir(inbox, outbox, inbox / "a.mp3") == outbox
    assert mirror_dir(inbox, outbox, inbox / "x" / "y z" / "a.mp3") == outbox / "x" / "y z"


@pytest.mark.parametrize(
    "source", ["elsewhere/a.mp3", "in/../elsewhere/a.mp3", "inbox2/a.mp3", "in"]
)
def test_mirror_dir_refuses_sources_outside_inbox(tmp_path: Path, source: str) -> None:
    with pytest.raises(OutputPathError):
        mirror_dir(tmp_path / "in", tmp_path / "out", tmp_path / source)


def test_mirror_dir_refuses_symlink_escaping_outbox(tmp_path: Path) -> None:
    inbox, outbox, secret = tmp_path / "in", tmp_path / "out", tmp_path / "secret"
    outbox.mkdir()
    secret.mkdir()
    (outbox / "team").symlink_to(secret)
    with pytest.raises(OutputPathError):
        mirror_dir(inbox, outbox, inbox / "team" / "a.mp3")
    with pytest.raises(OutputPathError):
        mirror_dir(inbox, outbox, inbox / "team" / "deeper" / "a.mp3")
    # A symlink that stays inside the outbox is fine.
    (outbox / "real").mkdir()
    (outbox / "alias").symlink_to(outbox / "real")
    assert mirror_dir(inbox, outbox, inbox / "alias" / "a.mp3") == outbox / "alias"


def test_mirror_dir_refuses_symlinked_outbox_escape_via_parent(tmp_path: Path) -> None:
    inbox, outbox = tmp_path / "in", tmp_path / "out"
    outbox.mkdir()
    (outbox / "up").symlink_to("..")
    with pytest.raises(OutputPathError):
        mirror_dir(inbox, outbox, inbox / "up" / "a.mp3")


def _is_media(name: str) -> bool:
    return name.lower().endswith((".mp3", ".wav", ".m4a"))


def _stems(names: list[str]) -> dict[str, str]:
    return {n: source_stem(Path(n), colliding_stem(Path(n), names, _is_media)) for n in names}


def test_collision_rule() -> None:
    stems = _stems(["a.mp3", "a.wav", "b.mp3", "b.txt", "talk.v2.final.mp3"])
    assert stems["a.mp3"] == "a.mp3" and stems["a.wav"] == "a.wav"
    assert stems["b.mp3"] == "b"  # b.txt is not media
    assert stems["talk.v2.final.mp3"] == "talk.v2.final"


@pytest.mark.parametrize(
    "names",
    [
        ["a.mp3", "a.wav", "a.mp3.wav"],
        ["a.mp3", "a.mp3.wav"],
        ["A.mp3", "a.wav"],
        ["cafe\u0301.mp3", "café.wav"],
        ["x.mp3", "x.wav", "x.m4a", "x.mp3.m4a", "x.wav.mp3"],
    ],
)
def test_collision_rule_never_shares_a_stem(names: list[str]) -> None:
    stems = _stems(names)
    keys = [s.casefold() for s in stems.values()]
    assert len(set(keys)) == len(names), stems


def test_source_itself_is_not_a_collision() -> None:
    assert not colliding_stem(Path("/in/a.mp3"), ["a.mp3", "b.wav"], _is_media)


# --- odd names ---------------------------------------------------------------------------

ODD_STEMS = [
    "meeting notes",
    "-rf",
    "cafe\u0301",  # NFD
    os.fsdecode(b"caf\xe9"),  # not UTF-8
    "talk.v2.final",
]


@pytest.mark.parametrize("stem", ODD_STEMS)
def test_odd_names_written_and_found_on_disk(tmp_path: Path, stem: str) -> None:
    targets = output_paths(tmp_path, stem, FORMATS)
    write_outputs(make_transcript(), targets, subtitles=PLAIN, meta=META)
    on_disk = set(os.listdir(os.fsencode(tmp_path)))
    assert on_disk == {os.fsencode(stem) + f".{f}".encode() for f in FORMATS}


def test_long_name_is_shortened_deterministically(tmp_path: Path) -> None:
    stem = "x" * 250
    targets = output_paths(tmp_path, stem, FORMATS)
    write_outputs(make_transcript(), targets, subtitles=PLAIN, meta=META)
    short = fit_stem(stem)
    assert short == "x" * (MAX_STEM_BYTES - 9) + "~" + hashlib.sha1(stem.encode()).hexdigest()[:8]
    assert set(os.listdir(tmp_path)) == {f"{short}.{f}" for f in FORMATS}
    assert output_paths(tmp_path, stem, FORMATS) == targets
    assert fit_stem("x" * 249) != short  # a different long name gets a different hash


def test_long_multibyte_name_cut_on_character_boundary(tmp_path: Path) -> None:
    stem = "e\u0301" * 100 + "end"  # NFD: 300 bytes
    short = fit_stem(stem)
    raw = short.encode("utf-8")
    assert len(raw) <= MAX_STEM_BYTES
    assert short.split("~")[0].endswith("e\u0301")  # accent not cut from its letter
    write_atomic(tmp_path / f"{short}.json", "{}")
    assert os.listdir(tmp_path) == [f"{short}.json"]
    assert len(f"{short}.json".encode()) <= NAME_MAX


def test_short_names_are_kept() -> None:
    stem = "y" * MAX_STEM_BYTES
    assert fit_stem(stem) == stem


# --- atomic writes -----------------------------------------------------------------------


def test_write_atomic_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    write_atomic(target, "old")
    write_atomic(target, "nouveau ✓")
    assert target.read_text(encoding="utf-8") == "nouveau ✓"
    write_atomic(target, b"\x00\xff")
    assert target.read_bytes() == b"\x00\xff"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_write_atomic_parent_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputWriteError, match="cannot write"):
        write_atomic(tmp_path / "file" / "a.srt", "data")
    assert os.listdir(tmp_path) == ["file"]


def test_write_atomic_removes_temp_when_rename_fails(tmp_path: Path) -> None:
    # The temp file is created and written, then os.replace fails (target is a folder): the
    # temp file must be gone and the folder untouched. This fails for root too.
    (tmp_path / "a.srt").mkdir()
    with pytest.raises(OutputWriteError) as info:
        write_atomic(tmp_path / "a.srt", "data")
    assert info.value.transient
    assert os.listdir(tmp_path) == ["a.srt"]
    assert os.listdir(tmp_path / "a.srt") == []


def test_write_atomic_name_too_long(tmp_path: Path) -> None:
    with pytest.raises(OutputWriteError):
        write_atomic(tmp_path / ("z" * 300), "data")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("code", "words"),
    [(errno.ENOSPC, "disk full"), (errno.EACCES, "permission"), (errno.EROFS, "read-only")],
)
def test_write_error_messages(code: int, words: str) -> None:
    err = _write_error(Path("/out/a.srt"), OSError(code, os.strerror(code)))
    assert isinstance(err, OutputWriteError)
    assert words in str(err) and "/out/a.srt" in str(err)


def test_write_outputs_creates_folders_and_writes_nothing_on_render_error(
    tmp_path: Path,
) -> None:
    out = tmp_path / "deep" / "er"
    targets = {"srt": out / "a.srt", "docx": out / "a.docx"}
    with pytest.raises(ValueError):
        write_outputs(make_transcript(), targets, subtitles=PLAIN, meta=META)
    assert not (tmp_path / "deep").exists()


def test_write_outputs_keeps_complete_files_when_a_later_write_fails(tmp_path: Path) -> None:
    (tmp_path / "a.json").mkdir()  # json cannot be written
    targets = output_paths(tmp_path, "a", ["srt", "json"])
    with pytest.raises(OutputWriteError):
        write_outputs(make_transcript(), targets, subtitles=PLAIN, meta=META)
    assert [s.content for s in srt.parse((tmp_path / "a.srt").read_text())] == expected_texts()
    assert temp_files(tmp_path) == []


def test_write_outputs_folder_blocked_by_file(tmp_path: Path) -> None:
    (tmp_path / "sub").write_text("x")
    targets = output_paths(tmp_path / "sub" / "deeper", "a", ["txt"])
    with pytest.raises(OutputWriteError):
        write_outputs(make_transcript(), targets, subtitles=PLAIN, meta=META)


def test_cleanup_temp_files(tmp_path: Path) -> None:
    (tmp_path / "x" / "y").mkdir(parents=True)
    leftovers = [
        tmp_path / ".a.srt.0123abcd.whisperd-tmp",
        tmp_path / "x" / "y" / ".b c.json.deadbeef.whisperd-tmp",
    ]
    keep = [tmp_path / "a.srt", tmp_path / "x" / "notes.whisperd-tmp", tmp_path / ".hidden"]
    for p in leftovers + keep:
        p.write_text("x")
    assert cleanup_temp_files(tmp_path) == 2
    assert not any(p.exists() for p in leftovers)
    assert all(p.exists() for p in keep)
    assert cleanup_temp_files(tmp_path) == 0
    assert cleanup_temp_files(tmp_path / "missing") == 0


def test_render_txt_is_whisper_txt() -> None:
    out = io.StringIO(render(make_transcript(False), "txt", subtitles=PLAIN, meta={}))
    assert out.read().endswith("です\n")


def test_rendering_does_not_import_torch():
    """The faster-whisper engine and an idle service never need torch for writing files."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from daemon.outputs import SubtitleOptions, render\n"
        "from daemon.transcript import Segment, Transcript\n"
        "t = Transcript(text='hi', language='en', language_probability=None, duration=1.0,\n"
        "    segments=(Segment(id=0, start=0.0, end=1.0, text=' hi'),), model='m', engine='e')\n"
        "out = render(t, 'srt', subtitles=SubtitleOptions(), meta={})\n"
        "print(repr(out), 'torch' in sys.modules)\n"
    )
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert result.stdout.strip() == "'1\\n00:00:00,000 --> 00:00:01,000\\nhi\\n\\n' False", (
        result.stderr
    )
