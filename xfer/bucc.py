"""BUCC 2018 bitext mining as XTREME does it (google-research/xtreme `third_party/utils_retrieve.py`:
`mine_bitext`, `bucc_optimize`, `bucc_extract`; `evaluate.py`: `bucc_f1`), in numpy.

1. `mine`: cosine similarities between L2-normalised sentence embeddings; every source and target
   sentence gets its k nearest neighbours on the other side; a candidate pair (x, y) is scored by the
   ratio margin of Artetxe and Schwenk (2019), cos(x, y) / ((mean cos of x's k neighbours + mean cos of
   y's k neighbours) / 2); each source keeps its best-scoring target ("forward") and each target its
   best-scoring source ("backward"); both lists are merged by descending score and taken greedily one to
   one (XTREME's `retrieval="max"`), keeping scores above 0.
2. `select_threshold`: the score threshold with the best F1 on a gold set.
3. `apply_threshold`: the candidate pairs whose score is >= the threshold.
4. `pair_scores`: precision, recall and F1 of predicted vs gold (source id, target id) pairs.

The threshold must be chosen on the dev gold (BUCC's "sample" gold, the Hub's validation split) and then
applied unchanged to the test candidates, scored against the test gold (BUCC's "training" gold, the Hub's
test split, XTREME's test set). XTREME's own scripts do not do this: `bucc_eval` re-optimises the
threshold on whichever gold file it is given, so their published BUCC numbers pick the threshold on the
test gold itself (google-research/xtreme issues 60 and 69). xfer keeps the two steps apart; see
`score_with_dev_threshold`.

Differences from XTREME's code, none of which changes a result except where noted: float64 numpy
instead of float32 faiss (scores can differ in the last digits); `select_threshold` only cuts between
distinct scores, so tied candidates are kept or dropped together (XTREME may report the F1 of a cut
inside a tie group that its own `>=` extraction then does not reproduce), and it does not crash when
the best cut is after the last candidate (XTREME indexes past the end there). Where XTREME mines
sentence *texts*, duplicate sentences share one embedding and sentences that occur more than once are
dropped from the candidates (their id is ambiguous); pass `src_texts`/`tgt_texts` to `mine` to get the
same behaviour, otherwise every row is its own sentence.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from xfer.errors import XferError

Candidate = tuple[str, str, float]


def _unit_rows(emb: np.ndarray, name: str) -> np.ndarray:
    emb = np.asarray(emb, dtype=np.float64)
    if emb.ndim != 2 or emb.shape[0] == 0:
        raise XferError(f"bucc: {name} embeddings must be a non-empty 2-D array, got shape {emb.shape}")
    return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)


def _knn(query: np.ndarray, base: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k most similar rows of `base` for each row of `query` (similarities, indices), best first."""
    sims = query @ base.T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, order, axis=1), order


def _unify(texts: Sequence[str] | None, n: int, name: str) -> tuple[list[int], set[int]]:
    """Rows to keep (first occurrence of each text) and the kept rows whose text occurs more than once."""
    if texts is None:
        return list(range(n)), set()
    if len(texts) != n:
        raise XferError(f"bucc: {len(texts)} {name} texts for {n} {name} embeddings")
    first: dict[str, int] = {}
    repeated: set[int] = set()
    for row, text in enumerate(texts):
        if text in first:
            repeated.add(first[text])
        else:
            first[text] = row
    return list(first.values()), repeated


