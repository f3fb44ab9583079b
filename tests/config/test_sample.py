"""The shipped config/whisperd.yaml: it loads, and it documents the schema's defaults."""

from __future__ import annotations

import yaml
from pydantic import BaseModel

from daemon.config import (
    Config,
    JobSettings,
    JobsSettings,
    LedgerSettings,
    LogSettings,
    ModelsSettings,
    NodeSettings,
    WatchSettings,
    WorkerSettings,
    load_config,
)
from daemon.config.operate import AppriseTarget, MetricsSettings, WebhookTarget
from tests.config.support import SAMPLE

# --- the sample config --------------------------------------------------------------------


def test_sample_config_loads_with_documented_values() -> None:
    config = load_config(SAMPLE)
    root = SAMPLE.parent.parent
    assert (config.inbox, config.outbox) == (root / "inbox", root / "outbox")
    assert (config.state_dir, config.model_dir) == (root / "var", root / "models")
    assert config.defaults.model == "base"
    assert config.folders == {
        "es": {"language": "es"},
        "*/subtitles": {
            "formats": ("srt", "vtt"),
            "subtitles": {"max_line_width": 37},
        },
    }


def test_sample_config_values_are_the_schema_defaults() -> None:
    config = load_config(SAMPLE)
    assert config.defaults == JobSettings()
    assert config.watch == WatchSettings()
    assert config.jobs == JobsSettings()
    assert config.workers == (WorkerSettings(),)
    assert config.models == ModelsSettings()
    assert config.log == LogSettings()
    assert config.metrics == MetricsSettings()
    assert config.notify == ()
    assert config.ledger == LedgerSettings() and config.node == NodeSettings()


def test_every_notify_key_is_in_the_commented_example() -> None:
    """The notify example is comments (a live target would post from every install)."""
    text = SAMPLE.read_text(encoding="utf-8")
    example = text[text.index("# notify:") :]
    example_yaml = "\n".join(line.lstrip()[2:] for line in example.splitlines()
                              if line.lstrip().startswith("# "))  # fmt: skip
    targets = yaml.safe_load(example_yaml[example_yaml.index("notify:") :])["notify"]
    webhook, apprise = ({("on" if k is True else k) for k in target} for target in targets)
    assert set(WebhookTarget.model_fields) == webhook  # every key, shown once
    assert set(AppriseTarget.model_fields) <= apprise | webhook and "secret" not in apprise
    for model in (WebhookTarget, AppriseTarget):
        assert all(f.description for f in model.model_fields.values()), model
    cfg = load_config(SAMPLE)
    assert cfg.notify == ()


def _schema_keys(model: type[BaseModel], prefix: tuple[str, ...] = ()):
    """Every (dotted key, field) of the schema, descending into sections and workers."""
    for name, field in model.model_fields.items():
        if name in ("path", "notices"):  # set by the loader, not written in the file
            continue
        yield (*prefix, name), field
        if name == "notify":  # a list of targets, shown as a commented-out example
            continue
        inner = field.annotation
        while getattr(inner, "__args__", None) and not isinstance(inner, type):
            inner = inner.__args__[0]  # tuple[WorkerSettings, ...] -> WorkerSettings
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            yield from _schema_keys(inner, (*prefix, name))


def test_every_schema_key_is_described_and_commented_in_the_sample() -> None:
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    root = yaml.compose(SAMPLE.read_text(encoding="utf-8"))
    keys = list(_schema_keys(Config))
    names = [dotted for dotted, _ in keys]
    assert ("defaults", "subtitles", "max_line_width") in names and ("workers", "device") in names
    assert ("defaults", "vad", "speech_pad_ms") in names and (
        "defaults",
        "guard",
        "enabled",
    ) in names
    for dotted, field in keys:
        assert field.description, f"{'.'.join(dotted)} has no description"
        node, line = root, None
        for part in dotted:
            if isinstance(node, yaml.SequenceNode):  # workers: look inside the first item
                node = node.value[0]
            if isinstance(node, yaml.ScalarNode):  # 'auth: null': its keys named in the comment
                assert part in lines[line - 1], f"{'.'.join(dotted)} is not shown in the comment"
                break
            match = [(k, v) for k, v in node.value if k.value == part]
            assert match, f"{'.'.join(dotted)} is missing from {SAMPLE.name}"
            line, node = match[0][0].start_mark.line, match[0][1]
        commented = "#" in lines[line] or lines[line - 1].lstrip().startswith("#")
        assert commented, f"{'.'.join(dotted)} (line {line + 1}) has no comment"
