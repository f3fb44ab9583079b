"""Settings for operating the service: the metrics listener and the notification targets.

``metrics:`` (:class:`MetricsSettings`) is where ``/metrics``, ``/api/status`` and the status
page listen; ``null`` turns the listener off. The address is checked by
:func:`parse_listen`: an empty host is refused rather than read as "every interface", so the
listener reaches the network only where the file says ``0.0.0.0`` or ``[::]``.

``notify:`` is a list of targets, each a :class:`WebhookTarget` (an HTTP POST of the event's
JSON document, signed with HMAC-SHA256 when ``secret`` is set) or an :class:`AppriseTarget`
(any service Apprise knows), with the events it wants (``on``) and optionally the inbox
folders it is about (``folders``: rule patterns, ``*`` never crosses ``/``, a pattern covers
the folders below it). :func:`validate_targets` checks the list entry by entry, located like
every other setting (``notify[1].on: unknown event 'don' (did you mean 'done'?)``); a URL in
a message keeps only ``scheme://host:port``, so credentials never show. ``yaml.safe_load``
reads a bare ``on`` key as the boolean true (YAML 1.1): a target's ``True`` key is ``on``.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, SecretStr, ValidationError

from daemon.config.messages import Loc, fail, show, translate
from daemon.config.patterns import rule_key, rule_matches
from daemon.config.values import Section

DEFAULT_LISTEN = "127.0.0.1:9464"
EVENTS = ("done", "failed", "folder_idle")
EventKind = Literal["done", "failed", "folder_idle"]
_EXAMPLE = "e.g. 127.0.0.1:9464 or [::1]:9464"


# --- the listener -------------------------------------------------------------------------


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise ValueError(f"{text!r} is not a port number (0-65535)")
    return int(text)


def parse_listen(text: object) -> tuple[str, int]:
    """``host:port`` or ``[ipv6]:port`` as ``(host, port)``; ValueError with one line if not."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"must be 'host:port' ({_EXAMPLE}), got {show(text)}")
    text = text.strip()
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise ValueError(f"{text!r}: an IPv6 address is written '[address]:port' ({_EXAMPLE})")
        try:
            ipaddress.IPv6Address(host.split("%")[0])
        except ValueError:
            raise ValueError(f"{text!r}: {host!r} is not an IPv6 address") from None
        return host, _port(port)
    host, sep, port = text.rpartition(":")
    if not sep:
        raise ValueError(f"{text!r} has no port ({_EXAMPLE})")
    if ":" in host:
        raise ValueError(f"{text!r}: put an IPv6 address in brackets, e.g. [::1]:9464")
    if not host:
        raise ValueError(
            f"{text!r} has no host; write 127.0.0.1{text} for this machine only, "
            f"or 0.0.0.0{text} for every interface"
        )
    return host, _port(port)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost (what only this machine can reach)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _listen(value: Any) -> str:
    try:
        parse_listen(value)
    except ValueError as err:
        fail(str(err))
    return str(value).strip()


def _user(value: Any) -> str:
    if not isinstance(value, str) or not value:
        fail(f"must be a non-empty text, got {show(value)}")
    if ":" in value:
        fail("must not contain ':' (HTTP basic auth separates user and password with it)")
    return value


def _secret(value: Any) -> Any:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if not isinstance(value, str) or not value:
        fail("must be a non-empty text (quote it if YAML reads it as a number)")
    return value


Secret = Annotated[SecretStr, BeforeValidator(_secret)]


class BasicAuthSettings(Section):
    """One user and password for HTTP basic auth on every page of the listener."""

    user: Annotated[str, BeforeValidator(_user)] = Field(description="User name.")
    password: Secret = Field(description="Password (the file should be readable by few).")


class MetricsSettings(Section):
    """The HTTP listener: /metrics (Prometheus), /api/status and the status page at /."""

    listen: Annotated[str, BeforeValidator(_listen)] = Field(
        DEFAULT_LISTEN,
        description="host:port to listen on ([::1]:9464 for IPv6); 0.0.0.0 only on purpose.",
    )
    auth: BasicAuthSettings | None = Field(
        None, description="Basic auth as {user, password} for every page; null: none."
    )


# --- notification targets -----------------------------------------------------------------


