"""MLQA exact match and F1, as facebookresearch/MLQA `mlqa_evaluation_v1.py` defines them (XTREME scores
MLQA with that script): answers are lower-cased, stripped of every punctuation character (Unicode category
P* plus ASCII `string.punctuation`, which includes symbols such as `$` and `+`), stripped of the answer
language's articles, and split into tokens: on whitespace, or for Chinese into single CJK characters
(U+4E00-U+9FA5) and whitespace-separated runs of anything else ("mixed segmentation").

Quirks kept on purpose, because published MLQA numbers carry them:
- Arabic: the official pattern `'\\sال^|ال'` can never match its first alternative, so every "ال" is
  replaced by a space, wherever it occurs in a word ("المال" -> " م ").
- Articles are removed after punctuation and matched with Python's Unicode `\\b`.
- EM/F1 take the maximum over the gold answers; a question without a prediction scores 0 and still
  counts in the denominator.
"""

from __future__ import annotations

import collections
import re
import string
import unicodedata
from typing import Mapping, Sequence

from xfer.errors import XferError

LANGUAGES = ("en", "es", "hi", "vi", "de", "ar", "zh")
_ASCII_PUNCTUATION = frozenset(string.punctuation)
_CJK = re.compile("[\u4e00-\u9fa5]")
_ARTICLES = {
    "en": re.compile(r"\b(a|an|the)\b"),
    "es": re.compile(r"\b(un|una|unos|unas|el|la|los|las)\b"),
    "vi": re.compile(r"\b(của|là|cái|chiếc|những)\b"),
    "de": re.compile(r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b"),
    # the official pattern, verbatim: its first alternative needs a character after the end of the string
    "ar": re.compile("\\sال^|ال"),
}


def is_punctuation(char: str) -> bool:
    """MLQA's PUNCT set: any Unicode punctuation (category P*) or ASCII punctuation character."""
    return char in _ASCII_PUNCTUATION or unicodedata.category(char).startswith("P")


def _check(lang: str) -> None:
    if lang not in LANGUAGES:
        raise XferError(f"mlqa: unknown answer language {lang!r} (known: {' '.join(LANGUAGES)})")


def mixed_segmentation(text: str) -> list[str]:
    """Chinese tokens: each CJK character and each punctuation character alone, other runs split on
    whitespace."""
    tokens: list[str] = []
    run = ""
    for char in text:
        if _CJK.match(char) or is_punctuation(char):
            tokens.extend(run.split())
            run = ""
            tokens.append(char)
        else:
            run += char
    tokens.extend(run.split())
    return tokens


def normalize_answer(text: str, lang: str) -> str:
    """Lower-case, drop punctuation, drop `lang`'s articles, re-join the tokens with single spaces."""
    _check(lang)
    text = "".join(ch for ch in text.lower() if not is_punctuation(ch))
    if lang in _ARTICLES:
        text = _ARTICLES[lang].sub(" ", text)
    tokens = mixed_segmentation(text) if lang == "zh" else text.split()
    return " ".join(t for t in tokens if t.strip())


def exact_match(prediction: str, gold: str, lang: str) -> float:
    return float(normalize_answer(prediction, lang) == normalize_answer(gold, lang))


def f1(prediction: str, gold: str, lang: str) -> float:
    """Token-overlap F1 in [0, 1] between the normalised answers."""
    predicted, truth = normalize_answer(prediction, lang).split(), normalize_answer(gold, lang).split()
    same = sum((collections.Counter(predicted) & collections.Counter(truth)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(truth)
    return 2 * precision * recall / (precision + recall)


def scores(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]], lang: str) -> dict[str, float]:
    """{"exact_match", "f1"} in percent over every question of `references` (question id -> gold answer
    texts); a question missing from `predictions` scores 0; predictions for unknown ids are ignored."""
    _check(lang)
    if not references:
        raise XferError("mlqa: no questions to score")
    em = total_f1 = 0.0
    for qid, golds in references.items():
        if not golds:
            raise XferError(f"mlqa: question {qid!r} has no gold answer")
        if qid not in predictions:
            continue
        prediction = predictions[qid]
        em += max(exact_match(prediction, g, lang) for g in golds)
        total_f1 += max(f1(prediction, g, lang) for g in golds)
    return {"exact_match": 100.0 * em / len(references), "f1": 100.0 * total_f1 / len(references)}
