"""Models: resolving a configured name, importing CTranslate2 models, loading and caching.

Owns model files and loaded models: :mod:`.resolve` (name → checkpoint or CTranslate2
directory, listing a model_dir), :mod:`.importer` (``whisperd models import``),
:mod:`.ct2` (reading CTranslate2's model.bin) and :mod:`.cache` (load onto a device, keep
the least recently used few).

May import: :mod:`daemon.outputs` (atomic writes), :mod:`daemon.config`,
:mod:`daemon.errors`.
"""

from daemon.models.cache import CacheKey, ModelCache, load, pick_device
from daemon.models.importer import import_model
from daemon.models.resolve import (
    ModelEntry,
    ModelRef,
    is_ct2_dir,
    is_known,
    list_models,
    official_filename,
    read_sidecar,
    resolve,
    resolve_ct2,
    sha256_file,
    sidecar_path,
)

__all__ = [
    "CacheKey",
    "ModelCache",
    "ModelEntry",
    "ModelRef",
    "import_model",
    "is_ct2_dir",
    "is_known",
    "list_models",
    "load",
    "official_filename",
    "pick_device",
    "read_sidecar",
    "resolve",
    "resolve_ct2",
    "sha256_file",
    "sidecar_path",
]
