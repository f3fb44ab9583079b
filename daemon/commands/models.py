"""``whisperd models list | import``: the models in model_dir, and importing CTranslate2 ones."""

from __future__ import annotations

from pathlib import Path

from daemon import models


def import_(sources: list[str], name: str, model_dir: Path, *, force: bool) -> int:
    """Convert a CTranslate2 model (all parts) into ``<model_dir>/<name>.pt``."""
    info = models.import_model([Path(s) for s in sources], name, model_dir, force=force)
    kind = "multilingual" if info["multilingual"] else "English-only"
    print(
        f"imported {name!r} ({kind}, {info['size'] / 1e6:.0f} MB, "
        f"sha256 {info['sha256'][:12]}…) into {model_dir / (name + '.pt')}"
    )
    return 0


def list_(model_dir: Path) -> int:
    """One line per model: name, size, origin, languages, engines, where it came from."""
    entries = models.list_models(model_dir)
    if not entries:
        print(
            f"no models in {model_dir}; import one with 'whisperd models import DIR... --name NAME'"
        )
        return 0
    print(f"models in {model_dir}:")
    width = max(len(e.name) for e in entries)
    for e in entries:
        lang = {True: "multilingual", False: "English-only", None: "?"}[e.multilingual]
        print(
            f"  {e.name:<{width}}  {e.size / 1e6:7.1f} MB  {e.origin:<11}  {lang:<12}  "
            f"{', '.join(e.engines):<30}  {e.detail}"
        )
    return 0
