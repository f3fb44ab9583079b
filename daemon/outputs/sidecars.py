"""Subtitle files beside a video: which exist, and in which language, read the way media
servers read them (used to skip videos that already have subtitles).

A subtitle belongs to a video when its name, compared case-insensitively (and
NFC-normalised, for macOS shares), is the video's stem followed by ``.`` (or nothing) before
a subtitle extension. The tokens between are read from the end backwards, like Jellyfin's
``ExternalPathParser``: ``forced`` / ``foreign``, ``default``, ``sdh`` / ``cc`` / ``hi`` are
flags, the last token that is a language (any form
:func:`~daemon.config.languages.parse_language` reads) is the language, the rest is a title
or tag. ``hi`` means Hindi unless another language is present (``Movie.en.hi.srt`` is
English for the hard of hearing), as in Jellyfin. A subtitle whose name also matches
another media file of the folder with a *longer* name (``Movie.Extended.en.srt`` beside
``Movie.Extended.mkv``; ``Movie.mp4.en.srt`` beside ``Movie.mp4``, the collision-safe stem
of :func:`~daemon.outputs.naming.source_stem`) belongs to that file. VobSub ``.idx``/``.sub``
pairs without a language in the name use the ``.idx``'s ``id:`` lines. Empty (0-byte)
files and hidden names (``.`` or ``~`` first) are not subtitles.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from daemon.config import NameMatcher
from daemon.config.languages import parse_language

#: Extensions read as subtitles (lower case). ``.sub`` is VobSub (with ``.idx``) or MicroDVD.
SUBTITLE_EXTENSIONS: frozenset[str] = frozenset(
    {".srt", ".ass", ".ssa", ".vtt", ".sub", ".idx", ".sup", ".smi", ".sami"}
)
_FORCED = frozenset({"forced", "foreign"})
_HEARING = frozenset({"sdh", "cc"})
_IDX_LANG_RE = re.compile(r"^id:\s*([A-Za-z]{2,3})\b", re.MULTILINE)


@dataclass(frozen=True)
class Sidecar:
    """One subtitle file beside a video, as its name (or its .idx) describes it."""

    path: Path
    languages: frozenset[str]  # Whisper codes; empty when the name carries none
    forced: bool
    hearing_impaired: bool
    default: bool
    extra: tuple[str, ...]  # tokens that are neither language nor flag (titles, tags)


@dataclass(frozen=True)
class Entry:
    """A name in a folder listing: its stem, and whether it is a non-empty subtitle file."""

    name: str
    stem: str
    nonempty_file: bool

    @classmethod
    def of(cls, name: str, nonempty_file: bool) -> Entry:
        return cls(name, os.path.splitext(name)[0], nonempty_file)


def listing(folder: Path) -> list[Entry]:
    """The folder's visible entries (one scandir; sizes only of subtitle-like names)."""
    try:
        with os.scandir(folder) as it:
            entries = [e for e in it if not e.name.startswith((".", "~"))]
    except OSError:
        return []
    return [Entry.of(e.name, _is_subtitle_file(e)) for e in entries]


def _is_subtitle_file(entry: os.DirEntry[str]) -> bool:
    if os.path.splitext(entry.name)[1].casefold() not in SUBTITLE_EXTENSIONS:
        return False
    try:
        return entry.is_file() and entry.stat().st_size > 0
    except OSError:
        return False


def _belongs(root: str, stem: str) -> list[str] | None:
    """The tokens after ``stem`` when ``root`` is ``stem`` or ``stem.<tokens>``, else None."""
    r, s = unicodedata.normalize("NFC", root), unicodedata.normalize("NFC", stem)
    if r[: len(s)].casefold() != s.casefold():
        return None
    rest = r[len(s) :]
    if not rest:
        return []
    if rest[0] != ".":  # "Show - S01E010" is not "Show - S01E01"
        return None
    return [t for t in rest[1:].split(".") if t]


def _parse_tokens(tokens: list[str]) -> tuple[str | None, bool, bool, bool, tuple[str, ...]]:
    """(language, forced, hearing_impaired, default, extra) from the tokens after the stem."""
    others = any(parse_language(t) for t in tokens if t.casefold() != "hi")
    language: str | None = None
    forced = hearing = default = False
    extra: list[str] = []
    for token in reversed(tokens):
        low = token.casefold()
        if low in _FORCED:
            forced = True
        elif low == "default":
            default = True
        elif low in _HEARING or (low == "hi" and (others or language is not None)):
            hearing = True
        elif language is None and (code := parse_language(token)):
            language = code
        else:
            extra.append(token)
    return language, forced, hearing, default, tuple(reversed(extra))


def find_sidecars(
    video: Path, is_media: NameMatcher, entries: Sequence[Entry] | None = None
) -> list[Sidecar]:
    """Every non-empty subtitle file beside ``video`` that belongs to it, sorted by name.

    ``is_media`` tells which other names in the folder are media files (``watch.include``);
    ``entries`` is the folder's :func:`listing`, when the caller has it already.
    """
    video = Path(video)
    entries = listing(video.parent) if entries is None else entries
    name = video.name
    stem = os.path.splitext(name)[0]
    claims = set()  # longer names of other media files that a sidecar may belong to
    for entry in entries:
        if entry.name == name or len(entry.name) <= len(stem) or not is_media(entry.name):
            continue
        for other in (entry.stem, entry.name):
            tokens = _belongs(other, stem) if len(other) > len(stem) else None
            # "Movie.en.mka" (an external audio track of Movie.mkv) names no other video
            if tokens is not None and _parse_tokens(tokens)[4]:
                claims.add(other)
    found: list[Sidecar] = []
    for entry in entries:
        if not entry.nonempty_file:
            continue
        root = entry.stem
        tokens = _belongs(root, stem)
        if tokens is None or any(_belongs(root, other) is not None for other in claims):
            continue
        language, forced, hearing, default, extra = _parse_tokens(tokens)
        path = video.parent / entry.name
        languages = frozenset({language}) if language else _vobsub_languages(path)
        found.append(Sidecar(path, languages, forced, hearing, default, extra))
    return sorted(found, key=lambda s: s.path.name)


def _vobsub_languages(path: Path) -> frozenset[str]:
    """Languages of an unlabelled VobSub pair, from its .idx (``id: en, index: 0`` lines)."""
    if path.suffix.casefold() not in (".idx", ".sub"):
        return frozenset()
    for idx in (path.with_suffix(".idx"), path.with_suffix(".IDX")):
        try:
            text = idx.read_text(encoding="latin-1")[:200_000]
        except OSError:
            continue
        codes = (parse_language(m) for m in _IDX_LANG_RE.findall(text))
        return frozenset(c for c in codes if c)
    return frozenset()


def external_subtitles(
    video: Path,
    language: str | None,
    is_media: NameMatcher,
    *,
    entries: Sequence[Entry] | None = None,
    exclude: Collection[Path] = (),
) -> list[Path]:
    """Subtitle files beside ``video`` that subtitle it in ``language`` (a Whisper code).

    Forced (foreign-parts-only) files do not count: they do not subtitle the whole video.
    ``language`` None: any full subtitle counts, with a language in its name or not.
    ``exclude``: files that do not count (whisperd's own outputs of an earlier version).
    """
    skip = {os.path.normcase(os.path.abspath(p)) for p in exclude}
    return [
        s.path
        for s in find_sidecars(video, is_media, entries)
        if not s.forced
        and (language is None or language in s.languages)
        and os.path.normcase(os.path.abspath(s.path)) not in skip
    ]
