"""Atomic writes, write errors, leftover temp files."""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path

import pytest
import srt

from daemon.errors import OutputWriteError
from daemon.outputs import (
    cleanup_temp_files,
    output_paths,
    render,
    write_atomic,
    write_outputs,
)
from daemon.outputs.atomic import write_error
from tests.outputs.support import META, PLAIN, expected_texts, make_transcript, temp_files

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
    err = write_error(Path("/out/a.srt"), OSError(code, os.strerror(code)))
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
        "from daemon.config import SubtitleSettings\n"
        "from daemon.outputs import render\n"
        "from daemon.transcript import Segment, Transcript\n"
        "t = Transcript(text='hi', language='en', language_probability=None, duration=1.0,\n"
        "    segments=(Segment(id=0, start=0.0, end=1.0, text=' hi'),), model='m', engine='e')\n"
        "out = render(t, 'srt', subtitles=SubtitleSettings(), meta={})\n"
        "print(repr(out), 'torch' in sys.modules)\n"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert result.stdout.strip() == "'1\\n00:00:00,000 --> 00:00:01,000\\nhi\\n\\n' False", (
        result.stderr
    )
