"""Raw openai-whisper in one process (contender b, and the accuracy reference).

Run as ``python -m bench.raw MODEL_PT LANGUAGE OUT_DIR FILE...``: loads the model once, then
``whisper.transcribe(model, path, beam_size=5, best_of=5, fp16=False, language=...)`` per file
(temperature fallback and every other option at openai-whisper's defaults), writes all five
formats with ``whisper.utils.get_writer('all', OUT_DIR)``, and prints a JSON object
``{"texts": {file: text}, "load_seconds": s}`` on stdout.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings


def main(argv: list[str]) -> None:
    """Transcribe the files named in ``argv`` (see the module docstring)."""
    import whisper
    from whisper.utils import get_writer

    warnings.filterwarnings("ignore", message="FP16 is not supported on CPU")
    model_pt, language, out_dir, *files = argv
    os.makedirs(out_dir, exist_ok=True)
    started = time.monotonic()
    model = whisper.load_model(model_pt, device="cpu")
    loaded = time.monotonic() - started
    writer = get_writer("all", out_dir)
    texts = {}
    for path in files:
        result = whisper.transcribe(
            model, path, beam_size=5, best_of=5, fp16=False, language=language, verbose=None
        )
        writer(result, path)
        texts[path] = result["text"].strip()
    print(json.dumps({"texts": texts, "load_seconds": loaded}))


if __name__ == "__main__":
    main(sys.argv[1:])
