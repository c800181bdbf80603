"""Sentence and sentence-pair classification (MNLI, XNLI, PAWS-X, QQP): accuracy."""

from __future__ import annotations

from pathlib import Path

from xfer import metrics
from xfer.formats import common


def num_labels(task) -> int:
    return len(task.labels)


def _encode(task, split, rows, tokenizer, max_length):
    cols = split.columns
    first = [str(t) for t in rows[cols["text"]]]
    second = [str(t) for t in rows[cols["text_pair"]]] if "text_pair" in cols else None
    enc = tokenizer(first, second, truncation=True, max_length=max_length, return_attention_mask=False)
    labels = common.label_ids(task, split, rows[cols["label"]])
    keep = [i for i, label in enumerate(labels) if label >= 0]  # -1: no gold label
    return [{"input_ids": enc["input_ids"][i], "labels": labels[i]} for i in keep]


def train_features(task, split, rows, tokenizer, hp):
    return _encode(task, split, rows, tokenizer, hp.max_length)


def collate(tokenizer):
    return common.collate(tokenizer.pad_token_id)


def eval_set(task, split, rows, tokenizer, hp) -> list[dict]:
    """The rows with a gold label, encoded once for every evaluation of them."""
    return [{"input_ids": f["input_ids"]} for f in _encode(task, split, rows, tokenizer, hp.max_length)]


def predict(model, task, encoded, tokenizer, hp, device) -> list[str]:
    """The predicted label name of every encoded row."""
    out = common.infer(model, encoded, collate(tokenizer), common.token_budget(hp), device, common.logits)
    return [task.labels[int(row.argmax())] for row in out["logits"]]


def predict_rows(model, task, split, rows, tokenizer, hp, device) -> list[str]:
    """The predicted label name of every row with a gold label."""
    return predict(model, task, eval_set(task, split, rows, tokenizer, hp), tokenizer, hp, device)


def _gold(task, split, rows) -> list[str]:
    """The gold label names of the rows that have one (-1: no gold label)."""
    return [task.labels[i] for i in common.label_ids(task, split, rows[split.columns["label"]]) if i >= 0]


def score(task, split, rows, predictions: list[str], lang: str = "en") -> dict[str, float]:
    return {"accuracy": metrics.accuracy(predictions, _gold(task, split, rows))}


def evaluate(model, task, split, rows, tokenizer, hp, device, lang: str = "en"):
    predicted = predict_rows(model, task, split, rows, tokenizer, hp, device)
    return score(task, split, rows, predicted, lang), predicted


def write_predictions(predictions, path: Path) -> None:
    path.write_text("".join(f"{label}\n" for label in predictions), encoding="utf-8")


def write_labels(task, split, rows, path: Path) -> None:
    """The rows' gold label names, one per line; rows without a gold label are left out, as `evaluate` leaves
    them out of its predictions."""
    write_predictions(_gold(task, split, rows), path)
