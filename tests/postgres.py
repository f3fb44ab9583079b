"""A throwaway PostgreSQL server for the tests: initdb + pg_ctl on a free 127.0.0.1 port.

Debian's ``postgresql`` package (installed by scripts/setup) provides the binaries in
/usr/lib/postgresql/<version>/bin; the Debian default cluster is never used. initdb refuses
to run as root, so as root the server runs as the ``postgres`` system user, in a folder that
user owns. ``$WHISPERD_TEST_PG_DSN`` points the tests at an existing server instead (each
test still gets a database of its own). Without either, the tests that need PostgreSQL
skip, saying why (:func:`unavailable`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DSN_VAR = "WHISPERD_TEST_PG_DSN"


def _bindir() -> Path | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def unavailable() -> str | None:
    """Why no PostgreSQL can be had here, or None when one can."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'whisperd[postgresql]')"
    if os.environ.get(DSN_VAR):
        return None
    if _bindir() is None:
        return "no PostgreSQL server binaries (install Debian's postgresql: scripts/setup does)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to run the server as"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One PostgreSQL server: started once per test session, databases made per test."""

    def __init__(self, options: str = "") -> None:
        self.external = os.environ.get(DSN_VAR)
        self.options = options  # more server settings ("-c name=value ...")
        self.port = 0
        self.root: Path | None = None
        self._count = 0
        if not self.external:
            self._init()
            self.start()

    # --- the server -----------------------------------------------------------------------

    def _as_owner(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv

    def _run(self, argv: list[str], timeout: float = 120) -> None:
        result = subprocess.run(self._as_owner(argv), capture_output=True, text=True,
                                timeout=timeout, check=False)  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr or result.stdout}")

    def _init(self) -> None:
        bindir = _bindir()
        assert bindir is not None
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="whisperd-pg-"))
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self.data = self.root / "data"
        self.port = _free_port()
        self._run([str(bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
                   "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"])  # fmt: skip

    def start(self) -> None:
        """Start (or start again after :meth:`stop`) on the same port."""
        assert self.root is not None
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c full_page_writes=off -c max_connections=200 "
                   f"{self.options}")  # fmt: skip
        log = str(self.root / "server.log")
        self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", log, "-o", options,
                   "-w", "-t", "60", "start"])  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        assert self.root is not None
        self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w",
                   "stop"])  # fmt: skip

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop the server (every connection drops), wait, start it again."""
        self.stop("fast")
        time.sleep(down_seconds)  # the outage itself is what is tested
        self.start()

    def close(self) -> None:
        if self.root is None:
            return
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    # --- databases --------------------------------------------------------------------------

    def dsn(self, dbname: str = "postgres") -> str:
        if self.external:
            from psycopg.conninfo import make_conninfo

            return make_conninfo(self.external, dbname=dbname)
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"

    def create_database(self) -> str:
        """A new empty database; its dsn."""
        import psycopg

        self._count += 1
        name = f"whisperd_test_{os.getpid()}_{self._count}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def drop_database(self, dsn: str) -> None:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict

        name = conninfo_to_dict(dsn)["dbname"]
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
