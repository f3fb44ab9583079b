"""Language codes as media players expect them, for Whisper's ~100 languages.

Owns one table: each Whisper language code with its ISO 639-1 code and its ISO 639-2
bibliographic (/B) and terminological (/T) codes, from the Library of Congress ISO 639-2
list (the same ``B|T|1|name`` file Jellyfin ships as ``Localization/iso6392.txt``).
``tests/config/test_languages.py`` checks it against ``whisper.tokenizer.LANGUAGES``.

* :func:`code_for` gives the code to *write* in a file name: ``iso639-1`` (``de``) or
  ``iso639-2``, the **/B** form (``ger``, ``fre``, ``chi``): Plex documents sidecar names
  as "ISO-639-1 (2-letter) or ISO-639-2/B (3-letter)", Matroska language tags are 639-2/B,
  and Jellyfin and Bazarr read /B as well as /T. ``iso639-1`` is what Bazarr writes and the
  one form every reader accepts.
* :func:`parse_language` *reads* any form players and tools put in names and stream tags:
  Whisper codes, 639-1, 639-2/B and /T, a few 639-3 and retired codes, English names
  (``English``, ``castilian``), BCP 47 tags (``pt-BR``, ``zh-Hans``, ``en_US``); it returns
  a Whisper code, or None.

Whisper oddities: ``jw`` is Whisper's (retired) code for Javanese, written ``jv``/``jav``;
``haw`` has no 639-1 code, so both styles write ``haw``; ``yue`` (Cantonese) has neither a
639-1 nor a 639-2 code, and players know no code for it, so it is written as Chinese
(``zh``/``chi``), the label Plex and Jellyfin show for it (lossy: ``zh`` reads back as zh).

A leaf of the config package: imports nothing from whisperd.
"""

from __future__ import annotations

import re
from typing import Literal

Style = Literal["iso639-1", "iso639-2"]
STYLES: tuple[Style, ...] = ("iso639-1", "iso639-2")

