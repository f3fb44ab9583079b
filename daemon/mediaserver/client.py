"""Telling a media server that subtitles changed: the token, one client per kind.

Each client turns a batch ``{folder: videos written in it}`` into the server's documented
"something changed here" call and reports an outcome per folder (None = done):

* Jellyfin and Emby: ``POST {url}/Library/Media/Updated`` with
  ``{"Updates": [{"Path": <video>, "UpdateType": "Modified"}, ...]}``, one request for the
  whole batch (Jellyfin answers 204, Emby 200; ``LibraryController.PostUpdatedMedia``,
  Emby's ``postLibraryMediaUpdated``). Jellyfin refreshes the nearest library item of each
  path, walking up the folders, so the video's own path refreshes exactly that movie or
  episode (and re-reads its external subtitles); a folder path would refresh the season or
  the whole library folder. A folder is sent only when no video is known. Token: Jellyfin
  gets ``Authorization: MediaBrowser Token="..."`` (its legacy ``X-Emby-Token`` is off by
  default after 10.11, and sending both can be refused); Emby gets ``X-Emby-Token`` (its
  documented API-key header).
* Plex: ``GET {url}/library/sections`` (cached) to find the library sections whose
  ``Location`` paths contain the folder, then ``GET {url}/library/sections/{key}/refresh?
  path=<folder>`` (a partial scan, as python-plexapi's ``LibrarySection.update(path)``) per
  section, with ``X-Plex-Token``.

``path_map`` rewrites local path prefixes to the server's view (a server in a container sees
``/data/movies`` where whisperd sees ``/mnt/media/movies``). Requests ignore ``*_proxy``
environment variables: media servers are reached on the LAN. Tokens are never logged nor put
in URLs; the token file is read again for every request, so a corrected one heals a 401
without a restart.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from daemon.config import MediaServerSettings
from daemon.errors import (
    ConfigError,
    MediaServerAuthError,
    MediaServerError,
    MediaServerRejected,
    MediaServerUnavailable,
)

TOKEN_ENV = "WHISPERD_MEDIA_TOKEN"
_MAX_BODY = 4_000_000
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def resolve_token(settings: MediaServerSettings, environ: Mapping[str, str]) -> str:
    """The API token: ``token``, else the first line of ``token_file``, else the environment.

    Raises :class:`~daemon.errors.ConfigError` (one located line) when there is none.
    """
    if settings.token:
        return settings.token
    if settings.token_file is not None:
        try:
            text = Path(settings.token_file).read_text(encoding="utf-8")
        except OSError as err:
            problem = f"cannot read {settings.token_file}: {err.strerror or err}"
            raise ConfigError("media_server", [f"media_server.token_file: {problem}"]) from None
        token = text.strip().splitlines()[0].strip() if text.strip() else ""
        if token:
            return token
        raise ConfigError("media_server", [f"media_server.token_file: {settings.token_file} "
                                           "is empty"])  # fmt: skip
    token = environ.get(TOKEN_ENV, "").strip()
    if token:
        return token
    raise ConfigError("media_server", [
        f"media_server: no token (set media_server.token, media_server.token_file or "
        f"${TOKEN_ENV})"])  # fmt: skip


def map_path(path: str, path_map: Sequence[tuple[str, str]]) -> str:
    """``path`` as the server sees it: the longest matching local prefix replaced."""
    best: tuple[str, str] | None = None
    for local, remote in path_map:
        local = local.rstrip("/") or "/"
        inside = path == local or path.startswith(local.rstrip("/") + "/")
        if inside and (best is None or len(local) > len(best[0])):
            best = (local, remote)
    if best is None:
        return path
    local, remote = best
    rest = path[len(local) :].lstrip("/")
    return remote.rstrip("/") + "/" + rest if rest else remote


# --- HTTP ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Response:
    status: int
    body: bytes
    content_type: str


def _request(
    method: str, url: str, headers: dict[str, str], body: bytes | None, timeout: float
) -> _Response:
    """One HTTP exchange; raises the typed MediaServerError for anything but 2xx."""
    where = urllib.parse.urlsplit(url)._replace(query="").geturl()
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with _OPENER.open(request, timeout=timeout) as resp:
            content_type = resp.headers.get("Content-Type", "")
            return _Response(resp.status, resp.read(_MAX_BODY), content_type)
    except urllib.error.HTTPError as err:
        status = err.code
        if status in (401, 403):
            raise MediaServerAuthError(
                f"{method} {where}: HTTP {status}: the server refused the token",
                hint="check media_server.token (an API key made in the server's dashboard)",
            ) from None
        if status >= 500 or status in (408, 429):
            raise MediaServerUnavailable(f"{method} {where}: HTTP {status}") from None
        raise MediaServerRejected(f"{method} {where}: HTTP {status}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", None) or err
        raise MediaServerUnavailable(f"{method} {where}: {reason}") from None


#: Per-folder outcome of a batch: None when the server accepted it.
Outcome = MediaServerError | None


class MediaServerClient(Protocol):
    """What the Refresher needs from a client."""

    kind: str

    def refresh(self, batch: Mapping[str, Sequence[str]]) -> dict[str, Outcome]:
        """Ask for a rescan of every folder in ``batch`` (folder -> videos written there)."""
        ...


class _Base:
    """URL, token source and request counting shared by the clients."""

    kind: str

    def __init__(
        self,
        url: str,
        token: Callable[[], str],  # re-read per request: a fixed token file heals a 401
        path_map: tuple[tuple[str, str], ...] = (),
        timeout: float = 10.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.path_map = path_map
        self.timeout = timeout
        self.requests = 0

    def _call(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None = None
    ) -> _Response:
        self.requests += 1
        return _request(method, self.url + path, headers, body, self.timeout)


class MediaBrowserClient(_Base):
    """Jellyfin or Emby: one ``POST /Library/Media/Updated`` per batch."""

    def __init__(self, kind: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.kind = kind

    def _auth(self) -> dict[str, str]:
        token = self.token()
        if self.kind == "jellyfin":
            return {"Authorization": f'MediaBrowser Token="{token}"'}
        return {"X-Emby-Token": token}

    def refresh(self, batch: Mapping[str, Sequence[str]]) -> dict[str, Outcome]:
        """One request carrying every video (or the folder when none is known)."""
        updates = [
            {"Path": map_path(p, self.path_map), "UpdateType": "Modified"}
            for folder, videos in batch.items()
            for p in (sorted(set(videos)) or [folder])
        ]
        headers = {"Content-Type": "application/json", **self._auth()}
        body = json.dumps({"Updates": updates}).encode()
        try:
            self._call("POST", "/Library/Media/Updated", headers, body)
        except MediaServerError as err:
            return {folder: err for folder in batch}
        return {folder: None for folder in batch}


class PlexClient(_Base):
    """Plex: a partial scan of each folder in every library section that contains it."""

    kind = "plex"
    SECTIONS_TTL = 300.0
    REFETCH_AFTER = 30.0  # a folder outside every known section refetches at most this often

    def __init__(self, clock: Callable[[], float] = time.monotonic, **kw: Any) -> None:
        super().__init__(**kw)
        self._clock = clock
        self._sections: list[tuple[str, str]] = []  # (section key, location path)
        self._fetched_at: float | None = None

    def sections(self, *, refetch: bool = False) -> list[tuple[str, str]]:
        """(section key, Location path) pairs from ``GET /library/sections``, cached."""
        now = self._clock()
        stale = self._fetched_at is None or now - self._fetched_at > self.SECTIONS_TTL
        if refetch or stale:
            resp = self._call("GET", "/library/sections", {"X-Plex-Token": self.token()})
            self._sections = _parse_sections(resp)
            self._fetched_at = now
        return self._sections

    def sections_for(self, folder: str) -> list[str]:
        """Keys of the sections whose locations contain ``folder`` (server path)."""
        keys = _containing(self.sections(), folder)
        fetched_at = self._fetched_at or 0.0
        if not keys and self._clock() - fetched_at > self.REFETCH_AFTER:
            keys = _containing(self.sections(refetch=True), folder)
        return keys

    def refresh(self, batch: Mapping[str, Sequence[str]]) -> dict[str, Outcome]:
        """One ``/refresh?path=`` per folder and section; per-folder outcomes."""
        outcomes: dict[str, Outcome] = {}
        for folder in batch:
            server_folder = map_path(folder, self.path_map)
            try:
                keys = self.sections_for(server_folder)
                if not keys:
                    raise MediaServerRejected(
                        f"no Plex library section contains {server_folder}",
                        hint="add the folder to a library, or set media_server.path_map",
                    )
                for key in keys:
                    query = urllib.parse.urlencode({"path": server_folder})
                    path = f"/library/sections/{urllib.parse.quote(key)}/refresh?{query}"
                    self._call("GET", path, {"X-Plex-Token": self.token()})
                outcomes[folder] = None
            except MediaServerError as err:
                outcomes[folder] = err
        return outcomes


def _parse_sections(resp: _Response) -> list[tuple[str, str]]:
    """(key, location) pairs from the XML (default) or JSON form of /library/sections."""
    try:
        if "json" in resp.content_type or resp.body.lstrip().startswith(b"{"):
            container = json.loads(resp.body)["MediaContainer"]
            return [
                (str(d["key"]), str(loc["path"]))
                for d in container.get("Directory", [])
                for loc in d.get("Location", [])
            ]
        root = ET.fromstring(resp.body)
        return [
            (d.get("key", ""), loc.get("path", ""))
            for d in root.iter("Directory")
            for loc in d.iter("Location")
            if d.get("key") and loc.get("path")
        ]
    except (ValueError, KeyError, TypeError, ET.ParseError) as err:
        raise MediaServerRejected(f"GET /library/sections: unreadable answer ({err})") from None


def _containing(sections: list[tuple[str, str]], folder: str) -> list[str]:
    folder = folder.rstrip("/") or "/"
    keys: list[str] = []
    for key, location in sections:
        loc = location.rstrip("/") or "/"
        if (folder == loc or folder.startswith(loc.rstrip("/") + "/")) and key not in keys:
            keys.append(key)
    return keys


def make_client(settings: MediaServerSettings, environ: Mapping[str, str]) -> MediaServerClient:
    """The client for ``settings.kind``; checks now that a token is available (ConfigError)."""
    resolve_token(settings, environ)  # fail at startup, not at the first refresh
    environ = dict(environ)

    def token() -> str:
        try:
            return resolve_token(settings, environ)
        except ConfigError as err:  # the token file went away meanwhile: this batch fails
            raise MediaServerAuthError(err.errors[0]) from None

    assert settings.url is not None  # config checks: required with a kind
    common: dict[str, Any] = {
        "url": settings.url,
        "token": token,
        "path_map": tuple(settings.path_map.items()),
        "timeout": settings.timeout,
    }
    if settings.kind == "plex":
        return PlexClient(**common)
    return MediaBrowserClient(settings.kind, **common)
