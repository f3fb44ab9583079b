"""What the output files contain: txt/srt/vtt/tsv through openai-whisper's writers, our JSON.

srt and vtt hold the readable cues of :mod:`daemon.outputs.subtitles` (``subtitles.style:
readable``, the default) or Whisper's own segments (``style: whisper``); txt, tsv and json
keep the full text of the segments. :func:`render` produces one format;
:func:`write_outputs` renders every requested format first (a rendering error writes
nothing), then writes each file atomically; :func:`stage_outputs` stops before the renames,
for the service's two-phase commit. The writers of openai-whisper are loaded without
importing torch (:mod:`daemon.whisper_parts`).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import os
from pathlib import Path
from typing import Any

import structlog

from daemon import __version__, whisper_parts
from daemon.config import FORMATS, SubtitleSettings
from daemon.outputs import subtitles as readable
from daemon.outputs.atomic import Staged, discard, publish, write_error, write_temp
from daemon.outputs.subtitles import Subtitles
from daemon.transcript import Dropped, Segment, Transcript, Word

log = structlog.get_logger(__name__)


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


def _dropped_json(item: Dropped) -> dict[str, Any]:
    return {"start": _round(item.start, 3), "end": _round(item.end, 3), "text": item.text,
            "reason": item.reason}  # fmt: skip


def render_json(transcript: Transcript, meta: dict[str, Any], cues: Subtitles | None = None) -> str:
    """Our JSON document: the transcript plus what produced it (``meta``).

    ``meta`` supplies ``source`` (inbox-relative path), ``settings``, ``processing_seconds``
    and optionally ``model``, ``engine``, ``audio_duration``, ``whisperd_version`` and
    ``created_at``; missing ones default to the transcript's values, this package's version
    and now (UTC). Extra keys in ``meta`` are appended. The speech regions (``speech``,
    null when detection was off, and ``speech_seconds``), the guard's drops (``dropped``)
    and, given ``cues``, the readable cues with their rule report (``subtitles``) follow
    the segments.
    """
    created = meta.get("created_at") or dt.datetime.now(dt.UTC)
    if isinstance(created, dt.datetime):
        created = created.astimezone(dt.UTC).isoformat(timespec="seconds")
    duration = meta.get("audio_duration", transcript.duration)
    processing = meta.get("processing_seconds")
    speech = None
    if transcript.speech is not None:
        speech = [[_round(s, 3), _round(e, 3)] for s, e in transcript.speech]
    doc: dict[str, Any] = {
        "source": meta.get("source"),
        "text": transcript.text.strip(),
        "language": transcript.language,
        "language_probability": _round(transcript.language_probability, 4),
        "segments": [_segment_json(s) for s in transcript.segments],
        "speech": speech,
        "speech_seconds": _round(sum(e - s for s, e in speech), 3) if speech is not None else None,
        "dropped": [_dropped_json(d) for d in transcript.dropped],
        "model": meta.get("model", transcript.model),
        "engine": meta.get("engine", transcript.engine),
        "settings": meta.get("settings", {}),
        "audio_duration": _round(duration, 3) if duration is not None else None,
        "processing_seconds": _round(processing, 3) if processing is not None else None,
        "whisperd_version": meta.get("whisperd_version", __version__),
        "created_at": created,
    }
    if cues is not None:
        doc["subtitles"] = readable.json_block(cues)
    for key, value in meta.items():
        doc.setdefault(key, value)
    return json.dumps(_json_safe(doc), ensure_ascii=False, indent=2, allow_nan=False) + "\n"


def render(
    transcript: Transcript,
    fmt: str,
    *,
    subtitles: SubtitleSettings,
    meta: dict[str, Any],
    cues: Subtitles | None = None,
) -> str:
    """The content of one output file in format ``fmt`` (one of :data:`FORMATS`).

    txt/srt/vtt/tsv come from openai-whisper's writers, so files match ``whisper
    --output_format``. With style readable, srt and vtt get the readable cues (``cues``, or
    built here); with style whisper, the subtitle options are passed through and wrap
    cues only when segments carry words. ``cues`` also puts the ``subtitles`` block in the
    json.
    """
    if fmt == "json":
        return render_json(transcript, meta, cues)
    utils = whisper_parts.load("utils")  # whisper.utils, without importing torch
    writers = {"txt": utils.WriteTXT, "srt": utils.WriteSRT, "vtt": utils.WriteVTT,
               "tsv": utils.WriteTSV}  # fmt: skip
    if fmt not in writers:
        raise ValueError(f"unknown output format {fmt!r}; expected one of {FORMATS}")
    result = _writer_result(transcript)
    options = {
        "max_line_width": subtitles.max_line_width,
        "max_line_count": subtitles.max_line_count,
        "max_words_per_line": subtitles.max_words_per_line,
        "highlight_words": subtitles.highlight_words,
    }
    if fmt in ("srt", "vtt") and subtitles.style == "readable":
        cues = cues or readable.readable_cues(transcript, subtitles)
        result["segments"] = readable.writer_segments(cues, subtitles.highlight_words)
        options = {}
    buffer = io.StringIO()
    writers[fmt](output_dir="").write_result(result, file=buffer, options=options)
    return _utf8_safe(buffer.getvalue())


def wanted_cues(
    transcript: Transcript, formats: Any, subtitles: SubtitleSettings
) -> Subtitles | None:
    """The readable cues, built once for the files of a job: when srt or vtt is written."""
    if subtitles.style != "readable" or not {"srt", "vtt"} & set(formats):
        return None
    return readable.readable_cues(transcript, subtitles)


def stage_outputs(
    transcript: Transcript,
    targets: dict[str, Path],
    *,
    subtitles: SubtitleSettings,
    meta: dict[str, Any],
    cues: Subtitles | None = None,
) -> list[Staged]:
    """Render every format in ``targets``, then write each to a fsynced temp file.

    Rendering happens first, so a rendering error writes nothing; if a write fails, the
    temp files of this call are removed and the error propagates. Nothing is published:
    :func:`~daemon.outputs.atomic.publish` renames them into place. ``cues``: the readable
    cues when the caller built them already (:func:`wanted_cues`), else built here.
    """
    cues = cues or wanted_cues(transcript, targets, subtitles)
    rendered = {fmt: render(transcript, fmt, subtitles=subtitles, meta=meta, cues=cues)
                for fmt in targets}  # fmt: skip
    for folder in {Path(p).parent for p in targets.values()}:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise write_error(folder, err) from err
    staged: list[Staged] = []
    try:
        for fmt, path in targets.items():
            staged.append(write_temp(path, rendered[fmt]))
    except BaseException:
        discard(staged)
        raise
    return staged


def write_outputs(
    transcript: Transcript,
    targets: dict[str, Path],
    *,
    subtitles: SubtitleSettings,
    meta: dict[str, Any],
) -> list[Path]:
    """:func:`stage_outputs`, then publish them all; return the paths.

    If a rename fails, the files already renamed stay (each is complete), the remaining
    temp files are removed and the error propagates.
    """
    staged = stage_outputs(transcript, targets, subtitles=subtitles, meta=meta)
    try:
        written = publish(staged)
    except BaseException:
        discard([s for s in staged if s.temp.exists()])
        raise
    log.debug("outputs written", paths=[str(p) for p in written])
    return written
