"""What the media-library settings change in a job: which audio track is transcribed, in
which language, and whether the video needs subtitles at all.

* :func:`plan_track`: with ``audio_language`` the track is chosen by its language tag
  (:func:`daemon.media.streams.pick_audio`); with ``trust_track_language`` and
  ``language: null`` the chosen track's tag is passed to the engine instead of detecting
  the language (unless the model cannot transcribe that language: an English-only model).
* :func:`subtitled`: with ``skip_if_subtitles`` a video that already has subtitles in the
  language its transcript would be in is skipped: a subtitle file beside it
  (:mod:`daemon.outputs.sidecars`) or an embedded subtitle stream tagged with that language.
  Forced (foreign-parts-only) subtitles do not count. That language is ``language``, else
  English for ``task: translate`` or an English-only model, else the trusted track tag;
  when none of these tells it, any full subtitle counts (in any language, or none named),
  since whisperd cannot know which one the person wants before transcribing. whisperd's
  own outputs of an earlier version of the file (``ours``) never count.

The service asks :func:`subtitled` before a file is queued and the worker again before a
job starts (a subtitle may have arrived meanwhile, from Bazarr or a person).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.config import JobSettings, NameMatcher, model_name
from daemon.config.languages import english_name
from daemon.errors import WhisperdError
from daemon.media.streams import Streams, inspect, pick_audio
from daemon.outputs import from_ledger
from daemon.outputs.sidecars import Entry, external_subtitles
from daemon.queue import Job


@dataclass(frozen=True)
class TrackPlan:
    """The stream to decode and the settings to transcribe it with."""

    stream: int | None  # None: the decoder's own choice (default track, else first)
    settings: JobSettings  # ``language`` set from the track's tag when it is trusted
    chosen_by: str | None = None  # why this track, for the JSON


def _english_only(settings: JobSettings) -> bool:
    return model_name(settings.model).endswith(".en")


def _usable(settings: JobSettings, language: str | None) -> str | None:
    """A track's language, if the engine may be told it (an .en model knows only English)."""
    if language is None or (_english_only(settings) and language != "en"):
        return None
    return language


def plan_track(source: Path, settings: JobSettings, streams: Streams | None = None) -> TrackPlan:
    """Which stream of ``source`` to decode and with which settings (see the docstring).

    Opens the file only when a setting needs its tracks; raises the media errors of
    :func:`daemon.media.streams.inspect`.
    """
    trust = settings.trust_track_language and settings.language is None
    if not settings.audio_language and not trust:
        return TrackPlan(None, settings)
    streams = streams or inspect(source)
    choice = pick_audio(streams, settings.audio_language)
    language = _usable(settings, choice.track.language) if trust else None
    if language is not None:
        settings = settings.model_copy(update={"language": language})
    return TrackPlan(choice.track.index, settings, choice.reason)


def target_language(settings: JobSettings, streams: Streams | None) -> str | None:
    """The language the transcript will be in, when it is known before transcribing."""
    if settings.task == "translate" or _english_only(settings):
        return "en"
    if settings.language is not None:
        return settings.language
    if settings.trust_track_language and streams is not None:
        return plan_track(Path(streams.path), settings, streams).settings.language
    return None


def _streams(source: Path) -> Streams | None:
    try:
        return inspect(source)
    except WhisperdError:
        return None  # unreadable or not media: the job itself will say so, visibly


def subtitled(
    source: Path,
    settings: JobSettings,
    is_media: NameMatcher,
    *,
    ours: Collection[Path] = (),
    entries: Sequence[Entry] | None = None,
) -> str | None:
    """Why ``source`` needs no subtitles from whisperd (the ones it has), or None.

    ``entries`` is the folder's :func:`~daemon.outputs.sidecars.listing` when the caller
    lists many videos of one folder; the container is opened only when its tracks or its
    subtitle streams are needed.
    """
    need_tracks = settings.language is None and settings.trust_track_language
    streams = _streams(source) if need_tracks else None
    language = target_language(settings, streams)
    found = external_subtitles(source, language, is_media, entries=entries, exclude=ours)
    if found:
        return f"already has subtitles{_in(language)}: {found[0].name}"
    streams = streams or _streams(source)
    if streams is None:
        return None
    embedded = [
        s
        for s in streams.subtitles
        if not s.forced and (language is None or s.language == language)
    ]
    if not embedded:
        return None
    first = embedded[0]
    tag = f", tagged {first.tag}" if first.tag and language is None else ""
    return (
        f"already has an embedded subtitle stream{_in(language)} "
        f"(stream {first.index}, {first.codec}{tag})"
    )


def our_outputs(outbox: Path, versions: Iterable[Job]) -> list[Path]:
    """whisperd's own files among a path's versions: the outputs of the done ones, and the
    files staged by one being committed right now (renamed, not yet recorded done)."""
    ours: list[Path] = []
    for job in versions:
        if job.state == "done":
            ours += [from_ledger(outbox, name) for name in job.outputs]
        if job.staged:
            try:
                ours += [Path(f["path"]) for f in json.loads(job.staged).get("files", [])]
            except (ValueError, TypeError, KeyError, AttributeError):
                continue
    return ours


def _in(language: str | None) -> str:
    if language is None:
        return " (its language is not known before transcribing, so any subtitle counts)"
    return f" in {english_name(language)}"


def track_record(plan: TrackPlan, audio: Any) -> dict[str, Any]:
    """What the JSON says about the audio track transcribed (``audio``: the decoded Audio)."""
    return {
        "index": audio.stream_index,
        "language": audio.language,
        "title": audio.title,
        "chosen_by": plan.chosen_by or "the default track, else the first",
    }
