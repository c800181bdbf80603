"""Token tagging (PAN-X NER, UD POS): one label per word, read off the word's first sub-token.

A sentence longer than the model's maximum length is split into consecutive windows of whole words, each
tagged on its own, and the windows' predictions are joined, so every word is scored (as XTREME does).
Scored with seqeval F1 (and token accuracy beside it); a task without "f1" among its metrics (CCG
supertagging) with token accuracy only. Tags are label indices, or label names where the split says so
(CCG, whose label set is read from its training data; a dev tag unseen in training is scored, never predicted).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from xfer import metrics
from xfer.errors import XferError
from xfer.formats import common

IGNORE = common.IGNORE


@dataclass(frozen=True)
class Encoded:
    """Rows encoded once for evaluation: one feature per window, and for each window its sentence, its first
    word and the positions of its words' first sub-tokens; `words` per sentence."""

    features: list[dict]
    windows: list[tuple[int, int, list[int]]]
    words: list[int]


def num_labels(task) -> int:
    return len(task.labels)


def _windows(word_lengths: list[int], budget: int) -> list[tuple[int, int]]:
    """Consecutive [start, end) word ranges whose sub-token counts fit `budget` (a long word gets its own)."""
    windows, start, used = [], 0, 0
    for i, n in enumerate(word_lengths):
        if used + n > budget and i > start:
            windows.append((start, i))
            start, used = i, 0
        used += n
    windows.append((start, len(word_lengths)))
    return windows


def _tag_ids(task, split, tags, lenient: bool) -> list[int]:
    """A sentence's tags as label indices; with `lenient` (evaluation), an unknown tag name becomes 0 (the gold
    names are scored separately)."""
    if split.labels_are != "name":
        return [int(t) for t in tags]
    index = {label: i for i, label in enumerate(task.labels)}
    unknown = [t for t in tags if t not in index]
    if unknown and not lenient:
        raise XferError(f"{split.dataset} {split.config} {split.split}: tag {unknown[0]!r} is not one of the "
                        f"task's labels")
    return [index.get(t, 0) for t in tags]


def _gold(task, split, tags) -> list[str]:
    return [str(t) for t in tags] if split.labels_are == "name" else [task.labels[int(t)] for t in tags]


def _encode(task, split, rows, tokenizer, max_length, lenient: bool = False):
    """Feature dicts, one per window, each with its sentence index and first word."""
    cols = split.columns
    sentences, tags = [list(s) for s in rows[cols["tokens"]]], list(rows[cols["tags"]])
    enc = tokenizer(sentences, is_split_into_words=True, add_special_tokens=False, return_attention_mask=False)
    bos, eos = tokenizer.cls_token_id, tokenizer.sep_token_id
    budget = max_length - 2
    features = []
    for s, (words, labels) in enumerate(zip(sentences, tags)):
        labels = _tag_ids(task, split, labels, lenient)
        word_ids = enc.word_ids(s)
        ids = enc["input_ids"][s]
        pieces: list[list[int]] = [[] for _ in words]
        for token, w in zip(ids, word_ids):
            pieces[w].append(token)
        for w, piece in enumerate(pieces):
            if not piece:  # a word the tokenizer maps to nothing still needs a position
                pieces[w] = [tokenizer.unk_token_id]
        for start, end in _windows([min(len(p), budget) for p in pieces], budget):
            input_ids, label_ids = [bos], [IGNORE]
            for w in range(start, end):
                piece = pieces[w][:budget]
                input_ids += piece
                label_ids += [int(labels[w])] + [IGNORE] * (len(piece) - 1)
            input_ids.append(eos)
            label_ids.append(IGNORE)
            features.append({"input_ids": input_ids, "labels": label_ids, "sentence": s, "first_word": start})
    return features


def train_features(task, split, rows, tokenizer, hp):
    return [{k: f[k] for k in ("input_ids", "labels")}
            for f in _encode(task, split, rows, tokenizer, hp.max_length)]


def collate(tokenizer):
    return common.collate(tokenizer.pad_token_id)


def eval_set(task, split, rows, tokenizer, hp) -> Encoded:
    features = _encode(task, split, rows, tokenizer, hp.max_length, lenient=True)
    windows = [(f["sentence"], f["first_word"], [i for i, label in enumerate(f["labels"]) if label != IGNORE])
               for f in features]
    return Encoded([{"input_ids": f["input_ids"]} for f in features], windows,
                   [len(tags) for tags in rows[split.columns["tags"]]])


def predict(model, task, encoded: Encoded, tokenizer, hp, device) -> list[list[str]]:
    """The predicted tag name of every word of every row (long rows are split into windows and joined)."""
    out = common.infer(model, encoded.features, collate(tokenizer), common.token_budget(hp), device,
                       common.logits, per_token=("logits",))
    predicted = [[None] * n for n in encoded.words]
    for (sentence, first_word, positions), row_logits in zip(encoded.windows, out["logits"]):
        best = row_logits.argmax(-1)
        for offset, position in enumerate(positions):
            predicted[sentence][first_word + offset] = task.labels[int(best[position])]
    assert all(tag is not None for sentence in predicted for tag in sentence), "a word was left untagged"
    return predicted


def predict_rows(model, task, split, rows, tokenizer, hp, device) -> list[list[str]]:
    return predict(model, task, eval_set(task, split, rows, tokenizer, hp), tokenizer, hp, device)


def score(task, split, rows, predictions: list[list[str]], lang: str = "en") -> dict[str, float]:
    gold = [_gold(task, split, tags) for tags in rows[split.columns["tags"]]]
    scores = {"f1": metrics.seqeval_f1(predictions, gold)} if "f1" in task.metrics else {}
    scores["token_accuracy"] = metrics.token_accuracy(predictions, gold)
    return scores


def evaluate(model, task, split, rows, tokenizer, hp, device, lang: str = "en"):
    predicted = predict_rows(model, task, split, rows, tokenizer, hp, device)
    return score(task, split, rows, predicted, lang), predicted


def write_predictions(predictions, path: Path) -> None:
    path.write_text("".join("".join(f"{tag}\n" for tag in sentence) + "\n" for sentence in predictions),
                    encoding="utf-8")


def write_labels(task, split, rows, path: Path) -> None:
    """The rows' gold tag names, in the layout of `write_predictions`."""
    write_predictions([_gold(task, split, tags) for tags in rows[split.columns["tags"]]], path)
