"""Text facts for subtitles: display width, sentence and clause ends, balanced line breaks.

Everything here depends on the words' text and the language, not on time: how wide a line
is (characters, without combining marks: Thai vowels and tones take no room), whether a word
ends a sentence or a clause, which words start a clause (conjunctions) or should not end a
line (articles, prepositions), and how a cue's words are laid out in at most N balanced,
bottom-heavy lines without breaking a word. The word tables cover en, es, fr, de, it, pt;
other languages break at punctuation and pauses only. Languages written without spaces
(:data:`NO_SPACE_LANGUAGES`) may break between any two tokens.
"""

from __future__ import annotations

import itertools
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

#: Languages written without spaces between words: any token boundary may break a line.
NO_SPACE_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "my", "km", "yue", "bo"})
#: Netflix timed-text style guides: characters per line where it is not 42 ...
LINE_WIDTH_BY_LANGUAGE: dict[str, int] = {"zh": 16, "yue": 16, "ja": 16, "ko": 16, "th": 35}
#: ... and reading speeds (adult programmes) where they are not 20 characters per second.
CPS_BY_LANGUAGE: dict[str, float] = {"zh": 9.0, "yue": 9.0, "ja": 4.0, "ko": 12.0, "th": 15.0}
LINE_WIDTH = 42
LINE_COUNT = 2
CPS = 20.0

SENTENCE_END = frozenset(".?!…。！？؟")
CLAUSE_END = frozenset(",;:，、；：–—")
CLOSERS = "\"'”’»)]}」』"


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


ABBREVIATIONS: dict[str, frozenset[str]] = {
    "en": _words("mr. mrs. ms. dr. st. vs. etc. e.g. i.e. no."),
    "es": _words("sr. sra. dr. dra. etc. ud. uds."),
}
CONJUNCTIONS: dict[str, frozenset[str]] = {
    "en": _words("and but or nor so yet because which while although though whereas if when "
                 "unless until since"),
    "es": _words("y e o u pero porque que cuando aunque si pues mientras sino"),
    "fr": _words("et ou mais donc car parce quand lorsque puisque si qui que"),
    "de": _words("und oder aber denn weil dass wenn als ob sondern doch"),
    "it": _words("e o ma perché quando se che mentre"),
    "pt": _words("e ou mas porque quando se que enquanto"),
}  # fmt: skip
#: Words that should not end a line or a cue (articles, prepositions, possessives).
WEAK_ENDS: dict[str, frozenset[str]] = {
    "en": _words("a an the of to in on at for with from by my your his her its our their "
                 "this these those"),
    "es": _words("el la los las un una de del a al en con por para su sus mi"),
    "fr": _words("le la les un une de du des à au aux en dans sur pour avec par"),
    "de": _words("der die das den dem des ein eine einen einem zu von mit im an auf für"),
}  # fmt: skip


@dataclass(frozen=True)
class Token:
    """A word as shown: its text, and whether a space separates it from the one before."""

    text: str
    space: bool


@dataclass(frozen=True)
class Box:
    """Where a cue's text must fit: lines, characters per line, words per line."""

    width: int
    lines: int
    words: int | None = None  # words per line; None: no limit


def display_width(text: str) -> int:
    """Characters that take room on screen (combining marks and zero-width ones excluded)."""
    return sum(
        1 for ch in text if not unicodedata.combining(ch) and unicodedata.category(ch) != "Cf"
    )


def is_punctuation(text: str) -> bool:
    """True when every character is punctuation (it attaches to the word before)."""
    return bool(text) and all(unicodedata.category(ch).startswith("P") for ch in text)


def is_sentence_end(text: str, language: str) -> bool:
    """Does this word end a sentence (``end.``, ``why?"``, ``。``), abbreviations excepted?"""
    bare = text.rstrip(CLOSERS)
    if not bare or bare[-1] not in SENTENCE_END:
        return False
    return bare.lower() not in ABBREVIATIONS.get(language, frozenset())


