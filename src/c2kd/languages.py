"""The one registry of language codes used everywhere in c2kd.

Codes are ISO 639-1 (two letters) where one exists. Aliases found in the wild are normalised, e.g. the
original C2KD release stores Czech as ``cz``; :func:`normalize_language` maps it to ``cs``.
The registry covers the languages of LaBSE's and multilingual-e5's training data (about 110), so that queries
in languages never seen during retrieval training are still accepted.
"""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Iterable

from c2kd.errors import UnknownLanguageError

ENGLISH = "en"

#: code -> English name. The only list of languages in the project.
LANGUAGES: dict[str, str] = {
    "af": "Afrikaans", "am": "Amharic", "ar": "Arabic", "as": "Assamese", "az": "Azerbaijani",
    "be": "Belarusian", "bg": "Bulgarian", "bn": "Bengali", "bo": "Tibetan", "br": "Breton", "bs": "Bosnian",
    "ca": "Catalan", "ceb": "Cebuano", "co": "Corsican", "cs": "Czech", "cy": "Welsh", "da": "Danish",
    "de": "German", "el": "Greek", "en": "English", "eo": "Esperanto", "es": "Spanish", "et": "Estonian",
    "eu": "Basque", "fa": "Persian", "fi": "Finnish", "fr": "French", "fy": "Frisian", "ga": "Irish",
    "gd": "Scottish Gaelic", "gl": "Galician", "gu": "Gujarati", "ha": "Hausa", "haw": "Hawaiian",
    "he": "Hebrew", "hi": "Hindi", "hmn": "Hmong", "hr": "Croatian", "ht": "Haitian Creole",
    "hu": "Hungarian", "hy": "Armenian", "id": "Indonesian", "ig": "Igbo", "is": "Icelandic", "it": "Italian",
    "ja": "Japanese", "jv": "Javanese", "ka": "Georgian", "kk": "Kazakh", "km": "Khmer", "kn": "Kannada",
    "ko": "Korean", "ku": "Kurdish", "ky": "Kyrgyz", "la": "Latin", "lb": "Luxembourgish", "lo": "Lao",
    "lt": "Lithuanian", "lv": "Latvian", "mg": "Malagasy", "mi": "Maori", "mk": "Macedonian",
    "ml": "Malayalam", "mn": "Mongolian", "mr": "Marathi", "ms": "Malay", "mt": "Maltese", "my": "Burmese",
    "ne": "Nepali", "nl": "Dutch", "no": "Norwegian", "ny": "Chichewa", "oc": "Occitan", "or": "Odia",
    "pa": "Punjabi", "pl": "Polish", "ps": "Pashto", "pt": "Portuguese", "ro": "Romanian", "ru": "Russian",
    "rw": "Kinyarwanda", "sa": "Sanskrit", "sd": "Sindhi", "si": "Sinhala", "sk": "Slovak", "sl": "Slovenian",
    "sm": "Samoan", "sn": "Shona", "so": "Somali", "sq": "Albanian", "sr": "Serbian", "st": "Sesotho",
    "su": "Sundanese", "sv": "Swedish", "sw": "Swahili", "ta": "Tamil", "te": "Telugu", "tg": "Tajik",
    "th": "Thai", "tk": "Turkmen", "tl": "Tagalog", "tr": "Turkish", "tt": "Tatar", "ug": "Uyghur",
    "uk": "Ukrainian", "ur": "Urdu", "uz": "Uzbek", "vi": "Vietnamese", "wo": "Wolof", "xh": "Xhosa",
    "yi": "Yiddish", "yo": "Yoruba", "zh": "Chinese", "zu": "Zulu",
}

#: Non-standard codes seen in data releases and user input -> registry code.
ALIASES: dict[str, str] = {
    "cz": "cs",  # the original C2KD release
    "jp": "ja", "kr": "ko", "dk": "da", "gr": "el", "ua": "uk", "iw": "he", "in": "id", "ji": "yi",
    "nb": "no", "nn": "no", "fil": "tl", "zh-cn": "zh", "zh-tw": "zh", "zh-hans": "zh", "zh-hant": "zh",
    "cmn": "zh", "pt-br": "pt", "pt-pt": "pt", "en-us": "en", "en-gb": "en", "es-es": "es", "es-mx": "es",
    "fr-fr": "fr", "de-de": "de", "sh": "sr",
}

