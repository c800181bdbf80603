"""Per-example test scores: what each test example contributes to its job's metrics, kept beside the
predictions (`examples/<task>/test-<lang>.safetensors`) so the report can resample test examples (the paired
bootstrap in `xfer.report.paired`).

Every kind of score is a handful of per-example numbers whose sums give the job's metrics exactly:

- "accuracy" (classification, Tatoeba): `correct` 0/1 per example; accuracy = 100 * sum / n.
- "tagging" (UD-POS, PAN-X): per sentence `true_positives`, `predicted`, `gold` (entity counts, seqeval's
  default mode) and `tokens_correct`, `tokens`; F1 = seqeval's micro F1 of the summed counts, token accuracy
  = 100 * sum(tokens_correct) / sum(tokens). Entities are read off the whole test set exactly as seqeval does
  (its sentences joined with an "O" between them) and each is counted in the sentence where it starts, so
  the sums are seqeval's corpus counts even where its reading of un-prefixed POS tags lets a chunk run on.
- "qa" (XQuAD, MLQA, TyDiQA, SQuAD 2.0): per question `exact_match` 0/1 and `f1` in [0, 1] by the task's own
  rules (SQuAD v1.1, MLQA's per-language normalisation, SQuAD 2.0); EM/F1 = 100 * sum / n, a question
  without a prediction scoring 0.
- "pairs" (BUCC): per source sentence `true_positives`, `predicted`, `gold` pair counts; precision, recall
  and F1 of the summed counts, as `xfer.bucc.pair_scores`.

`compute` builds them from the same (task, split, rows, predictions, lang) a format's scorer takes;
`metrics` gives the job's metrics back from them (bit for bit: the tests compare them with the scorers);
`write`/`read` keep them as safetensors (named 1-D arrays; metadata: task, language, kind, metrics, n and a
sha256 of the examples' ids, which the report uses to check that two runs scored the same examples).
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from xfer import metrics as M
from xfer import mlqa
from xfer.errors import XferError

FORMAT = "xfer-example-scores/1"
METADATA_KEY = "xfer"
SUFFIX = "safetensors"
KINDS = {  # kind -> its per-example arrays, in order
    "accuracy": ("correct",),
    "tagging": ("true_positives", "predicted", "gold", "tokens_correct", "tokens"),
    "qa": ("exact_match", "f1"),
    "pairs": ("true_positives", "predicted", "gold"),
}


def relpath(task: str, lang: str) -> str:
    """Where a job keeps a task's per-example test scores for one language, beside `predictions/`."""
    return f"examples/{task}/test-{lang}.{SUFFIX}"


@dataclass(frozen=True)
class ExampleScores:
    """One language's per-example test scores: `arrays[name]` holds one value per example (`KINDS[kind]`)."""

    task: str
    language: str
    kind: str
    metrics: tuple[str, ...]  # the job's metrics these reproduce, in the order the format's scorer gives them
    arrays: Mapping[str, np.ndarray]
    ids_sha256: str  # of the examples' ids, in order: the same test examples give the same digest

    @property
    def n(self) -> int:
        return len(next(iter(self.arrays.values())))

    def __post_init__(self):
        where = f"per-example scores of {self.task}/{self.language}"
        if self.kind not in KINDS:
            raise XferError(f"{where}: unknown kind {self.kind!r} (known: {', '.join(KINDS)})")
        if tuple(self.arrays) != KINDS[self.kind]:
            raise XferError(f"{where}: arrays {', '.join(self.arrays)}; a {self.kind} score has "
                            f"{', '.join(KINDS[self.kind])}")
        lengths = {len(a) for a in self.arrays.values()}
        if len(lengths) != 1 or any(a.ndim != 1 for a in self.arrays.values()):
            raise XferError(f"{where}: arrays of different lengths or shapes")
        if self.n == 0:
            raise XferError(f"{where}: no examples")
        for name, a in self.arrays.items():
            if not np.all(np.isfinite(a)) or np.any(a < 0):
                raise XferError(f"{where}: {name} holds a negative or non-finite value")


def _digest(ids) -> str:
    return hashlib.sha256("\n".join(map(str, ids)).encode("utf-8")).hexdigest()


