"""Language facts in one place: XTREME's language lists, code maps, and the low-resource presets."""

from __future__ import annotations

# XTREME's evaluation languages per target task (Hu et al. 2020; google-research/xtreme).
XNLI = ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh")
PAWSX = ("de", "en", "es", "fr", "ja", "ko", "zh")
UDPOS = (
    "af", "ar", "bg", "de", "el", "en", "es", "et", "eu", "fa", "fi", "fr", "he", "hi", "hu", "id", "it",
    "ja", "kk", "ko", "mr", "nl", "pt", "ru", "ta", "te", "th", "tl", "tr", "ur", "vi", "yo", "zh",
)
PANX = (
    "ar", "he", "vi", "id", "jv", "ms", "tl", "eu", "ml", "ta", "te", "af", "nl", "en", "de", "el", "bn",
    "hi", "mr", "ur", "fa", "fr", "it", "pt", "es", "bg", "ru", "ja", "ka", "ko", "th", "sw", "yo", "my",
    "zh", "kk", "tr", "et", "fi", "hu",
)
XQUAD = ("en", "es", "de", "el", "ru", "tr", "ar", "vi", "th", "zh", "hi")
MLQA = ("en", "es", "de", "ar", "hi", "vi", "zh")
TYDIQA = ("en", "ar", "bn", "fi", "id", "ko", "ru", "sw", "te")
BUCC2018 = ("de", "fr", "ru", "zh")
TATOEBA = (
    "ar", "he", "vi", "id", "jv", "tl", "eu", "ml", "ta", "te", "af", "nl", "de", "el", "bn", "hi", "mr",
    "ur", "fa", "fr", "it", "pt", "es", "bg", "ru", "ja", "ka", "ko", "th", "sw", "zh", "kk", "tr", "et",
    "fi", "hu",
)

# Tatoeba's Hub configs are named by ISO 639-3 codes (and a few macrolanguage choices).
TATOEBA_CODES = {
    "af": "afr", "ar": "ara", "bn": "ben", "bg": "bul", "de": "deu", "zh": "cmn", "el": "ell", "et": "est",
    "eu": "eus", "fi": "fin", "fr": "fra", "he": "heb", "hi": "hin", "hu": "hun", "id": "ind", "it": "ita",
    "jv": "jav", "ja": "jpn", "ka": "kat", "kk": "kaz", "ko": "kor", "ml": "mal", "mr": "mar", "nl": "nld",
    "fa": "pes", "pt": "por", "ru": "rus", "es": "spa", "sw": "swh", "ta": "tam", "te": "tel", "tl": "tgl",
    "th": "tha", "tr": "tur", "ur": "urd", "vi": "vie",
}

# udpos's Hub configs are named by the English name of the language (`udpos.<Name>`).
UDPOS_NAMES = {
    "af": "Afrikaans", "ar": "Arabic", "bg": "Bulgarian", "de": "German", "el": "Greek", "en": "English",
    "es": "Spanish", "et": "Estonian", "eu": "Basque", "fa": "Persian", "fi": "Finnish", "fr": "French",
    "he": "Hebrew", "hi": "Hindi", "hu": "Hungarian", "id": "Indonesian", "it": "Italian", "ja": "Japanese",
    "kk": "Kazakh", "ko": "Korean", "mr": "Marathi", "nl": "Dutch", "pt": "Portuguese", "ru": "Russian",
    "ta": "Tamil", "te": "Telugu", "th": "Thai", "tl": "Tagalog", "tr": "Turkish", "ur": "Urdu",
    "vi": "Vietnamese", "yo": "Yoruba", "zh": "Chinese",
}
# TyDiQA-GoldP mixes its languages in one config: a question's language is the prefix of its id
# ("swahili-1234...-0").
TYDIQA_PREFIXES = {
    "ar": "arabic", "bn": "bengali", "en": "english", "fi": "finnish", "id": "indonesian", "ko": "korean",
    "ru": "russian", "sw": "swahili", "te": "telugu",
}

# PAN-X (WikiANN, Rahimi et al. 2019 balanced splits) training-set sizes, from the Hub's dataset info.
PANX_TRAIN_SIZE = {lang: 20_000 for lang in PANX}
PANX_TRAIN_SIZE.update({"jv": 100, "my": 100, "yo": 100, "kk": 1_000, "sw": 1_000, "te": 1_000,
                        "af": 5_000, "hi": 5_000, "mr": 5_000, "bn": 10_000, "eu": 10_000, "ka": 10_000,
                        "ml": 10_000, "tl": 10_000, "et": 15_000, "ta": 15_000})


def panx_preset(max_train: int) -> frozenset[str]:
    """The languages whose PAN-X training set has at most `max_train` sentences."""
    return frozenset(lang for lang, size in PANX_TRAIN_SIZE.items() if size <= max_train)


# Where the presets' criterion comes from, stated in every report.
LOW_RESOURCE_SOURCE = "PAN-X training-set sizes, Rahimi et al. 2019 splits, as in google/xtreme dataset info"
LOW_RESOURCE_PRESETS = {
    "panx-1k": (panx_preset(1_000),
                "languages whose PAN-X (WikiANN, Rahimi et al. 2019 splits) training set has at most 1,000 sentences"),
    "panx-5k": (panx_preset(5_000),
                "languages whose PAN-X (WikiANN, Rahimi et al. 2019 splits) training set has at most 5,000 sentences"),
}
