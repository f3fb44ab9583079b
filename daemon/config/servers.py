"""The settings of the servers around the service: the media server told after subtitles
were written beside a video (``media_server``), the job ledger (``ledger``: SQLite in
``state_dir``, or PostgreSQL shared by several servers) and this server among them
(``node``). Sections of :class:`daemon.config.schema.Config`.
"""

from __future__ import annotations

from pydantic import Field

from daemon.config.library import HttpUrl, PathMap, Secret, ServerKind
from daemon.config.values import (
    BackendName,
    Count,
    ModelRefs,
    NodeName,
    OptionalFile,
    OptionalFolder,
    OptionalText,
    Positive,
    Seconds,
    Section,
)


class MediaServerSettings(Section):
    """The media server told to rescan a folder once subtitles were written beside a video."""

    kind: ServerKind = Field(
        "none", description="none (no server is told), jellyfin, emby or plex."
    )
    url: HttpUrl = Field(
        None, description="The server's base URL, e.g. http://jellyfin:8096 (required with a kind)."
    )
    token: Secret = Field(
        None,
        description="API key (Jellyfin/Emby dashboard) or X-Plex-Token; null: read token_file, "
        "else $WHISPERD_MEDIA_TOKEN.",
    )
    token_file: OptionalFolder = Field(
        None, description="A file whose first line is the token (re-read on every request)."
    )
    path_map: PathMap = Field(
        default_factory=dict,
        description="Local folder → the same folder as the server sees it "
        "({/mnt/media: /data}), for a server in a container or on another machine.",
    )
    batch_seconds: Seconds = Field(
        10.0, description="Seconds to gather the videos of one folder into one rescan."
    )
    min_interval: Seconds = Field(2.0, description="Seconds between two requests batches.")
    timeout: Positive = Field(10.0, description="Seconds an HTTP request may take.")
    max_attempts: Count = Field(
        5, description="Tries per folder when the server is down or busy, with a backoff."
    )


class LedgerSettings(Section):
    """Where the job ledger lives: SQLite in state_dir (one server), or PostgreSQL (several)."""

    backend: BackendName = Field(
        "sqlite",
        description="sqlite (in state_dir, one server) or postgresql (several servers share "
        "one inbox; pip install 'whisperd[postgresql]').",
    )
    dsn: OptionalText = Field(
        None,
        description="postgresql: the libpq connection string or URI; $WHISPERD_LEDGER_DSN "
        "overrides it (keep passwords out of this file: use it, dsn_file or ~/.pgpass).",
    )
    dsn_file: OptionalFile = Field(
        None, description="postgresql: a file holding the connection string, instead of dsn."
    )
    lease_seconds: Positive = Field(
        60.0,
        description="postgresql: a job claimed by a server that stops renewing its lease "
        "(dead, paused, cut off) is taken by another after this many seconds.",
    )


class NodeSettings(Section):
    """This server among several sharing one PostgreSQL ledger."""

    name: NodeName = Field(
        None, description="This server's name in the ledger, unique among live ones; null: "
        "the host name.",
    )  # fmt: skip
    models: ModelRefs | None = Field(
        None,
        description="The only models this server transcribes with (its GPU may be too small "
        "for others); null: any.",
    )
