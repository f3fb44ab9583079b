"""What a media library puts beside its videos is never input: whisperd's own outputs and
temp files (written into the inbox with outputs_beside_source), and folders marked
``.whisperd-skip``, at the start-up scan, through change events and through polling."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from daemon.intake import Watcher
from tests.intake.support import Recorder, wait_for, write

pytestmark = pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")

OWN = [
    "Movie.en.srt", "Movie.en.vtt", "Movie.txt", "Movie.en.json", "Movie.tsv",
    "Movie.error.txt", ".Movie.en.srt.1a2b3c4d.whisperd-tmp", "Movie.en.srt.whisperd-tmp",
]  # fmt: skip


@pytest.mark.parametrize("poll", ["never", "always"])
def test_own_files_are_never_taken_even_when_every_name_is_included(
    inbox: Path, running: Callable[..., tuple[Watcher, Recorder]], poll: str
) -> None:
    write(inbox / "Movies" / "Old.en.srt")  # present at the start-up scan
    _, rec = running(inbox, poll=poll, include=("*",), ignore=())
    for name in OWN:
        write(inbox / "Movies" / name)
    write(inbox / "Movies" / "Movie.mkv")
    wait_for(lambda: rec.count("Movies/Movie.mkv") == 1)
    write(inbox / "sentinel.mkv")
    wait_for(lambda: rec.count("sentinel.mkv") == 1)
    assert sorted(rec.names()) == ["Movies/Movie.mkv", "sentinel.mkv"]


@pytest.mark.parametrize("poll", ["never", "always"])
def test_a_folder_marked_whisperd_skip_is_ignored_with_everything_below(
    inbox: Path, running: Callable[..., tuple[Watcher, Recorder]], poll: str
) -> None:
    write(inbox / "Extras" / ".whisperd-skip", b"")
    write(inbox / "Extras" / "making-of.mkv")  # present at the start-up scan
    write(inbox / "Extras" / "Deeper" / "trailer.mkv")
    _, rec = running(inbox, poll=poll, include=("*.mkv",))
    write(inbox / "Extras" / "later.mkv")  # an event in the marked folder
    write(inbox / "Extras" / "Deeper" / "later.mkv")  # and below it
    (inbox / "Extras" / "New").mkdir()
    write(inbox / "Extras" / "New" / "in-a-new-folder.mkv")
    write(inbox / "Film" / "Film.mkv")
    wait_for(lambda: rec.count("Film/Film.mkv") == 1)
    write(inbox / "sentinel.mkv")
    wait_for(lambda: rec.count("sentinel.mkv") == 1)
    assert sorted(rec.names()) == ["Film/Film.mkv", "sentinel.mkv"]
    (inbox / "Extras" / ".whisperd-skip").unlink()  # unmarked: the folder is taken again
    write(inbox / "Extras" / "after.mkv")
    wait_for(lambda: rec.count("Extras/after.mkv") == 1)
