"""Outputs: naming, rendering and atomically writing a transcript's files.

Owns everything written into the outbox, or beside the source (``outputs_beside_source``):
:mod:`.naming` (mirrored folders or the source's, the one stem function, collision-safe and
length-safe names), :mod:`.writers` (txt, srt, vtt, tsv, json), :mod:`.subtitles` (readable
cues of a transcript and their rule report), :mod:`.cues` (where cues end and how they are
timed), :mod:`.textlayout` (widths, sentence and clause words, balanced lines),
:mod:`.atomic` (temp file, fsync, rename; leftover cleanup), :mod:`.error_file` (the
``.error.txt`` of a failed file), :mod:`.sidecars` (the subtitle files that already lie
beside a video) and :mod:`.stored` (a JSON output read back into a transcript, for
``whisperd render``).

May import: :mod:`daemon.config`, :mod:`daemon.transcript`, :mod:`daemon.errors`,
:mod:`daemon.whisper_parts`. The bottom of the data path: it imports no other stage.
"""

from daemon.outputs.atomic import (
    TEMP_SUFFIX,
    Staged,
    cleanup_temp_files,
    discard,
    finish,
    is_temp_file,
    publish,
    write_atomic,
)
from daemon.outputs.error_file import ERROR_SUFFIX, error_file, write_error_file
from daemon.outputs.naming import (
    MAX_STEM_BYTES,
    NAME_MAX,
    colliding_stem,
    fit_stem,
    from_ledger,
    ledger_name,
    mirror_dir,
    output_dir,
    output_paths,
    plan_outputs,
    source_stem,
)
from daemon.outputs.stored import StoredTranscriptError, missing_words, read_transcript
from daemon.outputs.subtitles import Subtitles, readable_cues
from daemon.outputs.writers import render, render_json, stage_outputs, wanted_cues, write_outputs

__all__ = [
    "ERROR_SUFFIX",
    "MAX_STEM_BYTES",
    "NAME_MAX",
    "TEMP_SUFFIX",
    "Staged",
    "StoredTranscriptError",
    "Subtitles",
    "cleanup_temp_files",
    "colliding_stem",
    "discard",
    "error_file",
    "finish",
    "fit_stem",
    "from_ledger",
    "is_temp_file",
    "ledger_name",
    "mirror_dir",
    "missing_words",
    "output_dir",
    "output_paths",
    "plan_outputs",
    "publish",
    "read_transcript",
    "readable_cues",
    "render",
    "render_json",
    "source_stem",
    "stage_outputs",
    "wanted_cues",
    "write_atomic",
    "write_error_file",
    "write_outputs",
]
