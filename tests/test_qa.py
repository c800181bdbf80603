"""QA post-processing (xfer/qa.py): doc-stride windows with offsets, gold positions, and the best answer
span over all windows of a question mapped back to context text."""

import numpy as np
import pytest

from xfer import qa

CONTEXT = "Paris is the capital of France and Berlin is the capital of Germany."
# hand-made windows over CONTEXT: [CLS] question-token context... ; None = not context
W0 = [None, None, (0, 5), (5, 8), (8, 12), (12, 20), (20, 23), (23, 30)]  # Paris is the capital of France
W1 = [None, None, (12, 20), (20, 23), (23, 30), (30, 34), (34, 41)]  # capital of France and Berlin
W2 = [None, None, (48, 56), (56, 59), (59, 68)]  # capital of Germany.


def logits(width, **peaks):
    row = np.zeros(width)
    for index, value in peaks.items():
        row[int(index[1:])] = value
    return row


def run(windows, starts, ends, **kw):
    width = max(len(w) for w in windows)
    pad = lambda rows: np.stack([np.pad(r, (0, width - len(r)), constant_values=-1e9) for r in rows])
    return qa.best_answers(["q"], [CONTEXT], [0] * len(windows), windows, pad(starts), pad(ends), **kw)["q"]


def test_best_span_maps_back_through_offsets():
    # start "France" (t7) + end "France" (t7) = 9 beats start "Paris" + end "Paris" = 8
    answer = run([W0], [logits(8, t2=4, t7=5)], [logits(8, t2=4, t7=4)])
    assert answer == "France"
    # start Paris, end capital: the text between the offsets, leading/trailing space stripped
    assert run([W0], [logits(8, t2=9)], [logits(8, t5=9)]) == "Paris is the capital"


def test_special_tokens_and_backward_spans_are_skipped():
    # the [CLS] token has the highest logits but no offsets; an end before the start is not a span
    answer = run([W0], [logits(8, t0=50, t2=-20, t6=5)], [logits(8, t0=50, t2=9, t7=1)])
    assert answer == "of France"  # start t6 (5) + end t7 (1); t6..t2 (14) runs backwards
    # no valid span at all -> ""
    assert run([[None, None]], [logits(2, t0=5)], [logits(2, t1=5)]) == ""


def test_max_answer_length():
    starts, ends = [logits(8, t2=10, t5=3, t7=-5)], [logits(8, t7=10, t5=4, t2=-5)]
    assert run([W0], starts, ends) == "Paris is the capital of France"  # t2..t7, 6 tokens, 20
    # at most 4 tokens: t2..t5 (14) beats t5..t7 (13)
    assert run([W0], starts, ends, max_answer_length=4) == "Paris is the capital"
    # one token: t5..t5 (7) beats t2..t2 (5) and t7..t7 (5)
    assert run([W0], starts, ends, max_answer_length=1) == "capital"


def test_windows_compete_by_score():
    # an answer across the W1/W0 boundary: W0 can only offer "capital of France" up to its edge,
    # W1 holds "capital of France and Berlin"; the window whose best span scores higher wins
    w0 = (logits(8, t5=3), logits(8, t7=3))    # "capital of France", 6
    w1 = (logits(7, t2=4), logits(7, t6=4))    # "capital of France and Berlin", 8
    assert run([W0, W1], [w0[0], w1[0]], [w0[1], w1[1]]) == "capital of France and Berlin"
    w1_low = (logits(7, t2=2), logits(7, t6=2))  # 4 < 6
    assert run([W0, W1], [w0[0], w1_low[0]], [w0[1], w1_low[1]]) == "capital of France"
    # windows of different questions do not mix
    out = qa.best_answers(["a", "b"], [CONTEXT, CONTEXT], [0, 1], [W0, W2],
                          np.stack([logits(8, t2=5), np.pad(logits(5, t4=1), (0, 3))]),
                          np.stack([logits(8, t2=5), np.pad(logits(5, t4=1), (0, 3))]))
    assert out == {"a": "Paris", "b": "Germany."}


@pytest.fixture(scope="module")
def tokenizer():
    from xfer.tiny import train_tokenizer

    return train_tokenizer([CONTEXT] * 3 + ["Which city is the capital of France?"] * 3, vocab_size=60)


def test_doc_stride_windows_with_a_real_tokenizer(tokenizer):
    enc = qa.squad_features(tokenizer, ["What is the capital of France?"], [CONTEXT], max_length=24, doc_stride=4)
    assert len(enc["input_ids"]) >= 2 and set(enc["feature_example_index"]) == {0}
    spans = [[s for s in offsets if s is not None] for offsets in enc["offset_mapping"]]
    # question and special tokens carry no offsets; every window's context tokens are in order
    assert all(offsets[0] is None for offsets in enc["offset_mapping"])
    assert all(a[0] <= b[0] and a[1] <= b[1] for window in spans for a, b in zip(window, window[1:]))
    # the windows together cover every character of the context, and consecutive windows overlap
    covered = {i for window in spans for a, b in window for i in range(a, b)}
    assert covered == set(range(len(CONTEXT)))
    assert all(set(w) & set(v) for w, v in zip(spans, spans[1:]))


def test_gold_positions_per_window(tokenizer):
    start = CONTEXT.index("Germany.")
    enc = qa.squad_train_features(tokenizer, ["Where?"], [CONTEXT], [[start]], [["Germany."]],
                                  max_length=20, doc_stride=8)
    found = 0
    for f, offsets in enumerate(enc["offset_mapping"]):
        s, e = enc["start_positions"][f], enc["end_positions"][f]
        context_tokens = [span for span in offsets if span is not None]
        if context_tokens[-1][1] >= start + len("Germany."):
            found += 1
            assert CONTEXT[offsets[s][0]:offsets[e][1]].strip() == "Germany."
        else:
            assert (s, e) == (0, 0)  # the window does not hold the answer
    assert found >= 1 and len(enc["offset_mapping"]) >= 2
