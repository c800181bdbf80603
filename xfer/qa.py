"""Extractive QA features and post-processing: (question, context) pairs tokenised into doc-stride
windows with character offsets, and start/end logits over those windows turned back into answer text.

Training rows are checked first (`align_answer`): a gold answer must sit where its `answer_start` says,
`context[answer_start:answer_start + len(text)] == text`. One that does not is repaired when its text (or the
text stripped of surrounding whitespace) occurs within `REPAIR_WINDOW` characters of that position, the nearest
occurrence winning; otherwise the row is dropped. `squad_train_features` reports both counts, so a misaligned
row is never trained on silently (at a wrong position, or at <s> as if it had no answer).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

NULL_THRESHOLD = 0.0  # SQuAD 2.0: predict "" when the null score beats the best span by more than this
REPAIR_WINDOW = 8  # characters either side of answer_start searched for a misaligned answer's text


def align_answer(context: str, start: int, text: str, window: int = REPAIR_WINDOW) -> tuple[int, str] | None:
    """(start, text) of a gold answer whose text is at its start in `context`: as given, repaired to the nearest
    occurrence of the text (or of the text stripped of surrounding whitespace) at most `window` characters
    away, or None when it cannot be found there."""
    if 0 <= start and context[start:start + len(text)] == text:
        return start, text
    for candidate in dict.fromkeys((text, text.strip())):
        if not candidate:
            continue
        lo = max(0, start - window)
        found = [i for i in range(lo, min(len(context), start + window + 1))
                 if context.startswith(candidate, i)]
        if found:
            return min(found, key=lambda i: (abs(i - start), i)), candidate
    return None


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
    that does not hold the whole answer (or an unanswerable question) points at token 0. The first gold answer
    of each row is aligned first (`align_answer`): `alignment` = {"repaired": n, "dropped": m} counts the rows
    whose answer was moved and those left out (no window of theirs is returned; `feature_example_index` still
    indexes the rows as given)."""
    kept, starts_in, texts_in, repaired = [], [], [], 0
    for i, (context, starts, texts) in enumerate(zip(contexts, answer_starts, answer_texts)):
        if not (len(starts) and len(texts)):  # unanswerable: nothing to align
            kept.append(i)
            starts_in.append([])
            texts_in.append([])
            continue
        aligned = align_answer(context, int(starts[0]), texts[0])
        if aligned is None:
            continue
        repaired += aligned != (int(starts[0]), texts[0])
        kept.append(i)
        starts_in.append([aligned[0]])
        texts_in.append([aligned[1]])
    alignment = {"repaired": repaired, "dropped": len(contexts) - len(kept)}
    enc = squad_features(tokenizer, [questions[i] for i in kept], [contexts[i] for i in kept], max_length,
                         doc_stride)
    starts, ends = [], []
    for f, offsets in enumerate(enc["offset_mapping"]):
        example = enc["feature_example_index"][f]  # among the kept rows
        start_position = end_position = 0
        if starts_in[example]:
            char_start = starts_in[example][0]
            char_end = char_start + len(texts_in[example][0])
            tokens = [t for t, span in enumerate(offsets) if span is not None]
            if tokens and offsets[tokens[0]][0] <= char_start and offsets[tokens[-1]][1] >= char_end:
                start_position = next(t for t in tokens if offsets[t][1] > char_start)
                end_position = next(t for t in reversed(tokens) if offsets[t][0] < char_end)
        starts.append(start_position)
        ends.append(end_position)
    enc["feature_example_index"] = [kept[e] for e in enc["feature_example_index"]]
    return {**enc, "start_positions": starts, "end_positions": ends, "alignment": alignment}


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
