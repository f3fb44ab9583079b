"""The ledger and node settings: the dsn from the file, a file, or the environment (for
secrets), located one-line errors, and the single-server default that needs nothing."""

# ruff: noqa: E501

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.config import LedgerSettings, NodeSettings, load_config
from daemon.errors import ConfigError
from tests.config.support import write


def errors(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env or {})
    return info.value.errors


def test_the_default_is_sqlite_and_needs_no_dsn(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "inbox: in\n"), env={"WHISPERD_LEDGER_DSN": "host=x"})
    assert cfg.ledger == LedgerSettings() and cfg.ledger.backend == "sqlite"
    assert cfg.ledger.dsn is None  # the variable only matters for postgresql
    assert cfg.node == NodeSettings()


def test_the_dsn_comes_from_the_environment_then_a_file_then_the_config(tmp_path: Path) -> None:
    secret = tmp_path / "ledger.dsn"
    secret.write_text("host=db dbname=whisperd password=s3cret\n")
    path = write(tmp_path, "ledger: {backend: PostgreSQL, dsn: host=fromfile, dsn_file: ledger.dsn}\n"
                           "node: {name: gpu-1.a, models: [tiny.en, base]}\n")  # fmt: skip
    env = {"WHISPERD_LEDGER_DSN": "host=fromenv"}
    assert load_config(path, env=env).ledger.dsn == "host=fromenv"
    cfg = load_config(path, env={})
    assert (cfg.ledger.backend, cfg.ledger.dsn) == (
        "postgresql",
        "host=db dbname=whisperd password=s3cret",
    )
    assert cfg.node.name == "gpu-1.a" and cfg.node.models == ("tiny.en", "base")
    inline = write(tmp_path, "ledger: {backend: postgresql, dsn: 'host=inline'}\n", name="b.yaml")
    assert load_config(inline, env={}).ledger.dsn == "host=inline"


def test_ledger_and_node_errors_are_located(tmp_path: Path) -> None:
    missing = write(tmp_path, "ledger: {backend: postgresql}\n")
    assert errors(missing) == [
        "ledger.dsn: required for backend postgresql (or set $WHISPERD_LEDGER_DSN, or ledger.dsn_file)"
    ]
    assert errors(write(tmp_path, "ledger: {backend: postgresql, dsn_file: nope.dsn}\n")) == [
        f"ledger.dsn_file: cannot read {tmp_path / 'nope.dsn'}: No such file or directory"
    ]
    (tmp_path / "empty.dsn").write_text("\n")
    assert errors(write(tmp_path, "ledger: {backend: postgresql, dsn_file: empty.dsn}\n")) == [
        f"ledger.dsn_file: {tmp_path / 'empty.dsn'} is empty"
    ]
    bad = write(
        tmp_path,
        "ledger: {backend: mysql, lease_seconds: 0}\nnode: {name: 'a b', models: [nope]}\n",
    )
    assert errors(bad) == [
        "ledger.backend: 'mysql' is not a ledger backend (choose from sqlite, postgresql)",
        "ledger.lease_seconds: must be a number > 0, got 0",
        "node.name: must be a name of letters, digits, '.', '_' or '-' (at most 63), got 'a b'",
        f"node.models[0]: 'nope' is not a Whisper model, a checkpoint file, or a model imported into {tmp_path.parent / 'models'} (see 'whisperd models list')",
    ]
