"""The settings of media-library mode: their value types and the defaults the mode changes.

With ``outputs_beside_source: true`` a folder's outputs go into the source's own folder,
named the way Plex, Jellyfin, Emby and Bazarr look for subtitles. Four settings have a
default that depends on the mode; in the file they are written ``null`` ("auto") and
:data:`MODE_DEFAULTS` gives the value used, per mode:

==================  =============================  ===========================
setting             mirrored outbox (the default)  beside the source
==================  =============================  ===========================
output_name         ``{stem}``                     ``{stem}.{language}``
formats             all five                       ``[srt]``
language_code       ``whisper``                    ``iso639-1``
skip_if_subtitles   false                          true
==================  =============================  ===========================

A leaf of the config package: imports :mod:`.values`, :mod:`.messages`, :mod:`.languages`.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator

from daemon.config.languages import parse_language
from daemon.config.messages import fail, show
from daemon.config.tables import FORMATS, Format
from daemon.config.values import choice_value, flag, formats_before, no_repeats, output_name

#: Settings whose null ("auto") means a value that depends on outputs_beside_source:
#: (mirrored outbox, beside the source).
MODE_DEFAULTS: dict[str, tuple[Any, Any]] = {
    "output_name": ("{stem}", "{stem}.{language}"),
    "formats": (FORMATS, ("srt",)),
    "language_code": ("whisper", "iso639-1"),
    "skip_if_subtitles": (False, True),
}
CODE_STYLES = ("whisper", "iso639-1", "iso639-2")
SERVER_KINDS = ("none", "jellyfin", "emby", "plex")


def _optional(check: Any) -> Any:
    return lambda value: None if value is None else check(value)


def _audio_languages(value: Any) -> tuple[str, ...]:
    """Language preferences for the audio track: codes or names, read as Whisper codes."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        fail(f"must be a list of languages like [ja, en], got {show(value)}")
    codes: list[str] = []
    for item in value:
        code = parse_language(item) if isinstance(item, str) else None
        if code is None:
            fail(
                f"{show(item)} is not a language (use a code like 'ja' or 'jpn', or a name "
                "like 'Japanese')"
            )
        if code in codes:
            fail(f"{show(item)} is listed twice")
        codes.append(code)
    return tuple(codes)


def _http_url(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        parts = urllib.parse.urlsplit(value.strip())
        if parts.scheme in ("http", "https") and parts.netloc:
            return value.strip().rstrip("/")
    fail(f"{show(value)} is not an http(s) URL (e.g. http://jellyfin:8096)")


def _path_map(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        fail(f"must be a mapping of local folder: server folder, got {show(value)}")
    checked: dict[str, str] = {}
    for local, remote in value.items():
        for side in (local, remote):
            if not isinstance(side, str) or not side.startswith("/"):
                fail(f"{show(side)} is not an absolute folder path (like /mnt/media)")
        checked[local] = remote
    return checked


def _secret(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and value.strip()):
        return value.strip() if isinstance(value, str) else None
    fail("must be the API token as text, or null")


OptionalFlag = Annotated[bool | None, BeforeValidator(_optional(flag))]
OptionalOutputName = Annotated[str | None, BeforeValidator(_optional(output_name))]
OptionalFormats = Annotated[
    tuple[Annotated[Format, BeforeValidator(
        lambda v: choice_value("a format", v, (*FORMATS, "all")))], ...] | None,
    BeforeValidator(_optional(formats_before)),
    AfterValidator(_optional(no_repeats)),
]  # fmt: skip
AudioLanguages = Annotated[tuple[str, ...], BeforeValidator(_audio_languages)]
LanguageCode = Annotated[
    Literal["whisper", "iso639-1", "iso639-2"] | None,
    BeforeValidator(_optional(lambda v: choice_value("a language code style", v, CODE_STYLES))),
]
JobOrder = Annotated[
    Literal["oldest", "newest"],
    BeforeValidator(lambda v: choice_value("an order", v, ("oldest", "newest"))),
]
ServerKind = Annotated[
    Literal["none", "jellyfin", "emby", "plex"],
    BeforeValidator(lambda v: choice_value("a media server kind", v, SERVER_KINDS)),
]
HttpUrl = Annotated[str | None, BeforeValidator(_http_url)]
PathMap = Annotated[dict[str, str], BeforeValidator(_path_map)]
Secret = Annotated[str | None, BeforeValidator(_secret)]