#: ISO 639-2 three-letter codes (terminology and bibliographic forms) -> registry code.
ISO_639_2: dict[str, str] = {
    "afr": "af", "amh": "am", "ara": "ar", "asm": "as", "aze": "az", "bel": "be", "bul": "bg", "ben": "bn",
    "bod": "bo", "tib": "bo", "bre": "br", "bos": "bs", "cat": "ca", "cos": "co", "ces": "cs", "cze": "cs",
    "cym": "cy", "wel": "cy", "dan": "da", "deu": "de", "ger": "de", "ell": "el", "gre": "el", "eng": "en",
    "epo": "eo", "spa": "es", "est": "et", "eus": "eu", "baq": "eu", "fas": "fa", "per": "fa", "fin": "fi",
    "fra": "fr", "fre": "fr", "fry": "fy", "gle": "ga", "gla": "gd", "glg": "gl", "guj": "gu", "hau": "ha",
    "heb": "he", "hin": "hi", "hrv": "hr", "hat": "ht", "hun": "hu", "hye": "hy", "arm": "hy", "ind": "id",
    "ibo": "ig", "isl": "is", "ice": "is", "ita": "it", "jpn": "ja", "jav": "jv", "kat": "ka", "geo": "ka",
    "kaz": "kk", "khm": "km", "kan": "kn", "kor": "ko", "kur": "ku", "kir": "ky", "lat": "la", "ltz": "lb",
    "lao": "lo", "lit": "lt", "lav": "lv", "mlg": "mg", "mri": "mi", "mao": "mi", "mkd": "mk", "mac": "mk",
    "mal": "ml", "mon": "mn", "mar": "mr", "msa": "ms", "may": "ms", "mlt": "mt", "mya": "my", "bur": "my",
    "nep": "ne", "nld": "nl", "dut": "nl", "nor": "no", "nya": "ny", "oci": "oc", "ori": "or", "pan": "pa",
    "pol": "pl", "pus": "ps", "por": "pt", "ron": "ro", "rum": "ro", "rus": "ru", "kin": "rw", "san": "sa",
    "snd": "sd", "sin": "si", "slk": "sk", "slo": "sk", "slv": "sl", "smo": "sm", "sna": "sn", "som": "so",
    "sqi": "sq", "alb": "sq", "srp": "sr", "sot": "st", "sun": "su", "swe": "sv", "swa": "sw", "tam": "ta",
    "tel": "te", "tgk": "tg", "tha": "th", "tuk": "tk", "tgl": "tl", "tur": "tr", "tat": "tt", "uig": "ug",
    "ukr": "uk", "urd": "ur", "uzb": "uz", "vie": "vi", "wol": "wo", "xho": "xh", "yid": "yi", "yor": "yo",
    "zho": "zh", "chi": "zh", "zul": "zu",
}

#: Languages of each benchmark, as the paper uses them.
BENCHMARK_LANGUAGES: dict[str, tuple[str, ...]] = {
    "multi-msrvtt": ("en", "de", "fr", "cs", "zh", "ru", "vi", "sw", "es"),
    "multi-youcook2": ("en", "de", "fr", "cs", "zh", "ru", "vi", "ja", "es"),
    "vatex": ("en", "zh"),
    "rudder": ("en", "hi", "mr", "kn"),
    "multi30k-proxy": ("en", "de", "fr", "cs"),
}

#: Languages' names in their own language, as users type them (``Deutsch``, ``français``, ``čeština``).
ENDONYMS: dict[str, str] = {
    "af": "Afrikaans", "am": "አማርኛ", "ar": "العربية", "az": "azərbaycan", "be": "беларуская", "bg": "български",
    "bn": "বাংলা", "ca": "català", "cs": "čeština", "cy": "Cymraeg", "da": "dansk", "de": "Deutsch",
    "el": "ελληνικά", "en": "English", "eo": "Esperanto", "es": "español", "et": "eesti", "eu": "euskara",
    "fa": "فارسی", "fi": "suomi", "fr": "français", "ga": "Gaeilge", "gl": "galego", "gu": "ગુજરાતી",
    "he": "עברית", "hi": "हिन्दी", "hr": "hrvatski", "hu": "magyar", "hy": "հայերեն", "id": "Bahasa Indonesia",
    "is": "íslenska", "it": "italiano", "ja": "日本語", "ka": "ქართული", "kk": "қазақ", "km": "ខ្មែរ",
    "kn": "ಕನ್ನಡ", "ko": "한국어", "ku": "Kurdî", "la": "Latina", "lo": "ລາວ", "lt": "lietuvių", "lv": "latviešu",
    "mk": "македонски", "ml": "മലയാളം", "mn": "монгол", "mr": "मराठी", "ms": "Bahasa Melayu", "my": "မြန်မာ",
    "ne": "नेपाली", "nl": "Nederlands", "no": "norsk", "or": "ଓଡ଼ିଆ", "pa": "ਪੰਜਾਬੀ", "pl": "polski",
    "ps": "پښتو", "pt": "português", "ro": "română", "ru": "русский", "si": "සිංහල", "sk": "slovenčina",
    "sl": "slovenščina", "sq": "shqip", "sr": "српски", "sv": "svenska", "sw": "Kiswahili", "ta": "தமிழ்",
    "te": "తెలుగు", "th": "ไทย", "tl": "Tagalog", "tr": "Türkçe", "uk": "українська", "ur": "اردو",
    "uz": "oʻzbek", "vi": "Tiếng Việt", "xh": "isiXhosa", "yo": "Yorùbá", "zh": "中文", "zu": "isiZulu",
}