def redact(url: str) -> str:
    """``scheme://host[:port]`` of a URL: safe to log (no user, password, path or query)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparsable URL>"
    return f"{parts.scheme}://{host}{port}" if parts.scheme else "<URL>"


def _webhook_url(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        fail("must be an http:// or https:// URL")
    text = value.strip()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        fail(f"not a valid URL ({exc}): {redact(text)}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        fail(f"must be an http:// or https:// URL with a host, got {redact(text)}")
    return text


def _apprise_url(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        fail("must be an Apprise URL, like 'mailto://user:pass@example.org'")
    text = value.strip()
    try:
        import apprise  # here: a configuration without Apprise targets loads no plugins
    except ImportError:
        fail("needs the apprise package (pip install apprise)")
    if not apprise.Apprise().add(text):
        fail(
            f"not a URL Apprise can use ({redact(text)}); "
            "see https://github.com/caronc/apprise/wiki for the URL of each service"
        )
    return text


def _events(value: Any) -> Any:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not value:
        fail(f"must be a non-empty list of events ({', '.join(EVENTS)})")
    for item in value:
        if item not in EVENTS:
            close = difflib.get_close_matches(str(item), EVENTS, 1)
            hint = f"did you mean {close[0]!r}?" if close else f"events: {', '.join(EVENTS)}"
            fail(f"unknown event {show(item)} ({hint})")
    if len(set(value)) != len(value):
        fail("lists an event twice")
    return tuple(value)


def _folder_pattern(value: Any) -> str:
    if isinstance(value, str) and value.strip() in (".", "./"):
        return "."  # the whole inbox
    key, problem = rule_key(value)
    if problem:
        fail(problem)
    return key


def _name(value: Any) -> Any:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        fail("must be a non-empty text")
    return value.strip() if isinstance(value, str) else value


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        fail(f"must be a number of seconds > 0, got {show(value)}")
    return float(value)


Events = Annotated[tuple[EventKind, ...], BeforeValidator(_events)]
Seconds = Annotated[float, BeforeValidator(_seconds)]


class _Target(Section):
    name: Annotated[str | None, BeforeValidator(_name)] = Field(
        None,
        description="A label for logs; also the key its pending notifications are stored "
        "under, so renaming a target (or, without a name, changing its URL) drops its backlog.",
    )
    folders: tuple[Annotated[str, BeforeValidator(_folder_pattern)], ...] = Field(
        (), description="Inbox folders (patterns like rules) this target hears about; []: all."
    )
    give_up_after: Seconds = Field(
        86400.0, description="Seconds after the event when an undelivered notification is dropped."
    )

    @property
    def url(self) -> str:
        raise NotImplementedError

    @property
    def kind(self) -> str:
        raise NotImplementedError

    @property
    def key(self) -> str:
        """Stable identity of this target in the delivery store."""
        return self.name or f"{self.kind}:{hashlib.sha256(self.url.encode()).hexdigest()[:16]}"

    @property
    def label(self) -> str:
        """How logs name this target (never with credentials)."""
        return self.name or f"{self.kind} {redact(self.url)}"

    def wants(self, event: str, folder: str) -> bool:
        """Whether this target hears of ``event`` about the inbox-relative ``folder``."""
        parts = tuple(p for p in PurePosixPath(folder).parts if p not in ("", ".", "/"))
        return event in self.on and (  # type: ignore[attr-defined]
            not self.folders or any(p == "." or rule_matches(p, parts) for p in self.folders)
        )


class WebhookTarget(_Target):
    """An HTTP POST of the event's JSON document."""

    webhook: Annotated[str, BeforeValidator(_webhook_url)] = Field(
        description="http(s) URL that receives a POST of the JSON document."
    )
    secret: Secret | None = Field(
        None,
        description="Signs each request: X-Whisperd-Signature: t=<unix>,v1=<HMAC-SHA256 hex>.",
    )
    on: Events = Field(EVENTS, description="Events sent: done, failed, folder_idle.")
    timeout: Seconds = Field(10.0, description="Seconds to wait for the receiver's answer.")

    @property
    def url(self) -> str:
        return self.webhook

    @property
    def kind(self) -> str:
        return "webhook"


class AppriseTarget(_Target):
    """A message (title and body) through any Apprise URL."""

    apprise: Annotated[str, BeforeValidator(_apprise_url)] = Field(
        description="Apprise URL: mailto://, slack://, msteams://, matrix://, ntfy://, ..."
    )
    on: Events = Field(("failed", "folder_idle"), description="Events sent to people.")
    timeout: Seconds = Field(30.0, description="Seconds one Apprise call may take.")

    @property
    def url(self) -> str:
        return self.apprise

    @property
    def kind(self) -> str:
        return "apprise"


NotifyTarget = WebhookTarget | AppriseTarget


def validate_targets(raw: Any) -> tuple[tuple[NotifyTarget, ...], list[tuple[Loc, str]]]:
    """The ``notify:`` list as targets, and every problem as (location, message)."""
    if raw is None:
        return (), []
    if not isinstance(raw, list | tuple):
        return (), [(("notify",), f"must be a list of targets (webhook: or apprise: entries), "
                                  f"got {show(raw)}")]  # fmt: skip
    targets: list[tuple[int, NotifyTarget]] = []
    problems: list[tuple[Loc, str]] = []
    for index, item in enumerate(raw):
        loc: Loc = ("notify", index)
        if isinstance(item, WebhookTarget | AppriseTarget):
            targets.append((index, item))
            continue
        if not isinstance(item, Mapping):
            problems.append((loc, "must be a mapping with a 'webhook' or an 'apprise' URL"))
            continue
        item = {("on" if key is True else str(key)): value for key, value in item.items()}
        if "webhook" in item and "apprise" in item:
            problems.append((loc, "give either 'webhook' or 'apprise', not both (two entries)"))
            continue
        model = WebhookTarget if "webhook" in item else AppriseTarget if "apprise" in item else None
        if model is None:
            problems.append((loc, "needs a 'webhook' URL or an 'apprise' URL"))
            continue
        if model is AppriseTarget and "secret" in item:
            problems.append(((*loc, "secret"), "applies to webhooks only (an Apprise URL "
                                               "carries its own credentials)"))  # fmt: skip
            continue
        try:
            targets.append((index, model.model_validate(item)))
        except ValidationError as exc:
            problems += [((*loc, *where), message) for where, message in translate(exc, model)]
    seen: dict[str, int] = {}
    for index, target in targets:
        first = seen.setdefault(target.key, index)
        if first != index:
            what = "name" if target.name else "URL"
            problems.append((("notify", index, "name" if target.name else target.kind),
                             f"same {what} as notify[{first}]; give each target a distinct "
                             "'name'"))  # fmt: skip
    return tuple(t for _, t in targets), problems
