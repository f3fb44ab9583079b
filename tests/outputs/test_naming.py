"""Where outputs go and what they are called: mirrored folders, stems, odd and long names."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from daemon.config import FORMATS
from daemon.errors import OutputPathError
from daemon.outputs import (
    MAX_STEM_BYTES,
    NAME_MAX,
    colliding_stem,
    fit_stem,
    mirror_dir,
    output_paths,
    source_stem,
    write_atomic,
    write_outputs,
)
from tests.outputs.support import META, PLAIN, make_transcript

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


def _stems(folder: Path, names: list[str]) -> dict[str, str]:
    """The stems ``source_stem`` gives files with these names, all in one real folder."""
    folder.mkdir(exist_ok=True)
    for n in names:
        (folder / n).touch()
    return {n: source_stem(folder / n, _is_media) for n in names}


def test_collision_rule(tmp_path: Path) -> None:
    stems = _stems(tmp_path, ["a.mp3", "a.wav", "b.mp3", "b.txt", "talk.v2.final.mp3"])
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
def test_collision_rule_never_shares_a_stem(tmp_path: Path, names: list[str]) -> None:
    stems = _stems(tmp_path / "folder", names)
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
