"""Multiple choice (HellaSwag, Cosmos QA, CommonsenseQA): one (context, choice) pair per choice; accuracy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from xfer import metrics
from xfer.formats.common import label_ids, predict


def num_labels(task) -> None:
    return None


def _encode(task, split, rows, tokenizer, max_length):
    cols = split.columns
    contexts, choices = list(rows[cols["context"]]), list(rows[cols["choices"]])
    labels = label_ids(task, split, rows[cols["label"]])
    features = []
    for context, options, label in zip(contexts, choices, labels):
        if label < 0:
            continue
        enc = tokenizer([context] * len(options), list(options), truncation=True, max_length=max_length)
        features.append({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": label})
    return features


def train_features(task, split, rows, tokenizer, hp):
    return _encode(task, split, rows, tokenizer, hp.max_length)


def collate(tokenizer):
    pad = tokenizer.pad_token_id

    def collate_choices(rows: list[dict]) -> dict:
        width = max(len(ids) for row in rows for ids in row["input_ids"])
        ids = [[ids + [pad] * (width - len(ids)) for ids in row["input_ids"]] for row in rows]
        mask = [[m + [0] * (width - len(m)) for m in row["attention_mask"]] for row in rows]
        return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask),
                "labels": torch.tensor([row["labels"] for row in rows])}

    return collate_choices


def evaluate(model, task, split, rows, tokenizer, hp, device, lang: str = "en"):
    features = _encode(task, split, rows, tokenizer, hp.max_length)
    logits = [out.logits.float().cpu().numpy() for out in predict(model, features, collate(tokenizer),
                                                                   hp.eval_batch_size, device)]
    predicted = np.concatenate(logits).argmax(-1).tolist()
    return {"accuracy": metrics.accuracy(predicted, [f["labels"] for f in features])}, predicted


def write_predictions(predictions, path: Path) -> None:
    path.write_text("".join(f"{p}\n" for p in predictions), encoding="utf-8")
