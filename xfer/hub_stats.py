"""Modelled sizes and token lengths of the real datasets, for cost estimates (`xfer plan --cost`) and the padding
benchmark when the data itself cannot be read (offline, or before anything is downloaded).

`rows(task, role, lang)`: the published size of a split (role: train, dev, lang_dev, test); XTREME's
per-language splits that vary are approximated (PAN-X dev/test follow the Rahimi et al. 2019 split sizes, UD-POS
is modelled at one size per language). `lengths(task, role, n, seed)`: token counts per model input (XLM-R's
SentencePiece, special tokens included) drawn from a lognormal clipped to [LOW, 512], whose median and spread
are set per task so that the means match measured XLM-R means (MNLI pairs ~40, XNLI ~48, PAN-X ~25, UD-POS
~30, SQuAD question+context ~190 before windowing). Multiple-choice tasks give the length of one choice; span
QA the length of a whole question+context, which the cost model cuts into doc-stride windows. These are
estimates for planning, labelled "modelled" wherever they are used, never results.
"""

from __future__ import annotations

import numpy as np

from xfer import languages as L

LOW = 4  # <s> ... </s> around a token or two

# (median, sigma) of the lognormal token count of one model input, per task
LENGTH_MODEL = {
    "mnli": (35, 0.5), "xnli": (42, 0.5), "anli": (38, 0.6), "qqp": (26, 0.5), "pawsx": (52, 0.35),
    "panx": (22, 0.5), "udpos": (25, 0.6), "ccg": (32, 0.5),
    "squad": (170, 0.45), "squad_v2": (170, 0.45), "xquad": (175, 0.45), "mlqa": (190, 0.55),
    "tydiqa": (160, 0.6), "hellaswag": (62, 0.3), "cosmosqa": (105, 0.35), "commonsenseqa": (20, 0.3),
    "tatoeba": (12, 0.45), "bucc2018": (34, 0.5),
}

TRAIN_ROWS = {"mnli": 392_702, "xnli": 392_702, "qqp": 363_846, "squad": 87_599, "xquad": 87_599,
              "mlqa": 87_599, "squad_v2": 130_319, "hellaswag": 39_905, "cosmosqa": 25_262,
              "commonsenseqa": 9_741, "ccg": 39_604, "pawsx": 49_401, "panx": 20_000, "udpos": 21_253,
              "tydiqa": 3_696,
              "anli": 16_946 + 45_460 + 100_459 + 392_702 + 549_367}  # ANLI+: ANLI r1-r3, MNLI, SNLI
DEV_ROWS = {"mnli": 9_815, "xnli": 9_815, "qqp": 40_430, "squad": 10_570, "xquad": 10_570, "mlqa": 10_570,
            "squad_v2": 11_873, "hellaswag": 10_042, "cosmosqa": 2_985, "commonsenseqa": 1_221, "ccg": 1_913,
            "pawsx": 2_000, "panx": 10_000, "udpos": 3_974, "anli": 3_200}
MLQA_TEST = {"en": 11_590, "es": 5_253, "de": 4_517, "ar": 5_335, "hi": 4_918, "vi": 5_495, "zh": 5_137}
MLQA_DEV = {"en": 1_148, "es": 500, "de": 512, "ar": 517, "hi": 507, "vi": 511, "zh": 504}
TYDIQA_TEST = {"en": 440, "ar": 921, "bn": 113, "fi": 782, "id": 565, "ko": 276, "ru": 812, "sw": 499, "te": 669}
BUCC_TEST = {"de": 9_580, "fr": 9_086, "ru": 14_435, "zh": 1_899}
BUCC_DEV = {"de": 1_038, "fr": 929, "ru": 2_374, "zh": 257}
TATOEBA_SMALL = {"jv": 205, "te": 234, "kk": 575, "sw": 390, "ta": 307, "ml": 687, "mr": 1_000, "tl": 1_000}
UDPOS_NO_DEV = {"kk", "th", "tl", "yo"}


def _panx(lang: str) -> int:
    train = L.PANX_TRAIN_SIZE.get(lang, 20_000)
    return 10_000 if train >= 10_000 else min(train, 1_000)


def rows(task: str, role: str, lang: str = "en") -> int:
    """Modelled rows of a task's split: `role` train and dev are English; lang_dev and test per language."""
    if role == "train":
        return TRAIN_ROWS[task]
    if role == "dev":
        return DEV_ROWS.get(task, 0)
    if task == "xnli":
        return 5_010 if role == "test" else 2_490
    if task == "pawsx":
        return 2_000
    if task == "panx":
        return _panx(lang)
    if task == "udpos":
        return 0 if role == "lang_dev" and lang in UDPOS_NO_DEV else (2_500 if role == "lang_dev" else 3_000)
    if task == "xquad":
        return 1_190 if role == "test" else 0
    if task == "mlqa":
        return (MLQA_TEST if role == "test" else MLQA_DEV)[lang]
    if task == "tydiqa":
        return TYDIQA_TEST[lang] if role == "test" else 0
    if task == "bucc2018":
        return (BUCC_TEST if role == "test" else BUCC_DEV)[lang]
    if task == "tatoeba":
        return TATOEBA_SMALL.get(lang, 1_000) if role == "test" else 0
    raise KeyError(f"no modelled size for {task} {role}")


def lengths(task: str, n: int, seed: int = 0, max_length: int = 512) -> np.ndarray:
    """`n` modelled token counts of the task's model inputs, clipped to [LOW, max_length]."""
    median, sigma = LENGTH_MODEL[task]
    drawn = np.random.default_rng([seed, n]).lognormal(np.log(median), sigma, size=n)
    return np.clip(np.rint(drawn), LOW, max_length).astype(np.int64)
