"""Media-server clients against a real HTTP server on 127.0.0.1: the exact requests each
kind sends (as each server documents its API), Plex's section lookup, token sources and
error classification."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.config import MediaServerSettings
from daemon.errors import (
    ConfigError,
    MediaServerAuthError,
    MediaServerRejected,
    MediaServerUnavailable,
)
from daemon.mediaserver import PlexClient, make_client, map_path, resolve_token
from tests.mediaserver.httpserver import RecordingServer

PLEX_SECTIONS = b"""<?xml version="1.0" encoding="UTF-8"?>
<MediaContainer size="3" title1="Plex Library">
<Directory key="1" type="movie" title="Movies" agent="tv.plex.agents.movie">
  <Location id="1" path="/media/Movies" />
</Directory>
<Directory key="2" type="show" title="TV Shows"><Location id="2" path="/media/TV" /></Directory>
<Directory key="7" type="show" title="Kids"><Location id="3" path="/media/TV/Kids" />
  <Location id="4" path="/media/Cartoons" /></Directory>
</MediaContainer>"""


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    srv = RecordingServer(hang_seconds=1.0).start()
    yield srv
    srv.stop()


def config(server: RecordingServer, kind: str, **kw: object) -> MediaServerSettings:
    return MediaServerSettings(kind=kind, url=server.url, token="s3cret", **kw)  # type: ignore[arg-type]


def MediaServerConfig(kind: str, url: str, **kw: object) -> MediaServerSettings:
    return MediaServerSettings(kind=kind, url=url, **kw)  # type: ignore[arg-type]


def test_jellyfin_posts_every_video_with_the_authorization_header(server: RecordingServer) -> None:
    client = make_client(config(server, "jellyfin"), {})
    season, film = "/lib/TV/Show/Season 01", "/lib/Movies/Film (1946)"
    batch = {season: [f"{season}/E01.mkv", f"{season}/E02.mkv"], film: [f"{film}/Film (1946).mkv"]}
    assert client.refresh(batch) == dict.fromkeys(batch)
    (call,) = server.calls
    assert (call.method, call.path) == ("POST", "/Library/Media/Updated")
    assert call.headers["authorization"] == 'MediaBrowser Token="s3cret"'
    assert "x-emby-token" not in call.headers  # Jellyfin may refuse both at once
    assert call.headers["content-type"] == "application/json"
    assert call.json() == {
        "Updates": [
            {"Path": "/lib/TV/Show/Season 01/E01.mkv", "UpdateType": "Modified"},
            {"Path": "/lib/TV/Show/Season 01/E02.mkv", "UpdateType": "Modified"},
            {"Path": "/lib/Movies/Film (1946)/Film (1946).mkv", "UpdateType": "Modified"},
        ]
    }


def test_emby_uses_x_emby_token_and_the_folder_when_no_video_is_known(
    server: RecordingServer,
) -> None:
    client = make_client(config(server, "emby", path_map={"/mnt/media": "/data"}), {})
    client.refresh({"/mnt/media/Movies/Film": []})
    (call,) = server.calls
    assert call.headers["x-emby-token"] == "s3cret" and "authorization" not in call.headers
    assert call.json() == {"Updates": [{"Path": "/data/Movies/Film", "UpdateType": "Modified"}]}


def test_plex_finds_the_section_then_scans_only_the_folder(server: RecordingServer) -> None:
    server.route("GET", "/library/sections", (200, "text/xml;charset=utf-8", PLEX_SECTIONS))
    client = make_client(config(server, "plex"), {})
    outcomes = client.refresh(
        {"/media/TV/Show/Season 01": ["x.mkv"], "/media/Movies/Film (1946)": []}
    )
    assert outcomes == {"/media/TV/Show/Season 01": None, "/media/Movies/Film (1946)": None}
    assert len(server.calls_to("GET", "/library/sections")) == 1  # listed once, then cached
    scans = [(c.path, c.query["path"]) for c in server.calls if c.path.endswith("/refresh")]
    assert scans == [
        ("/library/sections/2/refresh", ["/media/TV/Show/Season 01"]),
        ("/library/sections/1/refresh", ["/media/Movies/Film (1946)"]),
    ]
    assert all(c.headers["x-plex-token"] == "s3cret" for c in server.calls)
    assert all("s3cret" not in c.path and not c.query.get("X-Plex-Token") for c in server.calls)


def test_plex_scans_every_section_that_contains_the_folder(server: RecordingServer) -> None:
    server.route("GET", "/library/sections", (200, "text/xml", PLEX_SECTIONS))
    make_client(config(server, "plex"), {}).refresh({"/media/TV/Kids/Bluey/Season 1": []})
    assert [c.path for c in server.calls if c.path.endswith("/refresh")] == [
        "/library/sections/2/refresh",
        "/library/sections/7/refresh",
    ]


def test_plex_json_sections_and_a_folder_outside_every_library(server: RecordingServer) -> None:
    body = json.dumps({"MediaContainer": {"Directory": [
        {"key": "3", "Location": [{"id": 9, "path": "/srv/Movies"}]}]}}).encode()  # fmt: skip
    server.route("GET", "/library/sections", (200, "application/json", body))
    clock = [0.0]
    client = PlexClient(url=server.url, token=lambda: "s3cret", clock=lambda: clock[0])
    outcome = client.refresh({"/srv/Movies/A": [], "/elsewhere/B": []})
    assert outcome["/srv/Movies/A"] is None
    assert isinstance(outcome["/elsewhere/B"], MediaServerRejected)
    assert "no Plex library section contains /elsewhere/B" in str(outcome["/elsewhere/B"])
    clock[0] = 31.0  # a miss refetches the list, at most every 30 s (a library may be new)
    client.refresh({"/elsewhere/B": []})
    assert len(server.calls_to("GET", "/library/sections")) == 2


@pytest.mark.parametrize(
    ("answer", "error", "transient"),
    [
        (500, MediaServerUnavailable, True),
        (503, MediaServerUnavailable, True),
        (429, MediaServerUnavailable, True),
        ("hang", MediaServerUnavailable, True),
        (401, MediaServerAuthError, False),
        (403, MediaServerAuthError, False),
        (404, MediaServerRejected, False),
    ],
)
def test_errors_are_classified(
    server: RecordingServer, answer: object, error: type, transient: bool
) -> None:
    server.script("POST", "/Library/Media/Updated", [answer])  # type: ignore[list-item]
    client = make_client(config(server, "jellyfin", timeout=0.3), {})
    outcome = client.refresh({"/lib/A": ["/lib/A/a.mkv"]})["/lib/A"]
    assert isinstance(outcome, error) and outcome.transient is transient
    assert "s3cret" not in str(outcome)


def test_a_closed_port_is_a_transient_failure() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens
    client = make_client(MediaServerConfig("jellyfin", f"http://127.0.0.1:{port}", token="t"), {})
    assert isinstance(client.refresh({"/a": []})["/a"], MediaServerUnavailable)


def test_token_sources_in_order(tmp_path: Path) -> None:
    file = tmp_path / "token"
    file.write_text("from-file\n", encoding="utf-8")
    env = {"WHISPERD_MEDIA_TOKEN": "from-env"}
    url = "http://127.0.0.1:1"
    assert (
        resolve_token(MediaServerConfig("plex", url, token="inline", token_file=str(file)), env)
        == "inline"
    )
    assert resolve_token(MediaServerConfig("plex", url, token_file=str(file)), env) == "from-file"
    assert resolve_token(MediaServerConfig("plex", url), env) == "from-env"
    with pytest.raises(ConfigError, match="no token"):
        resolve_token(MediaServerConfig("plex", url), {})
    with pytest.raises(ConfigError, match="cannot read"):
        resolve_token(MediaServerConfig("plex", url, token_file=str(tmp_path / "nope")), env)
    with pytest.raises(ConfigError, match=r"media_server: no token \(set media_server.token"):
        make_client(MediaServerConfig("jellyfin", url), {})  # fails at startup, not later


def test_a_corrected_token_file_is_used_without_restart(
    server: RecordingServer, tmp_path: Path
) -> None:
    file = tmp_path / "token"
    file.write_text("old", encoding="utf-8")
    client = make_client(MediaServerConfig("jellyfin", server.url, token_file=str(file)), {})
    client.refresh({"/a": []})
    file.write_text("new\n", encoding="utf-8")
    client.refresh({"/a": []})
    assert [c.headers["authorization"] for c in server.calls] == [
        'MediaBrowser Token="old"',
        'MediaBrowser Token="new"',
    ]


def test_path_map_replaces_the_longest_matching_prefix() -> None:
    pm = (("/mnt/media", "/data"), ("/mnt/media/tv", "/tv"))
    assert map_path("/mnt/media/tv/Show/S01", pm) == "/tv/Show/S01"
    assert map_path("/mnt/media/Movies/A", pm) == "/data/Movies/A"
    assert map_path("/mnt/media", pm) == "/data"
    assert map_path("/mnt/mediaX/A", pm) == "/mnt/mediaX/A"  # whole components only
    assert map_path("/other/A", pm) == "/other/A"