def is_clause_end(text: str) -> bool:
    """Does this word end a clause (comma, semicolon, colon, dash)?"""
    bare = text.rstrip(CLOSERS)
    return bool(bare) and bare[-1] in CLAUSE_END


def _key(text: str) -> str:
    return text.strip(CLOSERS + "\"'¿¡(,.;:!?").lower()


def is_conjunction(text: str, language: str) -> bool:
    """Does a clause start at this word (a break before it reads well)?"""
    return _key(text) in CONJUNCTIONS.get(language, frozenset())


def is_weak_end(text: str, language: str) -> bool:
    """Should a line or cue not end on this word (an article, a preposition, a conjunction)?"""
    if text and text[-1] in ",;:.?!":
        return False
    return _key(text) in WEAK_ENDS.get(language, frozenset()) or is_conjunction(text, language)


def join(tokens: Sequence[Token]) -> str:
    """The tokens as one line of text."""
    return "".join((" " if t.space and i else "") + t.text for i, t in enumerate(tokens)).strip()


def width(tokens: Sequence[Token]) -> int:
    return display_width(join(tokens))


def _line_ok(tokens: Sequence[Token], box: Box) -> bool:
    """A line fits: within the width (or one word alone) and the words per line."""
    if box.words is not None and len(tokens) > box.words:
        return False
    return len(tokens) == 1 or width(tokens) <= box.width


def greedy_lines(tokens: Sequence[Token], box: Box) -> list[list[Token]]:
    """First-fit lines (the fewest lines possible); a token wider than the box stands alone."""
    lines: list[list[Token]] = []
    current: list[Token] = []
    for tok in tokens:
        if current and _line_ok([*current, tok], box):
            current.append(tok)
            continue
        if current:
            lines.append(current)
        current = [tok]
    if current:
        lines.append(current)
    return lines


def fits(tokens: Sequence[Token], box: Box) -> bool:
    """Can these tokens be laid out in the box's lines (a long word alone on its line)?"""
    return len(greedy_lines(tokens, box)) <= box.lines


def _break_cost(tokens: Sequence[Token], b: int, language: str) -> float:
    """Cost of a line break before ``tokens[b]``, in characters of imbalance."""
    before, after = tokens[b - 1].text, tokens[b].text
    cost = 0.0
    if is_sentence_end(before, language) or is_clause_end(before):
        cost -= 10.0
    elif is_conjunction(after, language):
        cost -= 4.0
    if is_weak_end(before, language):
        cost += 8.0
    return cost


_MAX_COMBINATIONS = 5000


def layout(tokens: Sequence[Token], box: Box, language: str) -> tuple[str, ...]:
    """A cue's tokens in the fewest lines, balanced, bottom-heavy, never inside a word.

    Among layouts with the fewest lines, the chosen one minimises the spread between the
    longest and the shortest line, adjusted by where the breaks fall (after punctuation and
    before a conjunction is better, after an article or a preposition worse); a line longer
    than the one below it costs a little, so unequal lines come out bottom-heavy.
    """
    tokens = list(tokens)
    if not tokens:
        return ()
    greedy = greedy_lines(tokens, box)
    count = len(greedy)
    if count == 1 or count > box.lines:
        return tuple(join(line) for line in greedy)
    best: tuple[float, tuple[int, ...]] | None = None
    combos = itertools.combinations(range(1, len(tokens)), count - 1)
    for breaks in itertools.islice(combos, _MAX_COMBINATIONS):
        bounds = (0, *breaks, len(tokens))
        lines = [tokens[a:b] for a, b in itertools.pairwise(bounds)]
        if not all(_line_ok(line, box) for line in lines):
            continue
        widths = [width(line) for line in lines]
        cost = max(widths) - min(widths)
        cost += sum(0.5 for a, b in itertools.pairwise(widths) if a > b)
        cost += sum(_break_cost(tokens, b, language) for b in breaks)
        if best is None or cost < best[0]:
            best = (cost, breaks)
    if best is None:
        return tuple(join(line) for line in greedy)
    bounds = (0, *best[1], len(tokens))
    return tuple(join(tokens[a:b]) for a, b in itertools.pairwise(bounds))
