"""Extractive QA features and post-processing: (question, context) pairs tokenised into doc-stride
windows with character offsets, and start/end logits over those windows turned back into answer text."""

from __future__ import annotations

from typing import Sequence

import numpy as np

NULL_THRESHOLD = 0.0  # SQuAD 2.0: predict "" when the null score beats the best span by more than this


def squad_features(tokenizer, questions: Sequence[str], contexts: Sequence[str], max_length: int,
                   doc_stride: int) -> dict:
    """Windows over each context. `offset_mapping[f][t]` is the (start, end) character span of token t of
    window f in its context, or None for question, special and padding tokens."""
    enc = tokenizer([q.lstrip() for q in questions], list(contexts), truncation="only_second",
                    max_length=max_length, stride=doc_stride, return_overflowing_tokens=True,
                    return_offsets_mapping=True, padding=False)
    offsets = []
    for f, spans in enumerate(enc["offset_mapping"]):
        sequence = enc.sequence_ids(f)
        offsets.append([tuple(span) if sequence[t] == 1 else None for t, span in enumerate(spans)])
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
            "feature_example_index": list(enc["overflow_to_sample_mapping"]), "offset_mapping": offsets}


def squad_train_features(tokenizer, questions, contexts, answer_starts, answer_texts, max_length: int,
                         doc_stride: int) -> dict:
    """`squad_features` plus start/end token positions of the first gold answer in each window; a window
    that does not hold the whole answer (or an unanswerable question) points at token 0."""
    enc = squad_features(tokenizer, questions, contexts, max_length, doc_stride)
    starts, ends = [], []
    for f, offsets in enumerate(enc["offset_mapping"]):
        example = enc["feature_example_index"][f]
        start_position = end_position = 0
        if len(answer_starts[example]) and len(answer_texts[example]):
            char_start = int(answer_starts[example][0])
            char_end = char_start + len(answer_texts[example][0])
            tokens = [t for t, span in enumerate(offsets) if span is not None]
            if tokens and offsets[tokens[0]][0] <= char_start and offsets[tokens[-1]][1] >= char_end:
                start_position = next(t for t in tokens if offsets[t][1] > char_start)
                end_position = next(t for t in reversed(tokens) if offsets[t][0] < char_end)
        starts.append(start_position)
        ends.append(end_position)
    return {**enc, "start_positions": starts, "end_positions": ends}


def best_answers(example_ids: Sequence[str], contexts: Sequence[str], feature_example_index: Sequence[int],
                 offset_mapping, start_logits: np.ndarray, end_logits: np.ndarray, n_best: int = 20,
                 max_answer_length: int = 30, null_threshold: float | None = None) -> dict[str, str]:
    """The highest-scoring (start + end logit) valid span of each example over all of its windows;
    "" for an example with no valid span.

    With `null_threshold` (SQuAD 2.0), an example's null score is start + end logit of the first token
    (<s>, where unanswerable questions are trained to point), the lowest over its windows (as the BERT and
    transformers SQuAD 2.0 post-processing take it); the answer is "" when the null score exceeds the best
    span's score by more than the threshold."""
    best: dict[int, tuple[float, str]] = {}
    null: dict[int, float] = {}
    for f, example in enumerate(feature_example_index):
        offsets = offset_mapping[f]
        n = len(offsets)
        start_scores, end_scores = start_logits[f][:n], end_logits[f][:n]
        if null_threshold is not None:
            null[example] = min(null.get(example, np.inf), float(start_scores[0] + end_scores[0]))
        for s in np.argsort(start_scores)[::-1][:n_best]:
            if offsets[s] is None:
                continue
            for e in np.argsort(end_scores)[::-1][:n_best]:
                if offsets[e] is None or e < s or e - s + 1 > max_answer_length:
                    continue
                score = float(start_scores[s] + end_scores[e])
                if example not in best or score > best[example][0]:
                    best[example] = (score, contexts[example][offsets[s][0]:offsets[e][1]].strip())
    answers = {}
    for i, qid in enumerate(example_ids):
        no_answer = i in null and (i not in best or null[i] - best[i][0] > null_threshold)
        answers[qid] = best[i][1] if i in best and not no_answer else ""
    return answers
