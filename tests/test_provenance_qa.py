"""Misaligned QA training rows (xfer/qa.py): a gold answer not at its `answer_start` is repaired when its text
is a few characters away, dropped when it is not, and both are counted; never trained on silently."""

import pytest

from xfer import qa

CONTEXT = "Paris is the capital of France and Berlin is the capital of Germany."
GERMANY = CONTEXT.index("Germany")


@pytest.mark.parametrize("start, text, expected", [
    (GERMANY, "Germany", (GERMANY, "Germany")),  # aligned: as given
    (GERMANY - 2, "Germany", (GERMANY, "Germany")),  # a small offset either way
    (GERMANY + 3, "Germany", (GERMANY, "Germany")),
    (GERMANY, " Germany. ", (GERMANY, "Germany.")),  # surrounding whitespace stripped
    (GERMANY - 30, "Germany", None),  # too far away to be the same answer
    (GERMANY, "Austria", None),  # not in the context
    (0, "", (0, "")),
])
def test_align_answer(start, text, expected):
    assert qa.align_answer(CONTEXT, start, text) == expected


def test_the_nearest_occurrence_wins():
    capital = [i for i in range(len(CONTEXT)) if CONTEXT.startswith("capital", i)]
    assert qa.align_answer(CONTEXT, capital[1] - 3, "capital") == (capital[1], "capital")
    assert qa.align_answer(CONTEXT, capital[0] + 2, "capital") == (capital[0], "capital")


@pytest.fixture(scope="module")
def tokenizer():
    from xfer.tiny import train_tokenizer

    return train_tokenizer([CONTEXT] * 3 + ["Where is Berlin?"] * 3, vocab_size=60)


def test_training_features_repair_drop_and_count(tokenizer):
    berlin = CONTEXT.index("Berlin")
    rows = [  # (answer_start, text)
        ([berlin], ["Berlin"]),  # aligned
        ([berlin + 2], ["Berlin"]),  # repaired
        ([GERMANY - 40], ["Germany"]),  # dropped
        ([], []),  # unanswerable (SQuAD 2.0): kept, nothing to align
    ]
    enc = qa.squad_train_features(tokenizer, ["Where?"] * 4, [CONTEXT] * 4, [r[0] for r in rows],
                                  [r[1] for r in rows], max_length=64, doc_stride=16)
    assert enc["alignment"] == {"repaired": 1, "dropped": 1}
    assert sorted(set(enc["feature_example_index"])) == [0, 1, 3]  # the rows as given, without the dropped one
    for f, example in enumerate(enc["feature_example_index"]):
        s, e = enc["start_positions"][f], enc["end_positions"][f]
        offsets = enc["offset_mapping"][f]
        if example in (0, 1):  # the repaired row trains on the same span as the aligned one
            assert CONTEXT[offsets[s][0]:offsets[e][1]].strip() == "Berlin"
        else:
            assert (s, e) == (0, 0)
    assert len(enc["input_ids"]) == len(enc["start_positions"]) == len(enc["feature_example_index"])


def test_aligned_rows_are_counted_as_such(tokenizer):
    enc = qa.squad_train_features(tokenizer, ["Where?"], [CONTEXT], [[GERMANY]], [["Germany"]], 64, 16)
    assert enc["alignment"] == {"repaired": 0, "dropped": 0}
