"""``whisperd explain PATH``: the effective settings for an inbox path, the rules that produced
them, whether the watcher takes the file, and the exact output files."""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath

from daemon.config import Config, Resolver, name_matcher
from daemon.outputs import output_dir, plan_outputs


def run(cfg: Config, given: str) -> int:
    """Print the explanation of ``given`` (a file in, or relative to, the inbox)."""
    path = Path(given)
    absolute = path if path.is_absolute() else (Path.cwd() / path)
    try:
        rel = PurePosixPath(Path(os.path.abspath(absolute)).relative_to(cfg.inbox).as_posix())
    except ValueError:
        rel = PurePosixPath(given)  # taken as inbox-relative
    source = cfg.inbox / rel
    resolved = Resolver(cfg).resolve(rel.parent)
    settings = resolved.settings
    is_media = name_matcher(cfg.watch.include)
    language = settings.language or "{language}"
    targets = plan_outputs(source, settings, output_dir(cfg, settings, source), language,
                           is_media)  # fmt: skip
    print(f"file:     {rel}")
    print(f"folder:   {rel.parent.as_posix()}")
    print(
        "rules:    defaults"
        + "".join(f" < {key!r}" for key in resolved.rules)
        + ("" if resolved.rules else " (no folder rule matches)")
    )
    watched = "yes" if is_media(rel.name) else "no: the name matches no watch.include pattern"
    print(f"watched:  {watched}")
    print("settings:")
    for key, value in settings.model_dump(mode="json").items():
        origin = next(
            (rule for rule in reversed(resolved.rules) if key in cfg.folders[rule]), "defaults"
        )
        print(f"  {key}: {json.dumps(value, ensure_ascii=False)}   [{origin}]")
    if settings.needs_word_timestamps and not settings.word_timestamps:
        print("  (word timestamps are computed anyway: the subtitles need them)")
    print("outputs:")
    for target in targets.values():
        print(f"  {target}")
    if settings.language is None and "{language}" in str(settings.output_name):
        print("  ({language} is the language detected in each file)")
    if settings.skip_if_subtitles:
        print("  (skipped when the video already has subtitles in its language)")
    return 0
