"""One test per readable-cue rule, on synthetic words shaped like Whisper's.

Words come with a leading space and punctuation attached or on its own, as both engines
emit them. Rendering goes through the real writers (:func:`daemon.outputs.render`).
"""

from __future__ import annotations

import itertools

import pytest
import srt
import webvtt

from daemon.config import SubtitleSettings
from daemon.outputs import render
from daemon.outputs.cues import Cue, build_cues
from daemon.outputs.subtitles import limits, readable_cues
from daemon.outputs.subtitles import report as cue_report
from daemon.outputs.textlayout import display_width
from daemon.transcript import Segment, Transcript, Word

SETTINGS = SubtitleSettings()
OPTS = limits(SETTINGS, "en")


def speak(text: str, start: float = 0.0, word_s: float = 0.3, gap: float = 0.05) -> list[Word]:
    """Words of ``text`` at a steady pace; ``|`` in the text inserts a 0.8 s pause."""
    words, t = [], start
    for token in text.split():
        if token == "|":
            t += 0.8
            continue
        words.append(Word(t, t + word_s, " " + token, 0.9))
        t += word_s + gap
    return words


def texts(cues: list[Cue]) -> list[str]:
    return [c.text for c in cues]


def assert_valid(cues: list[Cue], language: str = "en") -> None:
    found = cue_report(cues, limits(SETTINGS, language), language)
    assert found["within_all"] == 1.0, found["outside"]


def transcript_of(words: list[Word], speech=None) -> Transcript:
    seg = Segment(0, words[0].start, words[-1].end, "".join(w.word for w in words), tuple(words))
    return Transcript(seg.text.strip(), "en", None, (seg,), words[-1].end + 5, "tiny.en",
                      "openai-whisper", speech=speech)  # fmt: skip


def test_a_cue_ends_at_a_sentence_end_when_the_text_needs_two_cues() -> None:
    words = speak(
        "The committee met on Tuesday to discuss the budget. "
        "Nobody expected the meeting to last until midnight."
    )
    cues = build_cues(words, OPTS, language="en")
    assert texts(cues) == [
        "The committee met on Tuesday to discuss the budget.",
        "Nobody expected the meeting to last until midnight.",
    ]
    assert_valid(cues)


def test_short_sentences_share_a_cue() -> None:
    cues = build_cues(speak("Hello. How are you?"), OPTS, language="en")
    assert texts(cues) == ["Hello. How are you?"]


def test_without_a_sentence_end_a_cue_ends_at_a_clause() -> None:
    words = speak(
        "When the river finally rose above the old stone bridge last spring, "
        "the whole village gathered on the hill to watch the water"
    )
    cues = build_cues(words, OPTS, language="en")
    assert cues[0].text.endswith("last spring,")
    assert_valid(cues)


def test_a_conjunction_starts_the_next_cue() -> None:
    words = speak(
        "She walked all the way to the station in the pouring rain "
        "but the last train had already left the platform an hour before"
    )
    cues = build_cues(words, OPTS, language="en")
    assert cues[1].text.startswith("but the last train")


def test_without_punctuation_a_cue_ends_at_the_longest_pause() -> None:
    words = speak(
        "we walked along the river for an hour | looking at the boats going by "
        "talking about nothing in particular at all"
    )
    cues = build_cues(words, OPTS, language="en")
    assert cues[0].text == "we walked along the river for an hour"


def test_a_cue_never_spans_a_pause_longer_than_max_pause() -> None:
    words = speak("Yes I know") + speak("we should go", start=1.0 + 1.6)
    cues = build_cues(words, OPTS, language="en")
    assert texts(cues) == ["Yes I know", "we should go"]
    assert cues[0].end <= words[3].start - OPTS.min_gap + 1e-9


def test_lines_are_balanced_and_bottom_heavy() -> None:
    text = "Seven quick brown foxes jumped over three lazy dogs sleeping"
    (cue,) = build_cues(speak(text), OPTS, language="en")
    top, bottom = cue.lines
    assert " ".join(cue.lines) == text
    assert (top, bottom) == ("Seven quick brown foxes jumped", "over three lazy dogs sleeping")
    assert len(bottom) - len(top) == -1 or len(bottom) >= len(top)


def test_unequal_lines_come_out_bottom_heavy() -> None:
    text = "Alpha beta gamma delta epsilon zeta eta theta iota"  # 50 characters
    (cue,) = build_cues(speak(text), OPTS, language="en")
    top, bottom = cue.lines
    assert abs(len(top) - len(bottom)) <= 6
    assert len(bottom) > len(top)


