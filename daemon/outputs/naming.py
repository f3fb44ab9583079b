"""Where a source's outputs go and what they are called; nothing here writes.

:func:`mirror_dir` maps a source's folder in the inbox to the same folder in the outbox;
:func:`output_dir` is where a job's outputs go: there, or the source's own folder
(``outputs_beside_source``); :func:`ledger_name` / :func:`from_ledger` are how the ledger
records an output (outbox-relative, absolute when beside the source);
:func:`source_stem` is the one stem function: a source's stem, or its full name when a
sibling media file would otherwise share its outputs (``a.mp3`` beside ``a.wav`` give
``a.mp3.srt`` and ``a.wav.srt``); :func:`output_paths` turns a rendered stem into one path
per format and refuses anything that would leave the folder; :func:`plan_outputs` puts them
together for one job.

Long names: a stem whose longest output's temp name would exceed ``NAME_MAX`` (255 bytes) is
shortened deterministically to a prefix + ``~`` + the first 8 hex digits of the sha1 of the
full stem (see :func:`fit_stem`). Names are handled as ``os.fsdecode`` strings, so names that
are not valid UTF-8 round-trip to the same bytes on disk.
"""

from __future__ import annotations

import hashlib
import os
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path

from daemon.config import FORMATS, Config, JobSettings, NameMatcher
from daemon.errors import OutputPathError
from daemon.outputs.atomic import TEMP_OVERHEAD

NAME_MAX = 255  # bytes per path component on ext4, xfs, btrfs, NTFS/SMB (UTF-16 units)
_LONGEST_EXT = max(len(f".{fmt}") for fmt in FORMATS)
MAX_STEM_BYTES = NAME_MAX - TEMP_OVERHEAD - _LONGEST_EXT  # 227
_HASH_HEX = 8


def _fsbytes(name: str) -> bytes:
    return os.fsencode(name)


def fit_stem(stem: str) -> str:
    """Shorten ``stem`` so every ``.<stem>.<fmt>.<token>.whisperd-tmp`` fits in NAME_MAX.

    Stems of at most :data:`MAX_STEM_BYTES` bytes are returned unchanged. Longer ones become
    the longest whole-character prefix that fits, then ``~`` and 8 hex digits of the sha1 of
    the full stem's bytes, so the same source always maps to the same name and two long names
    that share a prefix still differ. The budget uses the longest format (``json``) so all
    formats of one source share one stem.
    """
    raw = _fsbytes(stem)
    if len(raw) <= MAX_STEM_BYTES:
        return stem
    tag = "~" + hashlib.sha1(raw).hexdigest()[:_HASH_HEX]
    budget = MAX_STEM_BYTES - len(tag)
    prefix: list[str] = []
    used = 0
    for ch in stem:
        size = len(_fsbytes(ch))
        if used + size > budget:
            break
        prefix.append(ch)
        used += size
    # Do not leave a base letter whose combining accent (NFD names) was cut off.
    while prefix and unicodedata.combining(stem[len(prefix)]):
        prefix.pop()
    return "".join(prefix) + tag


def _check_stem(stem: str) -> None:
    if not stem or stem in (".", ".."):
        raise OutputPathError(
            f"output name {stem!r} is not a file name",
            hint="check output_name in the configuration",
        )
    for bad in ("/", "\\", "\x00"):
        if bad in stem:
            raise OutputPathError(
                f"output name {stem!r} contains {bad!r}; outputs must stay in the mirrored folder",
                hint="remove path separators from output_name",
            )


def output_paths(out_dir: Path, out_stem: str, formats: Sequence[str]) -> dict[str, Path]:
    """One path per format: ``{"srt": out_dir / f"{out_stem}.srt", ...}``.

    The stem is kept as is (spaces, leading dash, NFD, undecodable bytes) except that an
    over-long one is shortened by :func:`fit_stem`. Raises :class:`OutputPathError` if the
    stem is empty, ``.`` or ``..``, contains a separator or NUL, or a path would leave
    ``out_dir``; ``ValueError`` for a format not in :data:`FORMATS` (config validates these).
    """
    _check_stem(out_stem)
    stem = fit_stem(out_stem)
    base = os.path.normpath(os.path.abspath(out_dir))
    paths: dict[str, Path] = {}
    for fmt in formats:
        if fmt not in FORMATS:
            raise ValueError(f"unknown output format {fmt!r}; expected one of {FORMATS}")
        path = Path(out_dir) / f"{stem}.{fmt}"
        if os.path.dirname(os.path.normpath(os.path.abspath(path))) != base:
            raise OutputPathError(
                f"output {path} would fall outside {out_dir}",
                hint="check output_name in the configuration",
            )
        paths[fmt] = path
    return paths


