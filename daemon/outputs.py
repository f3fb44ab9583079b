"""Outputs: where a transcript's files go, what they contain, and how they are written.

Three steps, each usable on its own:

* **Path mapping** (pure): :func:`mirror_dir` maps a source's folder in the inbox to the same
  folder in the outbox; :func:`colliding_stem` / :func:`source_stem` pick the stem so that two
  sources never overwrite each other's outputs (``a.mp3`` beside ``a.wav`` give
  ``a.mp3.srt`` and ``a.wav.srt``); :func:`output_paths` turns a rendered stem into one path
  per format and refuses anything that would leave the outbox.
* **Rendering** (pure): :func:`render` produces txt/srt/vtt/tsv with openai-whisper's own
  writers and our JSON document.
* **Writing**: :func:`write_atomic` writes a temp file beside the target and renames it into
  place, so a reader on a share only ever sees complete files under their final name;
  :func:`write_outputs` renders every format before writing any; :func:`cleanup_temp_files`
  removes temp files a crash left behind.

Long names: a stem whose longest output's temp name would exceed ``NAME_MAX`` (255 bytes) is
shortened deterministically to a prefix + ``~`` + the first 8 hex digits of the sha1 of the
full stem (see :func:`fit_stem`). Names are handled as ``os.fsdecode`` strings, so names that
are not valid UTF-8 round-trip to the same bytes on disk.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import io
import json
import math
import os
import secrets
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import structlog

from daemon import __version__, whisper_parts
from daemon.errors import OutputPathError, OutputWriteError
from daemon.transcript import Segment, Transcript, Word

log = structlog.get_logger(__name__)

FORMATS = ("txt", "srt", "vtt", "tsv", "json")

NAME_MAX = 255  # bytes per path component on ext4, xfs, btrfs, NTFS/SMB (UTF-16 units)
TEMP_SUFFIX = ".whisperd-tmp"
_TEMP_TOKEN_HEX = 8  # random hex digits in a temp name
# '.' + name + '.' + token + TEMP_SUFFIX: bytes a temp name adds to the final name.
_TEMP_OVERHEAD = 1 + 1 + _TEMP_TOKEN_HEX + len(TEMP_SUFFIX)
_LONGEST_EXT = max(len(f".{fmt}") for fmt in FORMATS)
MAX_STEM_BYTES = NAME_MAX - _TEMP_OVERHEAD - _LONGEST_EXT  # 227
_HASH_HEX = 8


# --- path mapping ------------------------------------------------------------------------


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


def _stem_key(name: str) -> str:
    # Case- and normalisation-insensitive: on SMB/macOS shares 'A.srt' and 'a.srt', or NFC
    # and NFD spellings, are the same file.
    return unicodedata.normalize("NFC", name).casefold()


def colliding_stem(source: Path, siblings: Iterable[str], is_media: Callable[[str], bool]) -> bool:
    """True when ``source`` must use its full name as stem to keep its outputs its own.

    That is when another media file in the folder has the same stem (``a.mp3`` beside
    ``a.wav``), or another media file's full name equals this stem (``a.mp3.wav`` beside
    ``a.mp3``, which may itself use ``a.mp3``). Together with :func:`source_stem` this gives
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


def source_stem(source: Path, collides: bool) -> str:
    """``talk.v2.final`` for ``talk.v2.final.mp3``; the full name when ``collides``."""
    path = Path(source)
    return path.name if collides else path.stem


# --- rendering ---------------------------------------------------------------------------


class SubtitleSettings(Protocol):
    """What :func:`render` reads from the subtitle settings (config's ``subtitles``)."""

    @property
    def max_line_width(self) -> int | None: ...
    @property
    def max_line_count(self) -> int | None: ...
    @property
    def max_words_per_line(self) -> int | None: ...
    @property
    def highlight_words(self) -> bool: ...


@dataclass(frozen=True)
class SubtitleOptions:
    """Line wrapping for srt/vtt; only effective when segments carry word timestamps."""

    max_line_width: int | None = None
    max_line_count: int | None = None
    max_words_per_line: int | None = None
    highlight_words: bool = False


def _clean(text: str) -> str:
    """One line of UTF-8-encodable text: no newlines, no '-->' (it ends an SRT/VTT cue)."""
    text = " ".join(text.splitlines()) if "\n" in text or "\r" in text else text
    return _utf8_safe(text.replace("-->", "->"))


