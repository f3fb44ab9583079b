"""metrics:, notify:, jobs.history_days and models.unload_after: valid values load, every
problem is one located line, and no credential ever shows in a message."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from daemon.config import load_config, with_overrides
from daemon.config.operate import (
    AppriseTarget,
    WebhookTarget,
    is_loopback,
    parse_listen,
    validate_targets,
)
from daemon.errors import ConfigError
from tests.config.support import write

EXAMPLE = """
notify:
  - webhook: https://example.org/hook
    secret: "s3cret"
    on: [done, failed, folder_idle]
  - apprise: "mailto://user:pass@example.org"
    on: [folder_idle, failed]
    folders: [clients/*]
"""


def load(tmp_path: Path, text: str):
    return load_config(write(tmp_path, f"inbox: {tmp_path}/in\n" + text))


def errors(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    return caught.value.errors


def test_the_documented_notify_example_loads(tmp_path: Path) -> None:
    hook, mail = load(tmp_path, EXAMPLE).notify
    assert isinstance(hook, WebhookTarget) and isinstance(mail, AppriseTarget)
    assert hook.secret is not None and hook.secret.get_secret_value() == "s3cret"
    assert hook.on == ("done", "failed", "folder_idle") and hook.timeout == 10
    assert mail.on == ("folder_idle", "failed") and mail.folders == ("clients/*",)
    assert "s3cret" not in repr(hook) and "pass" not in mail.label
    with pytest.raises(pydantic.ValidationError):
        hook.timeout = 1  # type: ignore[misc]


def test_defaults_send_everything_to_webhooks_and_summaries_to_people() -> None:
    (hook, chat), problems = validate_targets(
        [{"webhook": "https://example.org/h"}, {"apprise": "ntfy://topic"}]
    )
    assert problems == []
    assert hook.on == ("done", "failed", "folder_idle") and chat.on == ("failed", "folder_idle")


def test_every_notify_problem_is_reported_at_once_with_its_location(tmp_path: Path) -> None:
    found = errors(tmp_path, """
notify:
  - {webhook: "ftp://user:hunter2@example.org/x", on: [don], secrt: x}
  - {apprise: "nonsense://user:hunter2@host", secret: s}
  - {webhook: "https://example.org/h", apprise: "ntfy://t"}
  - {webhook: "https://example.org/h", timeout: 0, folders: [/abs], on: []}
  - "https://example.org/h"
  - {on: [done]}
""")  # fmt: skip
    assert found == [
        "notify[0].webhook: must be an http:// or https:// URL with a host, got ftp://example.org",
        "notify[0].on: unknown event 'don' (did you mean 'done'?)",
        "notify[0].secrt: unknown key (did you mean 'secret'?)",
        "notify[1].secret: applies to webhooks only (an Apprise URL carries its own credentials)",
        "notify[2]: give either 'webhook' or 'apprise', not both (two entries)",
        "notify[3].folders[0]: must be relative to the inbox, like 'es' or 'clients/*'",
        "notify[3].on: must be a non-empty list of events (done, failed, folder_idle)",
        "notify[3].timeout: must be a number of seconds > 0, got 0",
        "notify[4]: must be a mapping with a 'webhook' or an 'apprise' URL",
        "notify[5]: needs a 'webhook' URL or an 'apprise' URL",
    ]
    assert all("hunter2" not in line for line in found)
    found = errors(tmp_path, "notify:\n  - {apprise: 'nonsense://user:hunter2@host'}\n")
    assert found == [
        "notify[0].apprise: not a URL Apprise can use (nonsense://host); see "
        "https://github.com/caronc/apprise/wiki for the URL of each service"
    ]


def test_two_targets_with_one_key_are_refused_unless_named() -> None:
    same = {"webhook": "https://example.org/h"}
    _, problems = validate_targets([same, same])
    assert problems == [
        (("notify", 1, "webhook"), "same URL as notify[0]; give each target a distinct 'name'")
    ]
    targets, problems = validate_targets([{**same, "name": "a"}, {**same, "name": "b"}])
    assert problems == [] and [t.key for t in targets] == ["a", "b"]


def test_an_empty_secret_and_a_list_that_is_not_are_refused() -> None:
    _, problems = validate_targets([{"webhook": "https://example.org/h", "secret": ""}])
    message = "must be a non-empty text (quote it if YAML reads it as a number)"
    assert problems == [(("notify", 0, "secret"), message)]
    assert validate_targets(None) == ((), [])
    assert validate_targets({"webhook": "x"})[1] == [
        (("notify",), "must be a list of targets (webhook: or apprise: entries), got a mapping")
    ]


@pytest.mark.parametrize(
    ("folders", "folder", "wanted"),
    [
        ((), "anything/below", True),
        (("clients/*",), "clients/acme", True),
        (("clients/*",), "clients/acme/day1", True),
        (("clients/*",), "clients", False),
        (("clients/*",), ".", False),
        ((".",), "x/y", True),
        (("es",), "es", True),
        (("es",), "est", False),
    ],
)
def test_folders_select_the_events_a_target_gets(
    folders: tuple[str, ...], folder: str, wanted: bool
) -> None:
    [target], _ = validate_targets([{"webhook": "https://example.org/h", "folders": list(folders)}])
    assert target.wants("done", folder) is wanted
    assert target.wants("folder_idle", folder) is wanted


def test_on_selects_the_events_and_the_yaml_boolean_key_is_on(tmp_path: Path) -> None:
    # 'on' unquoted is the boolean true in YAML 1.1 (yaml.safe_load)
    text = "notify:\n  - webhook: https://example.org/h\n    on: failed\n"
    [target] = load(tmp_path, text).notify
    assert target.wants("failed", ".") and not target.wants("done", ".")


def test_metrics_defaults_to_localhost_and_null_turns_it_off(tmp_path: Path) -> None:
    assert load(tmp_path, "").metrics.listen == "127.0.0.1:9464"  # type: ignore[union-attr]
    assert load(tmp_path, "metrics: null\n").metrics is None
    cfg = load(tmp_path, "metrics: {listen: '[::1]:0', auth: {user: ops, password: pw}}\n")
    assert cfg.metrics is not None and cfg.metrics.auth is not None
    assert cfg.metrics.listen == "[::1]:0" and "pw" not in repr(cfg.metrics)
    again = with_overrides(cfg, language="en")  # the settings survive a round trip
    assert again.metrics == cfg.metrics and again.notify == cfg.notify


def test_metrics_problems_are_located(tmp_path: Path) -> None:
    assert errors(tmp_path, "metrics: {listen: ':9464', auth: {user: 'a:b'}, port: 1}\n") == [
        "metrics.listen: ':9464' has no host; write 127.0.0.1:9464 for this machine only, "
        "or 0.0.0.0:9464 for every interface",
        "metrics.auth.user: must not contain ':' (HTTP basic auth separates user and "
        "password with it)",
        "metrics.auth.password: required",
        "metrics.port: unknown key",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
        ("[::1]:9464", ("::1", 9464)),
        ("localhost:0", ("localhost", 0)),
    ],
)
def test_listen_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("9464", "has no port"),
        ("::1:9464", "put an IPv6 address in brackets"),
        ("[::1]9464", r"is written '\[address\]:port'"),
        ("[zz]:1", "is not an IPv6 address"),
        ("host:99999", "is not a port number"),
        ("", "must be 'host:port'"),
    ],
)
def test_bad_listen_addresses_say_why(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_listen(text)


def test_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")


def test_history_and_unload_take_null_for_never(tmp_path: Path) -> None:
    cfg = load(tmp_path, "jobs: {history_days: null}\nmodels: {unload_after: null}\n")
    assert cfg.jobs.history_days is None and cfg.models.unload_after is None
    cfg = load(tmp_path, "")
    assert (cfg.jobs.history_days, cfg.models.unload_after) == (90, 600)
    assert errors(tmp_path, "models: {unload_after: -1}\n") == [
        "models.unload_after: must be a number > 0 or null, got -1"
    ]