def test_a_line_breaks_after_a_comma_rather_than_split_a_phrase() -> None:
    text = "And so, my fellow Americans, ask not what your country can do for you,"
    (cue,) = build_cues(speak(text), OPTS, language="en")
    assert cue.lines == (
        "And so, my fellow Americans,",
        "ask not what your country can do for you,",
    )


def test_a_line_does_not_end_on_an_article() -> None:
    words = speak("He carried the heavy wooden box up to the attic of the house")
    (cue,) = build_cues(words, OPTS, language="en")
    assert cue.lines[0].split()[-1] not in {"the", "a", "of", "to"}


def test_fast_speech_extends_into_the_silence_after_it() -> None:
    words = speak("Absolutely everything that happened yesterday", word_s=0.15, gap=0.0)
    (cue,) = build_cues(words, OPTS, language="en")
    assert cue.end > words[-1].end  # spoken in 0.75 s: too fast to read
    assert len(cue.text) / (cue.end - cue.start) <= OPTS.max_cps + 1e-6


def test_reading_time_extension_stops_before_the_next_cue() -> None:
    said = "Absolutely everything that happened yesterday was a surprise to me."
    first = speak(said, word_s=0.15, gap=0.0)
    second = speak("Then the phone rang again.", start=first[-1].end + 0.3)
    cues = build_cues(first + second, OPTS, language="en")
    assert texts(cues) == [said, "Then the phone rang again."]
    assert abs(cues[1].start - cues[0].end - OPTS.min_gap) < 0.0015
    assert cues[0].end > first[-1].end


def test_min_duration_for_a_single_short_word() -> None:
    cues = build_cues([Word(3.0, 3.2, " Yes.", 0.9)], OPTS, language="en")
    assert cues[0].end - cues[0].start >= OPTS.min_duration - 0.001


def test_max_duration_splits_slow_speech() -> None:
    words = speak("one two three four five six seven eight nine ten eleven", word_s=0.9, gap=0.1)
    cues = build_cues(words, OPTS, language="en")
    assert len(cues) >= 2
    assert all(c.end - c.start <= OPTS.max_duration + 1e-6 for c in cues)
    assert " ".join(texts(cues)) == "one two three four five six seven eight nine ten eleven"


def test_a_word_longer_than_the_line_stands_alone_unbroken() -> None:
    long = "Pneumonoultramicroscopicsilicovolcanoconiosis-related"
    (cue,) = build_cues(speak(f"He said {long}"), OPTS, language="en")
    assert cue.lines == ("He said", long)
    assert all(display_width(line) <= 42 or line == long for line in cue.lines)
    assert cue_report([cue], OPTS, "en")["within"]["line_width"] == 1.0


def test_chinese_lines_hold_16_characters_without_spaces() -> None:
    sentence = "我们今天去公园散步，天气非常好，阳光明媚，很多人在湖边钓鱼和聊天。"
    words = [Word(0.2 * i, 0.2 * i + 0.2, ch, 0.9) for i, ch in enumerate(sentence)]
    zh = limits(SETTINGS, "zh")
    cues = build_cues(words, zh, language="zh")
    assert "".join("".join(c.lines) for c in cues) == sentence
    assert all(display_width(line) <= 16 for c in cues for line in c.lines)
    assert all(" " not in line for c in cues for line in c.lines)
    report = cue_report(cues, zh, "zh")
    assert report["limits"]["max_line_width"] == 16 and report["limits"]["max_cps"] == 9.0
    assert report["within_all"] == 1.0, report["outside"]


def test_messy_whisper_words_give_valid_ordered_cues() -> None:
    words = [
        Word(0.5, 0.5, " Well", 0.9),  # start == end
        Word(0.5, 0.9, ",", 0.9),  # punctuation on its own
        Word(0.8, 0.7, " I", 0.9),  # end before start, overlapping the previous
        Word(0.9, 1.2, "  ", 0.1),  # empty after stripping
        Word(1.1, 1.5, " think", 0.9),
        Word(1.4, 1.8, " so.", 0.9),
    ]
    cues = build_cues(words, OPTS, language="en")
    assert texts(cues) == ["Well, I think so."]
    assert_valid(cues)


def test_cue_start_is_snapped_to_detected_speech() -> None:
    words = [Word(0.0, 8.6, " Welcome", 0.9), *speak("to the show.", start=8.7)]
    cues = build_cues(words, OPTS, language="en", speech=[(8.2, 10.0)])
    assert cues[0].start == 8.2
    assert cues[0].end <= 8.2 + OPTS.max_duration


