"""Shared fixtures: the real models (imported once into models/) and the speech clips."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """models/ with tiny.en and base imported (scripts/setup does it; this covers a bare venv)."""
    from daemon import models
    from scripts.install_models import PACKAGES, source_dirs

    target = ROOT / "models"
    for name in PACKAGES:
        if not (target / f"{name}.pt").is_file():
            models.import_model(source_dirs(name), name, target)
    return target


@pytest.fixture(scope="session")
def library_media(tmp_path_factory: pytest.TempPathFactory):
    """Real videos of a media library (tests/librarymedia.py), built once per session."""
    from tests.librarymedia import LibraryMedia

    return LibraryMedia.build(tmp_path_factory.mktemp("library-media"))


@pytest.fixture(scope="session")
def pg_server():
    """A throwaway PostgreSQL server for the session (tests/postgres.py); skips without one."""
    from tests import postgres

    reason = postgres.unavailable()
    if reason:
        pytest.skip(f"no PostgreSQL for this test: {reason}")
    server = postgres.Server()
    yield server
    server.close()


@pytest.fixture
def pg_dsn(pg_server):
    """The dsn of a new, empty database on the session's server (dropped afterwards)."""
    dsn = pg_server.create_database()
    yield dsn
    pg_server.drop_database(dsn)


RawTexts = Callable[[str, Sequence], tuple[list[str], float]]


@pytest.fixture(scope="session")
def raw_openai(model_dir: Path) -> RawTexts:
    """``texts(model, clips)``: plain openai-whisper's texts (its own ffmpeg decoding, beam
    5, the language detected) and the seconds they took; computed once per session, as the
    CLI test and the engine comparison both measure against them."""
    import whisper

    from daemon import models

    done: dict[tuple, tuple[list[str], float]] = {}

    def texts(name: str, batch: Sequence) -> tuple[list[str], float]:
        key = (name, tuple(c.path for c in batch))
        if key not in done:
            model = models.load(name, "cpu", model_dir)
            started = time.monotonic()
            found = [whisper.transcribe(model, str(c.path), beam_size=5, best_of=5,
                                        fp16=False)["text"] for c in batch]  # fmt: skip
            done[key] = (found, time.monotonic() - started)
        return done[key]

    return texts