def _utf8_safe(text: str) -> str:
    """Make ``text`` encodable: undecodable bytes from names appear as ``\\xe9``."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        try:
            raw = text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            return text.encode("utf-8", "replace").decode("utf-8")
        return raw.decode("utf-8", "backslashreplace")


def _writer_result(transcript: Transcript) -> dict[str, Any]:
    """``transcript.to_whisper_result()`` made safe for whisper's writers.

    Segments with blank text are dropped (they would make empty cues); times are clamped to
    be non-negative with ``end >= start`` (the writers assert this). Word-level cues are used
    only when every segment has words: whisper's writers decide from the first segment and
    would fail or drop text on a mix, so on a mix the words are left out.
    """
    result = transcript.to_whisper_result()
    segments = [s for s in result["segments"] if s["text"].strip()]
    with_words = bool(segments) and all(s.get("words") for s in segments)
    for seg in segments:
        seg["text"] = _clean(seg["text"])
        seg["start"] = max(0.0, float(seg["start"]))
        seg["end"] = max(seg["start"], float(seg["end"]))
        if not with_words:
            seg.pop("words", None)
            continue
        for word in seg["words"]:
            word["word"] = _clean(word["word"])
            word["start"] = max(0.0, float(word["start"]))
            word["end"] = max(word["start"], float(word["end"]))
    result["segments"] = segments
    return result


def _round(value: float | None, digits: int) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def _word_json(word: Word) -> dict[str, Any]:
    return {
        "start": _round(word.start, 3),
        "end": _round(word.end, 3),
        "word": word.word,
        "probability": _round(word.probability, 4),
    }


def _segment_json(seg: Segment) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": seg.id,
        "start": _round(seg.start, 3),
        "end": _round(seg.end, 3),
        "text": seg.text,
    }
    if seg.words is not None:
        item["words"] = [_word_json(w) for w in seg.words]
    item["avg_logprob"] = _round(seg.avg_logprob, 4)
    item["no_speech_prob"] = _round(seg.no_speech_prob, 4)
    item["compression_ratio"] = _round(seg.compression_ratio, 3)
    item["temperature"] = _round(seg.temperature, 2)
    return item


def _json_safe(value: Any) -> Any:
    if isinstance(value, str):
        return _utf8_safe(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, os.PathLike):
        return _utf8_safe(os.fspath(value))
    return value


def render_json(transcript: Transcript, meta: dict[str, Any]) -> str:
    """Our JSON document: the transcript plus what produced it (``meta``).

    ``meta`` supplies ``source`` (inbox-relative path), ``settings``, ``processing_seconds``
    and optionally ``model``, ``engine``, ``audio_duration``, ``whisperd_version`` and
    ``created_at``; missing ones default to the transcript's values, this package's version
    and now (UTC). Extra keys in ``meta`` are appended.
    """
    created = meta.get("created_at") or dt.datetime.now(dt.UTC)
    if isinstance(created, dt.datetime):
        created = created.astimezone(dt.UTC).isoformat(timespec="seconds")
    duration = meta.get("audio_duration", transcript.duration)
    processing = meta.get("processing_seconds")
    doc: dict[str, Any] = {
        "source": meta.get("source"),
        "text": transcript.text.strip(),
        "language": transcript.language,
        "language_probability": _round(transcript.language_probability, 4),
        "segments": [_segment_json(s) for s in transcript.segments],
        "model": meta.get("model", transcript.model),
        "engine": meta.get("engine", transcript.engine),
        "settings": meta.get("settings", {}),
        "audio_duration": _round(duration, 3) if duration is not None else None,
        "processing_seconds": _round(processing, 3) if processing is not None else None,
        "whisperd_version": meta.get("whisperd_version", __version__),
        "created_at": created,
    }
    for key, value in meta.items():
        doc.setdefault(key, value)
    return json.dumps(_json_safe(doc), ensure_ascii=False, indent=2, allow_nan=False) + "\n"


def render(
    transcript: Transcript,
    fmt: str,
    *,
    subtitles: SubtitleSettings,
    meta: dict[str, Any],
) -> str:
    """The content of one output file in format ``fmt`` (one of :data:`FORMATS`).

    txt/srt/vtt/tsv come from openai-whisper's writers, so files match ``whisper --output_format``;
    the subtitle options are passed through and wrap cues only when segments carry words.
    """
    if fmt == "json":
        return render_json(transcript, meta)
    utils = whisper_parts.load("utils")  # whisper.utils, without importing torch
    writers = {"txt": utils.WriteTXT, "srt": utils.WriteSRT, "vtt": utils.WriteVTT,
               "tsv": utils.WriteTSV}  # fmt: skip
    if fmt not in writers:
        raise ValueError(f"unknown output format {fmt!r}; expected one of {FORMATS}")
    options = {
        "max_line_width": subtitles.max_line_width,
        "max_line_count": subtitles.max_line_count,
        "max_words_per_line": subtitles.max_words_per_line,
        "highlight_words": subtitles.highlight_words,
    }
    buffer = io.StringIO()
    writers[fmt](output_dir="").write_result(
        _writer_result(transcript), file=buffer, options=options
    )
    return _utf8_safe(buffer.getvalue())


# --- writing -----------------------------------------------------------------------------


def _temp_name(final_name: str) -> str:
    return f".{final_name}.{secrets.token_hex(_TEMP_TOKEN_HEX // 2)}{TEMP_SUFFIX}"


def is_temp_file(name: str) -> bool:
    """True for whisperd's temp files (the watcher ignores them)."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