def compute(task, split, rows, predictions, lang: str = "en") -> ExampleScores:
    """The per-example scores of `predictions` on `rows` of `split` (a test split of `task`, a `xfer.tasks.Task`),
    from what the task's format predicts: label names (classification), tag names per word (tagging), {question id:
    answer} (span QA), nearest target indices (Tatoeba) or the mined pairs (BUCC: `xfer.formats.retrieval.Mined`
    or any iterable of (source id, target id))."""
    if task.format == "classification":
        return _classification(task, split, rows, predictions, lang)
    if task.format == "tagging":
        return _tagging(task, split, rows, predictions, lang)
    if task.format == "span_qa":
        return _qa(task, split, rows, predictions, lang)
    if task.format == "retrieval":
        return _pairs(task, split, rows, predictions, lang) if task.retrieval == "bucc" else \
            _nearest(task, rows, predictions, lang)
    raise XferError(f"{task.name}: no per-example scores for the {task.format} format")


def _checked_length(task, what: str, predictions, n: int) -> None:
    if len(predictions) != n:
        raise XferError(f"{task.name}: {len(predictions)} predictions for {n} {what}")


def _classification(task, split, rows, predictions, lang) -> ExampleScores:
    from xfer.formats.common import label_ids

    ids = label_ids(task, split, rows[split.columns["label"]])
    kept = [(i, task.labels[label]) for i, label in enumerate(ids) if label >= 0]  # as the format scores them
    _checked_length(task, "labelled rows", predictions, len(kept))
    correct = np.fromiter((p == gold for p, (_, gold) in zip(predictions, kept)), dtype=np.uint8, count=len(kept))
    return ExampleScores(task.name, lang, "accuracy", ("accuracy",), {"correct": correct},
                         _digest(f"{i}:{gold}" for i, gold in kept))


def _nearest(task, rows, predictions, lang) -> ExampleScores:
    nearest = np.asarray(list(predictions), dtype=np.int64)
    _checked_length(task, "source sentences", nearest, len(rows))
    correct = (nearest == np.arange(len(nearest))).astype(np.uint8)
    return ExampleScores(task.name, lang, "accuracy", ("accuracy",), {"correct": correct},
                         _digest(range(len(nearest))))


def _gold_tags(task, split, rows) -> list[list[str]]:
    tags = rows[split.columns["tags"]]
    if split.labels_are == "name":
        return [[str(t) for t in sentence] for sentence in tags]
    return [[task.labels[int(t)] for t in sentence] for sentence in tags]


def _entities(sentences: list[list[str]]) -> set[tuple[str, int, int]]:
    """The entities seqeval (default mode) reads off `sentences`: (type, start, end) over the sentences joined
    with one "O" between them, as its scorers read them."""
    import warnings

    from seqeval.metrics.sequence_labeling import get_entities

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # seqeval's "not a NE tag" warnings for POS tags
        entities = set(get_entities([list(s) for s in sentences]))
    return entities


def _tagging(task, split, rows, predictions, lang) -> ExampleScores:
    gold = _gold_tags(task, split, rows)
    _checked_length(task, "sentences", predictions, len(gold))
    predictions = [list(p) for p in predictions]
    for i, (p, g) in enumerate(zip(predictions, gold)):
        if len(p) != len(g):
            raise XferError(f"{task.name}: sentence {i} has {len(p)} predicted tags for {len(g)} words")
    n = len(gold)
    # seqeval joins the sentences with one "O" between them: sentence s starts at offsets[s]
    offsets = np.cumsum([0] + [len(g) + 1 for g in gold])[:-1]

    def per_sentence(entities) -> np.ndarray:
        starts = np.fromiter((start for _, start, _ in entities), dtype=np.int64, count=len(entities))
        return np.bincount(np.searchsorted(offsets, starts, side="right") - 1, minlength=n).astype(np.int32)

    true_entities, predicted_entities = _entities(gold), _entities(predictions)
    tokens = np.fromiter((len(g) for g in gold), dtype=np.int32, count=n)
    correct = np.fromiter((sum(a == b for a, b in zip(p, g)) for p, g in zip(predictions, gold)), dtype=np.int32,
                          count=n)
    arrays = {"true_positives": per_sentence(true_entities & predicted_entities),
              "predicted": per_sentence(predicted_entities), "gold": per_sentence(true_entities),
              "tokens_correct": correct, "tokens": tokens}
    names = ("f1", "token_accuracy") if "f1" in task.metrics else ("token_accuracy",)
    return ExampleScores(task.name, lang, "tagging", names, arrays, _digest(f"{i}:{t}" for i, t in enumerate(tokens)))


