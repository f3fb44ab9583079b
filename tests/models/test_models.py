"""Model resolution, CTranslate2 import (real bundled weights), checksums, the cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from daemon import models
from daemon.config import OFFICIAL_MODELS
from daemon.errors import ModelChecksumError, ModelImportError, ModelNotFoundError
from daemon.models import ct2
from scripts.install_models import source_dirs
from tests.speech import clips


def test_official_names_match_openai_whisper():
    import whisper

    assert list(OFFICIAL_MODELS) == whisper.available_models()


@pytest.fixture(scope="module")
def tiny_import(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("models")
    models.import_model(source_dirs("tiny.en"), "tiny.en", target)
    return target


def test_import_tiny_en_records_sidecar_and_ct2_copy(tiny_import: Path):
    sidecar = json.loads((tiny_import / "tiny.en.json").read_text())
    assert sidecar["origin"] == "imported"
    assert sidecar["sha256"] == models.sha256_file(tiny_import / "tiny.en.pt")
    assert sidecar["multilingual"] is False
    assert sidecar["dims"]["n_text_layer"] == 4
    ct2_dir = tiny_import / sidecar["ct2_dir"]
    assert (ct2_dir / "model.bin").stat().st_size == (
        source_dirs("tiny.en")[0] / "model.bin"
    ).stat().st_size
    assert (ct2_dir / "config.json").is_file()
    assert not list(tiny_import.glob(".*whisperd-tmp*"))


@pytest.mark.parametrize("name", ["tiny.en", "base"])
def test_alignment_heads_equal_openai_release(name: str, model_dir: Path):
    """config.json's alignment heads, carried over, are exactly OpenAI's for that model."""
    import torch
    import whisper

    checkpoint = torch.load(model_dir / f"{name}.pt", weights_only=True)
    dims = checkpoint["dims"]
    ours = ct2.decode_alignment_heads(
        checkpoint["alignment_heads"], dims["n_text_layer"], dims["n_text_head"]
    )
    official = ct2.decode_alignment_heads(
        whisper._ALIGNMENT_HEADS[name], dims["n_text_layer"], dims["n_text_head"]
    )
    assert ours == official
    loaded = models.load(name, "cpu", model_dir)
    assert loaded.alignment_heads.indices().T.tolist() == [list(p) for p in official]


def test_split_model_imports_from_several_directories(model_dir: Path):
    sidecar = json.loads((model_dir / "base.json").read_text())
    assert len(sidecar["sources"]) == 2
    assert sidecar["multilingual"] is True
    assert sidecar["dims"]["n_vocab"] == 51865


def test_missing_part_is_named(tmp_path: Path):
    only_second = source_dirs("base")[1]
    with pytest.raises(ModelImportError, match=r"part\(s\) 1 are missing"):
        models.import_model([only_second], "broken", tmp_path)
    assert not list(tmp_path.iterdir())


def test_not_a_model_directory(tmp_path: Path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "model.bin").write_bytes(b"\x06\x00\x00\x00garbage")
    (tmp_path / "src" / "config.json").write_text("{}")
    with pytest.raises(ModelImportError, match=r"model\.bin"):
        models.import_model([tmp_path / "src"], "junk", tmp_path / "out")
    with pytest.raises(ModelImportError, match=r"no model\.bin"):
        models.import_model([tmp_path], "junk", tmp_path / "out")


def test_import_refuses_to_overwrite_without_force(tiny_import: Path):
    with pytest.raises(ModelImportError, match="already exists"):
        models.import_model(source_dirs("tiny.en"), "tiny.en", tiny_import)


def test_bad_name_refused(tmp_path: Path):
    with pytest.raises(ModelImportError, match="must use only"):
        models.import_model(source_dirs("tiny.en"), "../evil", tmp_path)


def test_checksum_verified_on_load(tiny_import: Path, tmp_path: Path):
    for suffix in (".pt", ".json"):
        shutil.copy(tiny_import / f"tiny.en{suffix}", tmp_path / f"tiny.en{suffix}")
    with open(tmp_path / "tiny.en.pt", "r+b") as fh:
        fh.seek(-100, 2)
        byte = fh.read(1)
        fh.seek(-100, 2)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ModelChecksumError, match="checksum mismatch"):
        models.load("tiny.en", "cpu", tmp_path)


def test_resolution_order(tiny_import: Path, tmp_path: Path):
    assert models.resolve("tiny.en", tiny_import).origin == "imported"
    assert models.resolve(str(tiny_import / "tiny.en.pt"), tmp_path).origin == "file"
    official = models.resolve("small", tmp_path)
    assert official.origin == "official" and official.path is None
    with pytest.raises(ModelNotFoundError, match="'smal' is not a Whisper model"):
        models.resolve("smal", tmp_path)
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        models.resolve("nowhere/x.pt", tmp_path)


def test_list_models(tiny_import: Path):
    entries = models.list_models(tiny_import)
    assert [(e.name, e.origin, e.multilingual) for e in entries] == [("tiny.en", "imported", False)]
    assert entries[0].size == (tiny_import / "tiny.en.pt").stat().st_size


def test_cache_reuses_and_evicts(model_dir: Path):
    cache = models.ModelCache(model_dir, capacity=1)
    first = cache.get("tiny.en", "cpu")
    assert cache.get("tiny.en", "cpu") is first
    cache.get("base", "cpu")
    assert cache.loaded() == {"base"}
    assert cache.get("tiny.en", "cpu") is not first


@pytest.mark.real_model
def test_converted_tiny_en_matches_faster_whisper(model_dir: Path):
    """The converter's proof: same text as faster-whisper on the original directory, beam 5."""
    import whisper
    from faster_whisper import WhisperModel

    from daemon.media import decode

    ours = models.load("tiny.en", "cpu", model_dir)
    reference = WhisperModel(str(source_dirs("tiny.en")[0]), device="cpu", compute_type="float32")
    for clip in clips("en")[:6]:
        audio = decode(clip.path).samples
        mine = whisper.transcribe(ours, audio, beam_size=5, best_of=5, fp16=False)["text"]
        segments, _ = reference.transcribe(audio, beam_size=5, language="en")
        theirs = "".join(s.text for s in segments)
        assert mine.strip() == theirs.strip(), clip.path.name