def _relative_inside(path: Path, root: Path) -> Path | None:
    """``path`` relative to ``root`` after normalising both, or None if it is not inside."""
    norm_path = Path(os.path.normpath(os.path.abspath(path)))
    norm_root = Path(os.path.normpath(os.path.abspath(root)))
    try:
        return norm_path.relative_to(norm_root)
    except ValueError:
        return None


def mirror_dir(inbox: Path, outbox: Path, source: Path) -> Path:
    """The outbox folder for ``source``: ``outbox / <source's folder relative to inbox>``.

    Raises :class:`OutputPathError` if ``source`` is not inside ``inbox`` (compared after
    normalising, then after resolving symlinks) or if the result, with every symlink that
    already exists in the outbox tree resolved, is not inside the resolved outbox.
    """
    rel = _relative_inside(source, inbox)
    if rel is None:
        rel = _relative_inside(Path(source).resolve(), Path(inbox).resolve())
    if rel is None or rel == Path("."):
        raise OutputPathError(
            f"{source} is not inside the inbox {inbox}",
            hint="only files under a watched folder are transcribed",
        )
    target = Path(os.path.normpath(os.path.abspath(Path(outbox) / rel.parent)))
    if _relative_inside(target.resolve(), Path(outbox).resolve()) is None:
        raise OutputPathError(
            f"output folder {target} leads outside the outbox {outbox} (through a symlink?)",
            hint="remove the symlink from the outbox or point it inside the outbox",
        )
    return target


def output_dir(cfg: Config, settings: JobSettings, source: Path) -> Path:
    """The folder of ``source``'s outputs: the mirrored outbox folder, or with
    ``outputs_beside_source`` the source's own folder (which must be inside the inbox)."""
    if not settings.outputs_beside_source:
        return mirror_dir(cfg.inbox, cfg.outbox, source)
    rel = _relative_inside(source, cfg.inbox)
    if rel is None or rel == Path("."):
        raise OutputPathError(
            f"{source} is not inside the inbox {cfg.inbox}",
            hint="only files under a watched folder are transcribed",
        )
    return Path(os.path.normpath(os.path.abspath(source))).parent


def ledger_name(outbox: Path, path: Path) -> str:
    """How the ledger records an output: relative to the outbox, absolute outside it."""
    rel = _relative_inside(path, outbox)
    return os.fsdecode(rel if rel is not None else os.path.abspath(path))


def from_ledger(outbox: Path, name: str) -> Path:
    """The path of an output recorded by :func:`ledger_name`."""
    return Path(outbox) / name  # an absolute name stays itself


def _stem_key(name: str) -> str:
    # Case- and normalisation-insensitive: on SMB/macOS shares 'A.srt' and 'a.srt', or NFC
    # and NFD spellings, are the same file.
    return unicodedata.normalize("NFC", name).casefold()


def colliding_stem(source: Path, siblings: Iterable[str], is_media: NameMatcher) -> bool:
    """True when ``source`` must use its full name as stem to keep its outputs its own.

    That is when another media file in the folder has the same stem (``a.mp3`` beside
    ``a.wav``), or another media file's full name equals this stem (``a.mp3.wav`` beside
    ``a.mp3``, which may itself use ``a.mp3``). With :func:`source_stem` this gives
    every media file in a folder a distinct stem. Comparison ignores case and Unicode
    normalisation, as case-insensitive shares do.
    """
    name = Path(source).name
    own_stem = _stem_key(Path(name).stem)
    own_name = _stem_key(name)
    for sibling in siblings:
        key = _stem_key(sibling)
        if key == own_name or not is_media(sibling):
            continue
        if _stem_key(Path(sibling).stem) == own_stem or key == own_stem:
            return True
    return False


def source_stem(source: Path, is_media: NameMatcher) -> str:
    """The stem of ``source``'s outputs: ``talk.v2.final`` for ``talk.v2.final.mp3``, or the
    full name when another media file in its folder would share the stem
    (:func:`colliding_stem`; the folder is listed, an unreadable one counts as empty)."""
    try:
        siblings = os.listdir(source.parent)
    except OSError:
        siblings = []
    path = Path(source)
    return path.name if colliding_stem(path, siblings, is_media) else path.stem


def plan_outputs(
    source: Path,
    settings: JobSettings,
    out_dir: Path,
    language: str | None,
    is_media: NameMatcher,
) -> dict[str, Path]:
    """The output file of each requested format for ``source`` (no I/O beyond listing siblings)."""
    name = fit_stem(settings.output_stem(source_stem(source, is_media), source.suffix, language))
    return output_paths(out_dir, name, settings.formats)
