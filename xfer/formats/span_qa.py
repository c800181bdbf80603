"""Extractive span QA (SQuAD, XQuAD, MLQA, TyDiQA-GoldP): start/end logits over doc-stride windows,
turned into answer text by `xfer.qa`; scored with SQuAD exact match and F1 (MLQA: with MLQA's per-language
normalisation, `xfer.mlqa`).

A task with `unanswerable` (SQuAD 2.0) trains its unanswerable questions to point at <s> (as every window
without the answer does), answers "" when the null score wins, and is scored with SQuAD 2.0's EM and F1."""

from __future__ import annotations

import json
from pathlib import Path

from dataclasses import dataclass

from xfer import metrics, mlqa, qa
from xfer.formats import common


@dataclass(frozen=True)
class Encoded:
    """Rows encoded once for evaluation: one feature per doc-stride window, and what maps windows back to
    answer text (question ids, contexts, each window's example and character offsets)."""

    features: list[dict]
    ids: list[str]
    contexts: list[str]
    feature_example_index: list[int]
    offset_mapping: list


def num_labels(task) -> int:
    return 2  # start and end logits


def train_features(task, split, rows, tokenizer, hp):
    cols = split.columns
    answers = list(rows[cols["answers"]])
    enc = qa.squad_train_features(
        tokenizer, list(rows[cols["question"]]), list(rows[cols["context"]]),
        [a["answer_start"] for a in answers], [a["text"] for a in answers], hp.max_length, hp.doc_stride)
    keys = ("input_ids", "start_positions", "end_positions")
    return common.Features(({k: enc[k][i] for k in keys} for i in range(len(enc["input_ids"]))),
                           notes={"answer_alignment": enc["alignment"]})


def collate(tokenizer):
    return common.collate(tokenizer.pad_token_id)


def eval_set(task, split, rows, tokenizer, hp) -> Encoded:
    cols = split.columns
    contexts = list(rows[cols["context"]])
    enc = qa.squad_features(tokenizer, list(rows[cols["question"]]), contexts, hp.max_length, hp.doc_stride)
    return Encoded([{"input_ids": ids} for ids in enc["input_ids"]], [str(i) for i in rows[cols["id"]]],
                   contexts, enc["feature_example_index"], enc["offset_mapping"])


def _spans(model, batch: dict) -> dict:
    out = model(**batch)
    return {"start": out.start_logits, "end": out.end_logits}


def predict(model, task, encoded: Encoded, tokenizer, hp, device) -> dict[str, str]:
    """{question id: answer text} over doc-stride windows ("" for no answer, where the task allows it)."""
    out = common.infer(model, encoded.features, collate(tokenizer), common.token_budget(hp), device, _spans,
                       per_token=("start", "end"))
    return qa.best_answers(encoded.ids, encoded.contexts, encoded.feature_example_index, encoded.offset_mapping,
                           out["start"], out["end"],
                           null_threshold=qa.NULL_THRESHOLD if task.unanswerable else None)


def predict_rows(model, task, split, rows, tokenizer, hp, device) -> dict[str, str]:
    return predict(model, task, eval_set(task, split, rows, tokenizer, hp), tokenizer, hp, device)


def score(task, split, rows, predictions: dict[str, str], lang: str = "en") -> dict[str, float]:
    cols = split.columns
    gold = {str(i): list(a["text"]) for i, a in zip(rows[cols["id"]], rows[cols["answers"]])}
    return scores(task, predictions, gold, lang)


def evaluate(model, task, split, rows, tokenizer, hp, device, lang: str = "en"):
    answers = predict_rows(model, task, split, rows, tokenizer, hp, device)
    return score(task, split, rows, answers, lang), answers


def scores(task, predictions: dict[str, str], references: dict[str, list[str]], lang: str) -> dict[str, float]:
    """Exact match and F1 by the task's rules: SQuAD 2.0's (`unanswerable`), MLQA's for `lang`
    (`qa_scoring="mlqa"`), or SQuAD v1.1's."""
    if task.unanswerable:
        return metrics.squad_v2_scores(predictions, references)
    if task.qa_scoring == "mlqa":
        return mlqa.scores(predictions, references, lang)
    return metrics.squad_scores(predictions, references)


def write_predictions(predictions, path: Path) -> None:
    path.with_suffix(".json").write_text(json.dumps(predictions, ensure_ascii=False, indent=0), encoding="utf-8")


def write_labels(task, split, rows, path: Path) -> None:
    """The rows as SQuAD-format JSON: {"data": [{"title", "paragraphs": [{"context", "qas": [{"id",
    "question", "answers": [{"text", "answer_start"}]}]}]}]}, consecutive rows with the same title sharing an
    article and with the same context a paragraph (titles are "" where the rows have none)."""
    cols = split.columns
    titles = list(rows["title"]) if "title" in rows.column_names else [""] * len(rows)
    articles: list[dict] = []
    for title, qid, question, context, answers in zip(titles, rows[cols["id"]], rows[cols["question"]],
                                                      rows[cols["context"]], rows[cols["answers"]]):
        if not articles or articles[-1]["title"] != title:
            articles.append({"title": title, "paragraphs": []})
        paragraphs = articles[-1]["paragraphs"]
        if not paragraphs or paragraphs[-1]["context"] != context:
            paragraphs.append({"context": context, "qas": []})
        paragraphs[-1]["qas"].append({"id": str(qid), "question": question, "answers": [
            {"text": text, "answer_start": start} for text, start in zip(answers["text"], answers["answer_start"])]})
    path.with_suffix(".json").write_text(json.dumps({"data": articles}, ensure_ascii=False, indent=0),
                                         encoding="utf-8")
