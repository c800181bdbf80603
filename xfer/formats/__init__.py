"""Task formats: how rows of a format become model inputs, which head trains on them, and how a model
is scored on them. Each format module provides:

    num_labels(task) -> int | None
    train_features(task, split, rows, tokenizer, hp) -> sequence of feature dicts (token ids and labels)
    collate(tokenizer) -> callable padding a list of feature dicts into a batch of tensors
    eval_set(task, split, rows, tokenizer, hp) -> the rows encoded once, for any number of evaluations
    predict(model, task, encoded, tokenizer, hp, device) -> predictions (length-sorted inference,
        `xfer.formats.common.infer`; the predictions are in row order and do not depend on the batching)
    evaluate(model, task, split, rows, tokenizer, hp, device, lang="en") -> (metrics in percent, predictions)
        (`lang`: the XTREME code of the rows' language, for language-specific scoring such as MLQA's)
    write_predictions(predictions, path)  -> predictions in XTREME's submission format

The formats of trained target tasks (classification, tagging, span_qa) also score predictions apart from
making them, so a target job that trains once for several tasks predicts their shared English dev set once
and scores it per task:

    predict_rows(model, task, split, rows, tokenizer, hp, device) -> predictions (eval_set + predict)
    score(task, split, rows, predictions, lang="en") -> metrics in percent
    write_labels(task, split, rows, path)  -> (the formats of XTREME target tasks) the rows' gold labels in
        the layout XTREME's evaluate.py reads beside those predictions (`xfer xtreme-labels`)
"""

from __future__ import annotations

from importlib import import_module

FORMATS = ("classification", "tagging", "span_qa", "multiple_choice", "retrieval")


def get(name: str):
    if name not in FORMATS:
        raise ValueError(f"unknown format {name!r}")
    return import_module(f"xfer.formats.{name}")