def _f1_v2(prediction: str, gold: str) -> float:
    """SQuAD 2.0's F1 for one gold answer (as `xfer.metrics.squad_v2_scores`): an empty side scores 1 only when
    both are empty."""
    if not M.squad_normalize(prediction) or not M.squad_normalize(gold):
        return float(M.squad_normalize(prediction) == M.squad_normalize(gold))
    return M.squad_f1(prediction, gold)


def _qa(task, split, rows, predictions: Mapping[str, str], lang) -> ExampleScores:
    cols = split.columns
    gold = {str(i): list(a["text"]) for i, a in zip(rows[cols["id"]], rows[cols["answers"]])}  # as `score` builds it
    if not gold:
        raise XferError(f"{task.name}: no questions to score")
    if task.unanswerable:
        def em_f1(prediction, golds):
            golds = [g for g in golds if M.squad_normalize(g)] or [""]
            return (max(M.squad_exact_match(prediction, g) for g in golds),
                    max(_f1_v2(prediction, g) for g in golds))
    elif task.qa_scoring == "mlqa":
        def em_f1(prediction, golds):
            if not golds:
                raise XferError("mlqa: a question has no gold answer")
            return (max(mlqa.exact_match(prediction, g, lang) for g in golds),
                    max(mlqa.f1(prediction, g, lang) for g in golds))
    else:
        def em_f1(prediction, golds):
            return max(M.squad_exact_match(prediction, g) for g in golds), max(M.squad_f1(prediction, g) for g in golds)
    em, f1 = np.zeros(len(gold)), np.zeros(len(gold))
    for i, (qid, golds) in enumerate(gold.items()):
        if qid in predictions:
            em[i], f1[i] = em_f1(predictions[qid], golds)
    return ExampleScores(task.name, lang, "qa", ("exact_match", "f1"), {"exact_match": em, "f1": f1}, _digest(gold))


def _pairs(task, split, rows, predictions, lang) -> ExampleScores:
    cols = split.columns
    gold = set(zip((str(i) for i in rows[cols["source_id"]]), (str(i) for i in rows[cols["target_id"]])))
    if not gold:
        raise XferError(f"{task.name}: the gold set of sentence pairs is empty")
    predicted = set(getattr(predictions, "pairs", predictions))
    sources = list(dict.fromkeys(str(i) for i in rows[cols["source_id"]]))
    sources += sorted({s for s, _ in predicted} - set(sources))  # cannot happen for pairs mined from the rows
    index = {s: i for i, s in enumerate(sources)}

    def per_source(pairs) -> np.ndarray:
        return np.bincount([index[s] for s, _ in pairs], minlength=len(sources)).astype(np.int32)

    arrays = {"true_positives": per_source(predicted & gold), "predicted": per_source(predicted),
              "gold": per_source(gold)}
    return ExampleScores(task.name, lang, "pairs", ("precision", "recall", "f1"), arrays, _digest(sources))


# ------------------------------------------------------------------------------ metrics from the sums


def _ratio(numerator, denominator):
    """numerator / denominator, 0 where the denominator is 0 (seqeval's and BUCC's zero-division rule)."""
    numerator, denominator = np.asarray(numerator, dtype=np.float64), np.asarray(denominator, dtype=np.float64)
    return np.divide(numerator, denominator, out=np.zeros(np.broadcast(numerator, denominator).shape),
                     where=denominator != 0)


def f1_of_counts(tp, predicted, gold):
    """F1 in percent of summed counts, elementwise (arrays: one value per bootstrap resample): seqeval's micro F1
    and `xfer.bucc.pair_scores`' F1 (2PR / (P + R), 0 when no true positive)."""
    precision, recall = _ratio(tp, predicted), _ratio(tp, gold)
    denominator = precision + recall
    return 100.0 * _ratio(2.0 * precision * recall, denominator)


