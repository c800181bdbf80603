"""Sentence and sentence-pair classification (MNLI, XNLI, PAWS-X, QQP): accuracy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from transformers import DataCollatorWithPadding

from xfer import metrics
from xfer.formats.common import label_ids, predict


def num_labels(task) -> int:
    return len(task.labels)


def _encode(task, split, rows, tokenizer, max_length):
    cols = split.columns
    first = [str(t) for t in rows[cols["text"]]]
    second = [str(t) for t in rows[cols["text_pair"]]] if "text_pair" in cols else None
    enc = tokenizer(first, second, truncation=True, max_length=max_length)
    labels = label_ids(task, split, rows[cols["label"]])
    keep = [i for i, label in enumerate(labels) if label >= 0]  # -1: no gold label
    return [{"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i], "labels": labels[i]}
            for i in keep]


def train_features(task, split, rows, tokenizer, hp):
    return _encode(task, split, rows, tokenizer, hp.max_length)


def collate(tokenizer):
    return DataCollatorWithPadding(tokenizer, return_tensors="pt")


def predict_rows(model, task, split, rows, tokenizer, hp, device) -> list[str]:
    """The predicted label name of every row with a gold label."""
    features = _encode(task, split, rows, tokenizer, hp.max_length)
    logits = [out.logits.float().cpu().numpy() for out in predict(model, features, collate(tokenizer),
                                                                   hp.eval_batch_size, device)]
    return [task.labels[i] for i in np.concatenate(logits).argmax(-1).tolist()]


def _gold(task, split, rows) -> list[str]:
    """The gold label names of the rows that have one (-1: no gold label)."""
    return [task.labels[i] for i in label_ids(task, split, rows[split.columns["label"]]) if i >= 0]


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
