"""The hallucination guard on synthetic segments shaped like the engines' output."""

from __future__ import annotations

from dataclasses import replace

from daemon.config import GuardSettings
from daemon.jobs.hallucinations import guard
from daemon.transcript import Segment, Transcript, Word

SPEECH = ((10.0, 20.0), (40.0, 50.0))
ON = GuardSettings()


def seg(text: str, start: float, end: float, *, nsp: float = 0.05, lp: float = -0.3) -> Segment:
    tokens = text.split()
    step = (end - start) / max(len(tokens), 1)
    words = tuple(
        Word(start + k * step, start + (k + 1) * step, " " + t, 0.9) for k, t in enumerate(tokens)
    )
    return Segment(0, start, end, " " + text, words, lp, nsp, 1.2, 0.0)


def run(segments, speech=SPEECH, settings=ON, language="en") -> Transcript:
    segments = [replace(s, id=k) for k, s in enumerate(segments)]
    t = Transcript("".join(s.text for s in segments).strip(), language, None, tuple(segments),
                   60.0, "tiny.en", "openai-whisper", speech=speech)  # fmt: skip
    return guard(t, settings)


def texts(t: Transcript) -> list[str]:
    return [s.text for s in t.segments]


def reasons(t: Transcript) -> list[str]:
    return [d.reason for d in t.dropped]


def test_speech_inside_regions_is_kept_unchanged() -> None:
    segments = [seg("Hello there.", 10.5, 11.5), seg("How are you?", 41.0, 42.0)]
    result = run(segments)
    assert texts(result) == [" Hello there.", " How are you?"]
    assert result.dropped == () and result.text == "Hello there. How are you?"


def test_high_no_speech_with_low_logprob_is_dropped() -> None:
    result = run([seg("Real words.", 11.0, 12.0), seg("Mumble mumble.", 12.0, 13.0, nsp=0.9,
                                                       lp=-1.4)])  # fmt: skip
    assert texts(result) == [" Real words."] and result.text == "Real words."
    (drop,) = result.dropped
    assert (drop.start, drop.end, drop.text, drop.reason) == (12.0, 13.0, "Mumble mumble.",
                                                             "no_speech")  # fmt: skip


def test_high_no_speech_alone_is_not_enough() -> None:
    assert len(run([seg("Quiet but sure.", 11.0, 12.0, nsp=0.9, lp=-0.2)]).segments) == 1


def test_a_segment_whose_words_all_lie_outside_speech_is_dropped() -> None:
    result = run([seg("I'm going to go to the store.", 25.0, 30.0)])
    assert result.segments == () and result.text == ""
    assert reasons(result) == ["outside_speech"]


def test_stray_words_outside_speech_are_cut_from_a_kept_segment() -> None:
    words = (Word(18.0, 18.4, " See", 0.9), Word(18.4, 18.7, " you", 0.9),
             Word(18.7, 19.5, " tomorrow.", 0.9), Word(24.0, 26.0, " Bye.", 0.4))  # fmt: skip
    result = run([Segment(0, 18.0, 26.0, " See you tomorrow. Bye.", words)])
    (kept,) = result.segments
    assert (kept.text, kept.end) == (" See you tomorrow.", 19.5)
    (drop,) = result.dropped
    assert (drop.reason, drop.text, drop.start, drop.end) == ("words_outside_speech", "Bye.",
                                                             24.0, 26.0)  # fmt: skip


def test_a_phrase_repeated_three_times_keeps_only_the_first() -> None:
    result = run([seg("Thank you.", 10 + k, 11 + k) for k in range(4)])
    assert [s.start for s in result.segments] == [10.0]
    assert reasons(result) == ["repetition"] * 3


def test_a_phrase_said_twice_is_kept_twice() -> None:
    segments = [seg("Thank you.", 10, 11), seg("thank you", 11, 12), seg("Goodbye.", 12, 13)]
    result = run(segments)
    assert len(result.segments) == 3 and [s.id for s in result.segments] == [0, 1, 2]


def test_a_loop_inside_one_segment_is_cut_to_its_first_occurrence() -> None:
    text = "I said it. " + "I'm sorry. " * 6 + "Goodbye."
    result = run([seg(text.strip(), 10.0, 19.0)])
    (kept,) = result.segments
    assert kept.text == " I said it. I'm sorry. Goodbye."
    assert reasons(result) == ["loop"]


def test_a_loop_without_word_timings_is_cut_too() -> None:
    text = " I said it. " + "I'm sorry. " * 6 + "Goodbye."
    result = run([Segment(0, 10.0, 19.0, text)], speech=None)
    assert texts(result) == [" I said it. I'm sorry. Goodbye."]


def test_short_natural_repetition_inside_a_segment_stays() -> None:
    assert run([seg("No, no, no, no, please.", 10.0, 12.0)]).segments[0].text == (
        " No, no, no, no, please."
    )


def test_sound_annotations_are_dropped() -> None:
    segments = [seg("[MUSIC]", 10.0, 12.0), seg("♪ ♪", 12.0, 13.0), seg("(applause)", 13, 14)]
    assert reasons(run(segments)) == ["annotation"] * 3


def test_stock_phrase_is_dropped_only_when_mostly_outside_speech() -> None:
    edge = Segment(0, 19.5, 23.0, " Thank you.",
                   (Word(19.5, 20.1, " Thank", 0.5), Word(22.0, 23.0, " you.", 0.5)))  # fmt: skip
    result = run([edge, seg("Thank you.", 44.0, 45.0)])
    assert [s.start for s in result.segments] == [44.0]
    assert reasons(result) == ["phrase_outside_speech"]
    assert reasons(run([edge], settings=GuardSettings(stock_phrases=False))) == [
        "words_outside_speech"
    ]
    assert reasons(run([edge], language="de")) == ["words_outside_speech"]  # no German list


def test_without_regions_only_text_rules_apply() -> None:
    result = run([seg("Far away.", 100.0, 101.0), seg("[MUSIC]", 101.0, 102.0)], speech=None)
    assert texts(result) == [" Far away."]
    off = GuardSettings(outside_speech=False)
    assert texts(run([seg("Far away.", 100.0, 101.0)], settings=off)) == [" Far away."]


def test_every_rule_can_be_switched_off() -> None:
    settings = GuardSettings(no_speech_prob=None, repeat_limit=None, loop_limit=None,
                             annotations=False)  # fmt: skip
    segments = [seg("[MUSIC]", 10, 11), *[seg("Hi.", 11 + k, 12 + k, nsp=0.99, lp=-2)
                                          for k in range(3)]]  # fmt: skip
    result = run(segments, settings=settings)
    assert len(result.segments) == 4 and [s.id for s in result.segments] == [0, 1, 2, 3]
    disabled = run(segments, settings=GuardSettings(enabled=False))
    assert len(disabled.segments) == 4 and disabled.dropped == ()