# Whisper code: (English name as whisper spells it, 639-1, 639-2/B, 639-2/T).
_TABLE: dict[str, tuple[str, str | None, str, str]] = {
    "en": ("english", "en", "eng", "eng"),
    "zh": ("chinese", "zh", "chi", "zho"),
    "de": ("german", "de", "ger", "deu"),
    "es": ("spanish", "es", "spa", "spa"),
    "ru": ("russian", "ru", "rus", "rus"),
    "ko": ("korean", "ko", "kor", "kor"),
    "fr": ("french", "fr", "fre", "fra"),
    "ja": ("japanese", "ja", "jpn", "jpn"),
    "pt": ("portuguese", "pt", "por", "por"),
    "tr": ("turkish", "tr", "tur", "tur"),
    "pl": ("polish", "pl", "pol", "pol"),
    "ca": ("catalan", "ca", "cat", "cat"),
    "nl": ("dutch", "nl", "dut", "nld"),
    "ar": ("arabic", "ar", "ara", "ara"),
    "sv": ("swedish", "sv", "swe", "swe"),
    "it": ("italian", "it", "ita", "ita"),
    "id": ("indonesian", "id", "ind", "ind"),
    "hi": ("hindi", "hi", "hin", "hin"),
    "fi": ("finnish", "fi", "fin", "fin"),
    "vi": ("vietnamese", "vi", "vie", "vie"),
    "he": ("hebrew", "he", "heb", "heb"),
    "uk": ("ukrainian", "uk", "ukr", "ukr"),
    "el": ("greek", "el", "gre", "ell"),
    "ms": ("malay", "ms", "may", "msa"),
    "cs": ("czech", "cs", "cze", "ces"),
    "ro": ("romanian", "ro", "rum", "ron"),
    "da": ("danish", "da", "dan", "dan"),
    "hu": ("hungarian", "hu", "hun", "hun"),
    "ta": ("tamil", "ta", "tam", "tam"),
    "no": ("norwegian", "no", "nor", "nor"),
    "th": ("thai", "th", "tha", "tha"),
    "ur": ("urdu", "ur", "urd", "urd"),
    "hr": ("croatian", "hr", "hrv", "hrv"),
    "bg": ("bulgarian", "bg", "bul", "bul"),
    "lt": ("lithuanian", "lt", "lit", "lit"),
    "la": ("latin", "la", "lat", "lat"),
    "mi": ("maori", "mi", "mao", "mri"),
    "ml": ("malayalam", "ml", "mal", "mal"),
    "cy": ("welsh", "cy", "wel", "cym"),
    "sk": ("slovak", "sk", "slo", "slk"),
    "te": ("telugu", "te", "tel", "tel"),
    "fa": ("persian", "fa", "per", "fas"),
    "lv": ("latvian", "lv", "lav", "lav"),
    "bn": ("bengali", "bn", "ben", "ben"),
    "sr": ("serbian", "sr", "srp", "srp"),
    "az": ("azerbaijani", "az", "aze", "aze"),
    "sl": ("slovenian", "sl", "slv", "slv"),
    "kn": ("kannada", "kn", "kan", "kan"),
    "et": ("estonian", "et", "est", "est"),
    "mk": ("macedonian", "mk", "mac", "mkd"),
    "br": ("breton", "br", "bre", "bre"),
    "eu": ("basque", "eu", "baq", "eus"),
    "is": ("icelandic", "is", "ice", "isl"),
    "hy": ("armenian", "hy", "arm", "hye"),
    "ne": ("nepali", "ne", "nep", "nep"),
    "mn": ("mongolian", "mn", "mon", "mon"),
    "bs": ("bosnian", "bs", "bos", "bos"),
    "kk": ("kazakh", "kk", "kaz", "kaz"),
    "sq": ("albanian", "sq", "alb", "sqi"),
    "sw": ("swahili", "sw", "swa", "swa"),
    "gl": ("galician", "gl", "glg", "glg"),
    "mr": ("marathi", "mr", "mar", "mar"),
    "pa": ("punjabi", "pa", "pan", "pan"),
    "si": ("sinhala", "si", "sin", "sin"),
    "km": ("khmer", "km", "khm", "khm"),
    "sn": ("shona", "sn", "sna", "sna"),
    "yo": ("yoruba", "yo", "yor", "yor"),
    "so": ("somali", "so", "som", "som"),
    "af": ("afrikaans", "af", "afr", "afr"),
    "oc": ("occitan", "oc", "oci", "oci"),
    "ka": ("georgian", "ka", "geo", "kat"),
    "be": ("belarusian", "be", "bel", "bel"),
    "tg": ("tajik", "tg", "tgk", "tgk"),
    "sd": ("sindhi", "sd", "snd", "snd"),
    "gu": ("gujarati", "gu", "guj", "guj"),
    "am": ("amharic", "am", "amh", "amh"),
    "yi": ("yiddish", "yi", "yid", "yid"),
    "lo": ("lao", "lo", "lao", "lao"),
    "uz": ("uzbek", "uz", "uzb", "uzb"),
    "fo": ("faroese", "fo", "fao", "fao"),
    "ht": ("haitian creole", "ht", "hat", "hat"),
    "ps": ("pashto", "ps", "pus", "pus"),
    "tk": ("turkmen", "tk", "tuk", "tuk"),
    "nn": ("nynorsk", "nn", "nno", "nno"),
    "mt": ("maltese", "mt", "mlt", "mlt"),
    "sa": ("sanskrit", "sa", "san", "san"),
    "lb": ("luxembourgish", "lb", "ltz", "ltz"),
    "my": ("myanmar", "my", "bur", "mya"),
    "bo": ("tibetan", "bo", "tib", "bod"),
    "tl": ("tagalog", "tl", "tgl", "tgl"),
    "mg": ("malagasy", "mg", "mlg", "mlg"),
    "as": ("assamese", "as", "asm", "asm"),
    "tt": ("tatar", "tt", "tat", "tat"),
    "haw": ("hawaiian", None, "haw", "haw"),
    "ln": ("lingala", "ln", "lin", "lin"),
    "ha": ("hausa", "ha", "hau", "hau"),
    "ba": ("bashkir", "ba", "bak", "bak"),
    "jw": ("javanese", "jv", "jav", "jav"),
    "su": ("sundanese", "su", "sun", "sun"),
    "yue": ("cantonese", None, "yue", "yue"),  # 639-3 only; written as Chinese, see docstring
}

#: Every Whisper language code, in whisper's own order.
WHISPER_CODES: tuple[str, ...] = tuple(_TABLE)

# What a file name gets for languages that have no code of the requested style.
_WRITE_OVERRIDES: dict[tuple[str, Style], str] = {
    ("haw", "iso639-1"): "haw",
    ("yue", "iso639-1"): "zh",
    ("yue", "iso639-2"): "chi",
}

