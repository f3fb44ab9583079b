"""The one file-name matcher: ``watch.include`` and ``watch.ignore`` globs, case-insensitive.

The watcher (is this file a candidate? is this path component ignored?), the output naming
(which siblings are media, for collision-safe stems) and ``whisperd explain`` all ask the
same question through :func:`name_matcher`, so they can never disagree.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Callable, Iterable

NameMatcher = Callable[[str], bool]


@functools.lru_cache(maxsize=64)
def _compiled(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    parts = [f"(?:{fnmatch.translate(p)})" for p in patterns]
    return re.compile("|".join(parts), re.IGNORECASE) if parts else None


def name_matcher(patterns: Iterable[str], *, empty: bool = False) -> NameMatcher:
    """A test of one file name (not a path) against globs, ignoring case.

    With no patterns at all, every name matches when ``empty`` is True, none otherwise.
    """
    regex = _compiled(tuple(patterns))
    if regex is None:
        return lambda name: empty
    match = regex.match
    return lambda name: match(name) is not None
