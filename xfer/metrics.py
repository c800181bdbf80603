"""XTREME's metric definitions, in percent: accuracy, seqeval F1, SQuAD v1.1 exact match and F1,
and nearest-neighbour retrieval accuracy."""

from __future__ import annotations

import collections
import re
import string
from typing import Sequence

import numpy as np

from xfer.errors import XferError


def accuracy(predictions: Sequence, references: Sequence) -> float:
    if len(predictions) != len(references):
        raise XferError(f"accuracy: {len(predictions)} predictions for {len(references)} references")
    if not references:
        raise XferError("accuracy: no references to score")
    return 100.0 * sum(p == r for p, r in zip(predictions, references)) / len(references)


def _check_tags(predictions, references) -> None:
    if len(predictions) != len(references):
        raise XferError(f"tagging: {len(predictions)} predicted sentences for {len(references)} references")
    for i, (p, r) in enumerate(zip(predictions, references)):
        if len(p) != len(r):
            raise XferError(f"tagging: sentence {i} has {len(p)} predicted tags for {len(r)} words")


def seqeval_scores(predictions: list[list[str]], references: list[list[str]]) -> dict[str, float]:
    """Micro precision, recall and F1 over entities in percent, as the installed seqeval (>= 1.0, default
    mode) computes them; XTREME scores PAN-X and UD-POS with them. seqeval >= 1.0 reads an un-prefixed tag's
    first letter as the chunk prefix and the rest as the type (`NOUN` -> N + `OUN`; `CCONJ` and `SCONJ`
    both become type `CONJ`), so POS F1 differs from seqeval 0.0.12's; its "not a NE tag" warnings are
    silenced."""
    from seqeval import metrics as seqeval

    _check_tags(predictions, references)
    return {name: _seqeval(getattr(seqeval, f"{name}_score"), predictions, references)
            for name in ("precision", "recall", "f1")}


def _seqeval(score, predictions, references) -> float:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return 100.0 * float(score(references, predictions))


def seqeval_f1(predictions: list[list[str]], references: list[list[str]]) -> float:
    """Micro F1 over entities, as seqeval computes it (XTREME scores PAN-X and UD-POS with it); see
    `seqeval_scores` for how seqeval >= 1.0 reads POS tags."""
    from seqeval.metrics import f1_score

    _check_tags(predictions, references)
    return _seqeval(f1_score, predictions, references)


def token_accuracy(predictions: list[list[str]], references: list[list[str]]) -> float:
    _check_tags(predictions, references)
    return accuracy([t for s in predictions for t in s], [t for s in references for t in s])


# ---- SQuAD v1.1 (official evaluate-v1.1.py definitions) ----
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def squad_normalize(text: str) -> str:
    """Lower-case, drop ASCII punctuation, drop English articles, fold whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def squad_exact_match(prediction: str, gold: str) -> float:
    return float(squad_normalize(prediction) == squad_normalize(gold))


def squad_f1(prediction: str, gold: str) -> float:
    predicted, truth = squad_normalize(prediction).split(), squad_normalize(gold).split()
    common = collections.Counter(predicted) & collections.Counter(truth)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(truth)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: dict[str, str], references: dict[str, list[str]]) -> dict[str, float]:
    """Exact match and F1 in percent: the max over gold answers; an unanswered question scores 0."""
    return _squad_totals(predictions, references, squad_f1, unanswerable=False)


def squad_v2_scores(predictions: dict[str, str], references: dict[str, list[str]]) -> dict[str, float]:
    """SQuAD 2.0 exact match and F1 in percent (official evaluate-v2.0.py): gold answers that normalise to
    nothing are dropped, and a question left with none is unanswerable, gold [""]; an empty prediction or gold
    scores F1 1 only when both are empty. The max over gold answers; a missing prediction scores 0."""
    return _squad_totals(predictions, references, _f1_v2, unanswerable=True)


def _squad_totals(predictions, references, f1_of, unanswerable: bool) -> dict[str, float]:
    if not references:
        raise XferError("squad: no questions to score")
    em = f1 = 0.0
    for qid, golds in references.items():
        if qid not in predictions:
            continue
        if unanswerable:
            golds = [g for g in golds if squad_normalize(g)] or [""]
        em += max(squad_exact_match(predictions[qid], g) for g in golds)
        f1 += max(f1_of(predictions[qid], g) for g in golds)
    return {"exact_match": 100.0 * em / len(references), "f1": 100.0 * f1 / len(references)}


def _f1_v2(prediction: str, gold: str) -> float:
    if not squad_normalize(prediction) or not squad_normalize(gold):
        return float(squad_normalize(prediction) == squad_normalize(gold))
    return squad_f1(prediction, gold)


# ---- retrieval ----
def cosine_nearest(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """For each source row, the index of the target row with the highest cosine similarity."""
    if source.ndim != 2 or target.ndim != 2 or source.shape[1] != target.shape[1]:
        raise XferError(f"retrieval: embedding shapes {source.shape} and {target.shape} do not match")
    s = source / np.maximum(np.linalg.norm(source, axis=1, keepdims=True), 1e-12)
    t = target / np.maximum(np.linalg.norm(target, axis=1, keepdims=True), 1e-12)
    return (s @ t.T).argmax(axis=1)


def retrieval_accuracy(nearest: Sequence[int]) -> float:
    """Tatoeba: source i's translation is target i."""
    return accuracy(list(nearest), list(range(len(nearest))))