def metrics_of_sums(kind: str, sums: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """Every metric of a `kind` from its per-example arrays summed over a resample of `n` examples (each sum an
    array: one value per resample), in percent; the same definitions as `metrics`, vectorised."""
    if kind == "accuracy":
        return {"accuracy": 100.0 * np.asarray(sums["correct"], dtype=np.float64) / n}
    if kind == "qa":
        return {name: 100.0 * np.asarray(sums[name], dtype=np.float64) / n for name in ("exact_match", "f1")}
    tp, predicted, gold = sums["true_positives"], sums["predicted"], sums["gold"]
    out = {"f1": f1_of_counts(tp, predicted, gold)}
    if kind == "pairs":
        out.update(precision=100.0 * _ratio(tp, predicted), recall=100.0 * _ratio(tp, gold))
    else:
        out["token_accuracy"] = 100.0 * _ratio(sums["tokens_correct"], sums["tokens"])
    return out


def metrics(scores: ExampleScores) -> dict[str, float]:
    """The job's metrics (percent) from the per-example scores, computed as its scorer computes them."""
    a = scores.arrays
    if scores.kind == "accuracy":
        return {"accuracy": 100.0 * int(a["correct"].sum()) / scores.n}
    if scores.kind == "qa":  # the scorers add the questions' scores one after the other: so does cumsum
        return {name: 100.0 * float(np.cumsum(a[name])[-1]) / scores.n for name in ("exact_match", "f1")}
    tp, predicted, gold = (int(a[k].sum()) for k in ("true_positives", "predicted", "gold"))
    if scores.kind == "pairs":
        if tp == 0:
            return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
        precision, recall = tp / predicted, tp / gold
        return {"precision": 100.0 * precision, "recall": 100.0 * recall,
                "f1": 100.0 * 2 * precision * recall / (precision + recall)}
    out = {}
    if "f1" in scores.metrics:  # seqeval: numpy float64 precision and recall, then 2PR / (P + R)
        precision = np.float64(tp) / predicted if predicted else np.float64(0.0)
        recall = np.float64(tp) / gold if gold else np.float64(0.0)
        denominator = precision + recall
        out["f1"] = 100.0 * float((1 + 1.0) * precision * recall / (denominator if denominator else 1.0))
    out["token_accuracy"] = 100.0 * int(a["tokens_correct"].sum()) / int(a["tokens"].sum())
    return out


# --------------------------------------------------------------------------------------- file format


def to_bytes(scores: ExampleScores) -> bytes:
    from safetensors.numpy import save

    meta = {"format": FORMAT, "task": scores.task, "language": scores.language, "kind": scores.kind,
            "metrics": list(scores.metrics), "n": scores.n, "ids_sha256": scores.ids_sha256}
    # one metadata key: safetensors writes several keys in a different order from one process to the next
    return save({name: np.ascontiguousarray(a) for name, a in scores.arrays.items()},
                metadata={METADATA_KEY: json.dumps(meta, sort_keys=True)})


def write(scores: ExampleScores, path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(to_bytes(scores))


def _metadata(data: bytes) -> dict[str, Any]:
    """Our entry of the safetensors header's `__metadata__` (the format: an 8-byte little-endian header length,
    then the JSON header); `safetensors.numpy.load` returns only the tensors."""
    (length,) = struct.unpack("<Q", data[:8])
    meta = json.loads(data[8:8 + length]).get("__metadata__") or {}
    return json.loads(meta[METADATA_KEY]) if METADATA_KEY in meta else {}


def from_bytes(data: bytes, where: str) -> ExampleScores:
    """Per-example scores from the bytes `to_bytes` wrote; XferError naming `where` for anything else."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    try:
        arrays, meta = load(data), _metadata(data)
    except (SafetensorError, struct.error, ValueError) as exc:  # a truncated or foreign file
        raise XferError(f"{where}: not a per-example scores file ({type(exc).__name__}: {exc})") from None
    if meta.get("format") != FORMAT:
        raise XferError(f"{where}: not a per-example scores file (format {meta.get('format')!r}, "
                        f"expected {FORMAT!r})")
    kind = meta.get("kind")
    try:
        ordered = {name: arrays[name] for name in KINDS[kind]}
        scores = ExampleScores(meta["task"], meta["language"], kind, tuple(meta["metrics"]), ordered,
                               meta["ids_sha256"])
    except (KeyError, TypeError) as exc:
        raise XferError(f"{where}: per-example scores without {exc}") from None
    except XferError as exc:
        raise XferError(f"{where}: {exc}") from None
    if scores.n != meta.get("n"):
        raise XferError(f"{where}: {scores.n} examples, its metadata says {meta.get('n')}")
    return scores


def read(path) -> ExampleScores:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise XferError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return from_bytes(data, str(path))
