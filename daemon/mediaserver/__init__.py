"""The media server: telling Jellyfin, Emby or Plex to rescan a folder once subtitles were
written beside a video (``outputs_beside_source``), beside the data path.

Owns :mod:`.client` (the token, one HTTP client per kind, each following the server's
documented API) and :mod:`.refresher` (a background thread that batches rescans per
folder, rate-limits and retries them, and counts every outcome: a worker never waits for
the server, and no file fails because of it). :func:`start` builds both from the
``media_server`` settings; the service wires it to the workers.

May import: :mod:`daemon.config` and :mod:`daemon.errors`; nothing of the data path.
"""

from __future__ import annotations

from collections.abc import Mapping

from daemon.config import MediaServerSettings
from daemon.mediaserver.client import (
    TOKEN_ENV,
    MediaBrowserClient,
    MediaServerClient,
    PlexClient,
    make_client,
    map_path,
    resolve_token,
)
from daemon.mediaserver.refresher import Refresher


def start(settings: MediaServerSettings, environ: Mapping[str, str]) -> Refresher | None:
    """A running Refresher for ``settings``, or None with ``kind: none``.

    Raises :class:`~daemon.errors.ConfigError` when no token can be found.
    """
    if settings.kind == "none":
        return None
    client = make_client(settings, environ)
    return Refresher(
        client,
        window=settings.batch_seconds,
        min_interval=settings.min_interval,
        max_attempts=settings.max_attempts,
    )


__all__ = [
    "TOKEN_ENV",
    "MediaBrowserClient",
    "MediaServerClient",
    "PlexClient",
    "Refresher",
    "make_client",
    "map_path",
    "resolve_token",
    "start",
]