def _write_error(path: Path, err: OSError) -> OutputWriteError:
    code = err.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        return OutputWriteError(
            f"cannot write {path}: disk full", hint="free space in the outbox; retried later"
        )
    if code in (errno.EACCES, errno.EPERM):
        return OutputWriteError(
            f"cannot write {path}: permission denied",
            hint="let the whisperd user write to the outbox folder",
        )
    if code == errno.EROFS:
        return OutputWriteError(
            f"cannot write {path}: read-only file system", hint="mount the outbox read-write"
        )
    return OutputWriteError(f"cannot write {path}: {err.strerror or err}")


def _fsync_dir(directory: Path) -> None:
    """Persist a rename; best effort, as some network filesystems refuse fsync on folders."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: Path, data: str | bytes | memoryview) -> None:
    """Write ``data`` (str as UTF-8) to ``path`` so readers see the old file or the whole new one.

    The temp file ``.<name>.<random>.whisperd-tmp`` sits in the same folder (same
    filesystem, so the rename is atomic); it is fsynced, renamed over ``path``, and the folder
    is fsynced. On any OSError the temp file is removed and :class:`OutputWriteError` raised.
    Permissions follow the umask, as for any newly created file.
    """
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    temp = path.with_name(_temp_name(path.name))
    created = False
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        created = True
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
        created = False
    except OSError as err:
        if created:
            with contextlib.suppress(OSError):
                os.unlink(temp)
        raise _write_error(path, err) from err
    _fsync_dir(path.parent)


def write_outputs(
    transcript: Transcript,
    targets: dict[str, Path],
    *,
    subtitles: SubtitleSettings,
    meta: dict[str, Any],
) -> list[Path]:
    """Render every format in ``targets``, then write each file atomically; return the paths.

    Rendering happens first, so a rendering error writes nothing. If a write fails, files
    already written by this call stay (each is complete) and the error propagates.
    """
    rendered = {fmt: render(transcript, fmt, subtitles=subtitles, meta=meta) for fmt in targets}
    for folder in {Path(p).parent for p in targets.values()}:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise _write_error(folder, err) from err
    written: list[Path] = []
    for fmt, path in targets.items():
        write_atomic(path, rendered[fmt])
        written.append(Path(path))
    log.debug("outputs written", paths=[str(p) for p in written])
    return written


def cleanup_temp_files(root: Path) -> int:
    """Remove temp files a crash left under ``root``; return how many were removed.

    Call it when no write is in progress (at startup): it does not know which temp files
    belong to a running write. Symlinked folders are not followed.
    """
    removed = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if not is_temp_file(name):
                continue
            path = os.path.join(dirpath, name)
            try:
                os.unlink(path)
            except FileNotFoundError:
                continue
            except OSError as err:
                log.warning("cannot remove temp file", path=path, error=str(err))
                continue
            removed += 1
    if removed:
        log.info("removed leftover temp files", root=str(root), count=removed)
    return removed