def mine(src_emb: np.ndarray, tgt_emb: np.ndarray, src_ids: list[str], tgt_ids: list[str], k: int = 4, *,
         src_texts: Sequence[str] | None = None, tgt_texts: Sequence[str] | None = None) -> list[Candidate]:
    """Candidate pairs (source id, target id, ratio-margin score), best first, mined as XTREME mines BUCC."""
    x, y = _unit_rows(src_emb, "source"), _unit_rows(tgt_emb, "target")
    if x.shape[1] != y.shape[1]:
        raise XferError(f"bucc: source embeddings have {x.shape[1]} dimensions, target {y.shape[1]}")
    if len(src_ids) != len(x) or len(tgt_ids) != len(y):
        raise XferError(f"bucc: {len(src_ids)} source ids for {len(x)} embeddings, "
                        f"{len(tgt_ids)} target ids for {len(y)} embeddings")
    if k < 1:
        raise XferError(f"bucc: k must be at least 1, got {k}")
    src_rows, src_repeated = _unify(src_texts, len(x), "source")
    tgt_rows, tgt_repeated = _unify(tgt_texts, len(y), "target")
    x, y = x[src_rows], y[tgt_rows]

    fwd_sim, fwd_ind = _knn(x, y, min(len(y), k))
    bwd_sim, bwd_ind = _knn(y, x, min(len(x), k))
    fwd_mean, bwd_mean = fwd_sim.mean(axis=1), bwd_sim.mean(axis=1)
    fwd_scores = fwd_sim / ((fwd_mean[:, None] + bwd_mean[fwd_ind]) / 2)
    bwd_scores = bwd_sim / ((bwd_mean[:, None] + fwd_mean[bwd_ind]) / 2)
    fwd_best = fwd_ind[np.arange(len(x)), fwd_scores.argmax(axis=1)]
    bwd_best = bwd_ind[np.arange(len(y)), bwd_scores.argmax(axis=1)]

    pairs = [(i, int(j)) for i, j in enumerate(fwd_best)] + [(int(i), j) for j, i in enumerate(bwd_best)]
    scores = np.concatenate([fwd_scores.max(axis=1), bwd_scores.max(axis=1)])
    seen_src: set[int] = set()
    seen_tgt: set[int] = set()
    best: dict[tuple[str, str], float] = {}
    for n in np.argsort(-scores, kind="stable"):
        i, j = pairs[n]
        if i in seen_src or j in seen_tgt:
            continue
        seen_src.add(i)
        seen_tgt.add(j)
        if scores[n] > 0 and src_rows[i] not in src_repeated and tgt_rows[j] not in tgt_repeated:
            key = (src_ids[src_rows[i]], tgt_ids[tgt_rows[j]])
            best[key] = max(float(scores[n]), best.get(key, float("-inf")))
    return sorted(((s, t, v) for (s, t), v in best.items()), key=lambda c: -c[2])


def _check_gold(gold: set, name: str = "gold") -> None:
    if not gold:
        raise XferError(f"bucc: the {name} set of sentence pairs is empty")


def select_threshold(candidates: Iterable[Candidate], gold: set[tuple[str, str]]) -> float:
    """The score threshold whose extraction (`apply_threshold`) has the best F1 against `gold` (the dev
    gold); of equally good cuts the strictest. The threshold lies halfway between the last kept score and
    the next lower one (XTREME's choice), or on the last score when every candidate is kept. When no
    candidate is in the gold, 0.0, as in XTREME."""
    _check_gold(gold)
    items = sorted(candidates, key=lambda c: -c[2])
    threshold, best_f1 = 0.0, 0.0
    extracted = correct = 0
    for n, (src, tgt, score) in enumerate(items):
        extracted += 1
        correct += (src, tgt) in gold
        if n + 1 < len(items) and items[n + 1][2] == score:
            continue  # cut only between distinct scores
        if correct:
            precision, recall = correct / extracted, correct / len(gold)
            f1 = 2 * precision * recall / (precision + recall)
            if f1 > best_f1:
                best_f1 = f1
                threshold = (score + items[n + 1][2]) / 2 if n + 1 < len(items) else score
    return float(threshold)


def apply_threshold(candidates: Iterable[Candidate], threshold: float) -> set[tuple[str, str]]:
    """The candidate pairs whose score is >= `threshold`."""
    return {(src, tgt) for src, tgt, score in candidates if score >= threshold}


def pair_scores(predicted: set[tuple[str, str]], gold: set[tuple[str, str]]) -> dict[str, float]:
    """Precision, recall and F1 in percent, as XTREME's `evaluate.py` (`bucc_f1`): over sets of pairs;
    all three are 0 when no predicted pair is in the gold."""
    _check_gold(gold)
    correct = len(set(predicted) & set(gold))
    if correct == 0:
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    precision, recall = correct / len(predicted), correct / len(gold)
    return {"precision": 100.0 * precision, "recall": 100.0 * recall,
            "f1": 100.0 * 2 * precision * recall / (precision + recall)}


def score_with_dev_threshold(dev_candidates: Sequence[Candidate], dev_gold: set[tuple[str, str]],
                             test_candidates: Sequence[Candidate], test_gold: set[tuple[str, str]]) -> dict:
    """The whole procedure: the threshold chosen on dev, applied to test. Returns {"threshold",
    "precision", "recall", "f1"} (the scores on test, in percent)."""
    threshold = select_threshold(dev_candidates, dev_gold)
    return {"threshold": threshold, **pair_scores(apply_threshold(test_candidates, threshold), test_gold)}