def _fold(text: str) -> str:
    """Lower case without accents, so that ``Francais`` finds ``français``."""
    decomposed = unicodedata.normalize("NFKD", text.strip().lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


_NAMES = {_fold(name): code for code, name in LANGUAGES.items()}
_NAMES.update({_fold(name): code for code, name in ENDONYMS.items() if code in LANGUAGES})


#: the longest language hint read: codes, aliases and names are much shorter (a longer one is refused at once)
MAX_CODE_CHARS = 64


def normalize_language(code: str) -> str:
    """Return the registry code for ``code`` (an ISO code, a known alias, or the language's name in English or
    in itself, with or without accents).

    Raises :class:`UnknownLanguageError` naming close matches when ``code`` is unknown.

    Example:
        >>> normalize_language("cz"), normalize_language("DE"), normalize_language("zh_CN"), normalize_language("Spanish")
        ('cs', 'de', 'zh', 'es')
    """
    if not isinstance(code, str) or not code.strip():
        raise UnknownLanguageError(f"Language code must be a non-empty string, got {code!r}.")
    if len(code) > MAX_CODE_CHARS:  # no language is named this long: neither searched for look-alikes nor echoed
        raise UnknownLanguageError(f"Unknown language code of {len(code)} characters (the longest known name has "
                                   f"fewer than {MAX_CODE_CHARS}). Use an ISO 639-1 code such as 'en', 'de' or 'cs'; "
                                   f"`c2kd languages` lists the {len(LANGUAGES)} known codes.")
    key = code.strip().lower().replace("_", "-")
    if key in LANGUAGES:
        return key
    if key in ALIASES:
        return ALIASES[key]
    if key in ISO_639_2:
        return ISO_639_2[key]
    if _fold(key) in _NAMES:
        return _NAMES[_fold(key)]
    base = key.split("-")[0]
    if base in LANGUAGES:
        return base
    raise UnknownLanguageError(f"Unknown language code {code!r}.{_suggest(key)} Use an ISO 639-1 code such as 'en', "
                               f"'de' or 'cs'; `c2kd languages` lists the {len(LANGUAGES)} known codes.")


def _suggest(key: str) -> str:
    """' Did you mean ...?' with registry codes and their names: languages whose English name starts with ``key``
    (``germ`` -> German), then close spellings of codes and names."""
    prefixed = [code for name, code in _NAMES.items() if len(key) >= 3 and name.startswith(key)]
    close = difflib.get_close_matches(key, list(LANGUAGES) + list(ALIASES) + list(_NAMES), n=3, cutoff=0.6)
    codes = list(dict.fromkeys([*prefixed, *(ALIASES.get(c) or _NAMES.get(c) or c for c in close)]))[:3]
    if not codes:
        return ""
    return " Did you mean " + ", ".join(f"{c!r} ({LANGUAGES[c]})" for c in codes) + "?"


def normalize_languages(codes: Iterable[str]) -> list[str]:
    """Normalise several codes, keeping their order and dropping repeats."""
    out: list[str] = []
    for code in codes:
        norm = normalize_language(code)
        if norm not in out:
            out.append(norm)
    return out


def language_name(code: str) -> str:
    """English name of a language code, e.g. ``language_name('cz') == 'Czech'``."""
    return LANGUAGES[normalize_language(code)]
