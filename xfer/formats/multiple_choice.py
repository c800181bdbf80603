"""Multiple choice (HellaSwag, Cosmos QA, CommonsenseQA): one (prompt, choice) pair per choice; accuracy.

The prompt is the `context` column, the `question` column, or both joined by a space (Cosmos QA, as jiant
does). The choices are a list column (HellaSwag's endings), one column per choice (Cosmos QA's answer0..3),
or a {label, text} column (CommonsenseQA), whose gold answer key is looked up among the row's own labels.
"""

from __future__ import annotations

from pathlib import Path

from xfer import metrics
from xfer.errors import XferError
from xfer.formats import common
from xfer.formats.common import label_ids


def num_labels(task) -> None:
    return None


def _prompts(split, rows) -> list[str]:
    parts = [list(rows[split.columns[key]]) for key in ("context", "question") if key in split.columns]
    return [" ".join(texts) for texts in zip(*parts)]


def _choices_and_labels(task, split, rows) -> tuple[list[list[str]], list[int]]:
    cols = split.columns
    spec, keys = cols["choices"], list(rows[cols["label"]])
    if isinstance(spec, tuple):  # one column per choice
        return [list(options) for options in zip(*(list(rows[c]) for c in spec))], label_ids(task, split, keys)
    values = list(rows[spec])
    if values and isinstance(values[0], dict):  # {label: [...], text: [...]}: the key names one of the row's labels
        labels = []
        for value, key in zip(values, keys):
            if key == "":
                labels.append(-1)  # no answer key (a test split)
            elif key in value["label"]:
                labels.append(list(value["label"]).index(key))
            else:
                raise XferError(f"{split.dataset} {split.split}: answer key {key!r} is not one of the choice "
                                f"labels {list(value['label'])}")
        return [list(value["text"]) for value in values], labels
    return [list(options) for options in values], label_ids(task, split, keys)


def _encode(task, split, rows, tokenizer, max_length):
    contexts = _prompts(split, rows)
    choices, labels = _choices_and_labels(task, split, rows)
    features = []
    for context, options, label in zip(contexts, choices, labels):
        if label < 0:
            continue
        enc = tokenizer([context] * len(options), list(options), truncation=True, max_length=max_length,
                        return_attention_mask=False)
        features.append({"input_ids": enc["input_ids"], "labels": label})
    return features


def train_features(task, split, rows, tokenizer, hp):
    return _encode(task, split, rows, tokenizer, hp.max_length)


def collate(tokenizer):
    return common.collate(tokenizer.pad_token_id)


def eval_set(task, split, rows, tokenizer, hp) -> list[dict]:
    """The rows with an answer key, encoded once: each feature one row of choices, and its gold index."""
    return _encode(task, split, rows, tokenizer, hp.max_length)


def predict(model, task, encoded, tokenizer, hp, device) -> list[int]:
    """The index of the predicted choice of every encoded row."""
    features = [{"input_ids": f["input_ids"]} for f in encoded]
    out = common.infer(model, features, collate(tokenizer), common.token_budget(hp), device, common.logits)
    return [int(row.argmax()) for row in out["logits"]]


def score_encoded(encoded, predictions: list[int]) -> dict[str, float]:
    return {"accuracy": metrics.accuracy(predictions, [f["labels"] for f in encoded])}


def evaluate(model, task, split, rows, tokenizer, hp, device, lang: str = "en"):
    encoded = eval_set(task, split, rows, tokenizer, hp)
    predicted = predict(model, task, encoded, tokenizer, hp, device)
    return score_encoded(encoded, predicted), predicted


def write_predictions(predictions, path: Path) -> None:
    path.write_text("".join(f"{p}\n" for p in predictions), encoding="utf-8")