# Other spellings seen in file names and stream tags (lower case) -> Whisper code.
_ALIASES: dict[str, str] = {
    # whisper's own aliases (whisper.tokenizer.TO_LANGUAGE_CODE)
    "burmese": "my",
    "valencian": "ca",
    "flemish": "nl",
    "haitian": "ht",
    "letzeburgesch": "lb",
    "pushto": "ps",
    "panjabi": "pa",
    "moldavian": "ro",
    "moldovan": "ro",
    "sinhalese": "si",
    "castilian": "es",
    "mandarin": "zh",
    # ISO 639-3 / retired / vendor codes
    "cmn": "zh",
    "yue": "yue",
    "zh-yue": "yue",
    "jv": "jw",
    "jav": "jw",
    "iw": "he",
    "ji": "yi",
    "mo": "ro",
    "scc": "sr",
    "scr": "hr",
    "nb": "no",
    "nob": "no",
    "fil": "tl",
    "pob": "pt",
    "frc": "fr",
    "gsw": "de",
    # Chinese script/region labels used by subtitle sites and Bazarr
    "chs": "zh",
    "cht": "zh",
    "zhs": "zh",
    "zht": "zh",
    "zh-hans": "zh",
    "zh-hant": "zh",
    # English names not in whisper's table
    "farsi": "fa",
    "filipino": "tl",
    "norwegian bokmal": "no",
    "norwegian bokmål": "no",
    "bokmål": "no",
    "bokmal": "no",
    "norwegian nynorsk": "nn",
    "modern greek": "el",
}
_NOT_A_LANGUAGE = frozenset({"und", "mul", "zxx", "mis", "unknown", "undetermined", "xx"})
_SEPARATORS = re.compile(r"[-_]")


def _build_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for code, (name, one, two_b, two_t) in _TABLE.items():
        for key in (code, name, one, two_b, two_t):
            if key:
                index.setdefault(key, code)
    index.update(_ALIASES)
    return index


_INDEX = _build_index()


def is_whisper_code(code: str) -> bool:
    """True when ``code`` is one of Whisper's language codes (exact, lower case)."""
    return code in _TABLE


def code_for(whisper_lang: str, style: Style = "iso639-1") -> str:
    """The code to write in a sidecar name for a Whisper language, in ``style``.

    ``iso639-2`` means ISO 639-2/B (``ger``, ``fre``), the form Plex documents for names.
    Raises ``ValueError`` for an unknown Whisper code or style.
    """
    if style not in STYLES:
        raise ValueError(f"unknown language code style {style!r}; use one of {STYLES}")
    entry = _TABLE.get(whisper_lang)
    if entry is None:
        raise ValueError(f"{whisper_lang!r} is not a Whisper language code")
    override = _WRITE_OVERRIDES.get((whisper_lang, style))
    if override:
        return override
    _name, one, two_b, _two_t = entry
    return (one if style == "iso639-1" else two_b) or two_b


def iso639_2t(whisper_lang: str) -> str:
    """The ISO 639-2/T code (``deu``, ``fra``) of a Whisper language (``yue`` for Cantonese)."""
    entry = _TABLE.get(whisper_lang)
    if entry is None:
        raise ValueError(f"{whisper_lang!r} is not a Whisper language code")
    return entry[3]


def english_name(whisper_lang: str) -> str:
    """Whisper's English name of a language, title-cased (``Haitian Creole``)."""
    entry = _TABLE.get(whisper_lang)
    if entry is None:
        raise ValueError(f"{whisper_lang!r} is not a Whisper language code")
    return entry[0].title()


def parse_language(token: str | None) -> str | None:
    """The Whisper code for a language token in any common form, or None.

    Accepts Whisper codes, ISO 639-1, 639-2/B and /T, English names in any case, BCP 47
    tags (``pt-BR``, ``zh-Hans``, ``en_US``: the primary subtag decides) and names with a
    qualifier (``Spanish; Castilian``, ``Portuguese (Brazil)``). ``und``/``mul``/``zxx``
    and anything unknown give None.
    """
    if not token:
        return None
    key = " ".join(token.strip().casefold().split())
    if not key or key in _NOT_A_LANGUAGE:
        return None
    if key in _INDEX:
        return _INDEX[key]
    for part in key.split(";"):  # "spanish; castilian"
        part = part.split("(")[0].strip()  # "portuguese (brazil)"
        if part in _INDEX:
            return _INDEX[part]
        normal = _SEPARATORS.sub("-", part)
        if normal in _INDEX:  # "zh_hans", "zh-yue"
            return _INDEX[normal]
        primary = normal.split("-")[0]
        if primary != normal and primary in _INDEX and len(primary) in (2, 3):
            return _INDEX[primary]
    return None
