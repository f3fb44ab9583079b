"""Jobs: running one queued job from claim to recorded outcome.

Owns what happens between the ledger and the outbox: :mod:`.worker` (a thread per device:
claim, run, record), :mod:`.pipeline` (one file: decode → engine → outputs, shared with
``whisperd transcribe``), :mod:`.library` (the audio track by language, a trusted track
language, the skip of videos that have subtitles already) and :mod:`.source` (is the source
still the queued version; what happens to it after success).

May import: :mod:`daemon.queue`, :mod:`daemon.media`, :mod:`daemon.engines`,
:mod:`daemon.models`, :mod:`daemon.outputs` and the leaves.
"""