def test_a_word_lingering_into_silence_does_not_keep_the_cue_up() -> None:
    words = [*speak("Good night everyone", start=1.0), Word(2.1, 9.0, " all.", 0.9)]
    (cue,) = build_cues(words, OPTS, language="en", speech=[(0.8, 2.6)])
    assert cue.end <= 2.6 + 0.001


def test_srt_and_vtt_parse_back() -> None:
    words = speak("First sentence here. Second one follows after it, and a third.", start=1.0)
    transcript = transcript_of(words)
    cues = list(readable_cues(transcript, SETTINGS).cues)
    parsed = list(srt.parse(render(transcript, "srt", subtitles=SETTINGS, meta={})))
    assert [p.content for p in parsed] == ["\n".join(c.lines) for c in cues]
    assert parsed[0].start.total_seconds() == cues[0].start == 1.0
    vtt = webvtt.from_string(render(transcript, "vtt", subtitles=SETTINGS, meta={}))
    assert [c.text for c in vtt.captions] == ["\n".join(c.lines) for c in cues]


def test_report_counts_each_rule_separately() -> None:
    cues = [
        Cue(0.0, 1.0, ("fine",)),
        Cue(1.1, 1.3, ("far too many words for so short a time",)),  # and too close to the next
        Cue(1.33, 10.5, ("too long on screen",)),
    ]
    report = cue_report(cues, OPTS, "en")
    for rule in ("min_gap", "reading_speed", "min_duration", "max_duration"):
        assert report["within"][rule] == pytest.approx(2 / 3, abs=1e-4), rule
    assert report["within"]["line_width"] == 1.0
    assert report["within_all"] == pytest.approx(1 / 3, abs=1e-4)
    assert [o["text"] for o in report["outside"]] == [c.text for c in cues[1:]]
    assert report["max_cps"] > 100


def test_no_words_give_no_cues_and_empty_files() -> None:
    assert build_cues([], OPTS, language="en") == []
    assert build_cues([Word(1.0, 1.2, "  ", 0.1)], OPTS, language="en") == []
    empty = Transcript("", "en", None, (), 60.0, "tiny.en", "openai-whisper", speech=())
    assert render(empty, "srt", subtitles=SETTINGS, meta={}) == ""
    assert render(empty, "vtt", subtitles=SETTINGS, meta={}) == "WEBVTT\n\n"


def test_settings_change_the_box_and_speed() -> None:
    words = speak("one two three four five six seven eight nine ten eleven twelve", word_s=0.5)
    narrow = SubtitleSettings(max_line_width=20, max_words_per_line=3, max_cps=12)
    cues = readable_cues(transcript_of(words), narrow).cues
    assert all(len(line) <= 20 and len(line.split()) <= 3 for c in cues for line in c.lines)
    assert all(len(c.lines) <= 2 for c in cues)
    assert " ".join(texts(list(cues))) == " ".join(w.word.strip() for w in words)
    found = cue_report(cues, limits(narrow, "en"), "en")
    assert found["within_all"] == 1.0 and found["max_cps"] <= 12


def test_highlight_words_underlines_each_word_of_a_readable_cue() -> None:
    words = speak("Hello there, my friend.", start=2.0)
    options = SubtitleSettings(highlight_words=True)
    subs = list(srt.parse(render(transcript_of(words), "srt", subtitles=options, meta={})))
    assert [s.content for s in subs] == [
        "<u>Hello</u> there, my friend.",
        "Hello <u>there,</u> my friend.",
        "Hello there, <u>my</u> friend.",
        "Hello there, my <u>friend.</u>",
    ]
    assert subs[0].start.total_seconds() == 2.0
    assert all(a.end == b.start for a, b in itertools.pairwise(subs))


def test_segments_without_words_still_get_readable_cues() -> None:
    seg = Segment(0, 4.0, 9.0, " A segment from an engine run without word timings.")
    t = Transcript(seg.text.strip(), "en", None, (seg,), 12.0, "tiny.en", "openai-whisper")
    (cue,) = readable_cues(t, SETTINGS).cues
    assert cue.start == 4.0 and cue.end <= 9.0 + 0.001
    assert cue.text == seg.text.strip() and len(cue.lines) == 2


def test_style_whisper_keeps_whispers_segments() -> None:
    words = speak("First sentence here. Second one follows after it, and a third.")
    whisper_style = SubtitleSettings(style="whisper")
    (sub,) = srt.parse(render(transcript_of(words), "srt", subtitles=whisper_style, meta={}))
    assert sub.content == "First sentence here. Second one follows after it, and a third."
