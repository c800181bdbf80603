"""XTREME's metrics on hand-computed cases: accuracy, seqeval F1 (NER and POS), token accuracy, SQuAD
EM/F1, cosine nearest-neighbour retrieval."""

import numpy as np
import pytest

from xfer import metrics
from xfer.errors import XferError


def test_accuracy():
    assert metrics.accuracy([1, 2, 3, 4], [1, 2, 0, 4]) == 75.0
    assert metrics.accuracy(["neutral"], ["neutral"]) == 100.0
    with pytest.raises(XferError, match="3 predictions for 2 references"):
        metrics.accuracy([1, 2, 3], [1, 2])
    with pytest.raises(XferError, match="no references"):
        metrics.accuracy([], [])


def test_seqeval_ner_partial_entity_is_wrong():
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    pred = [["B-PER", "O", "O", "B-LOC"]]  # PER cut short: only LOC matches; 1 of 2 each way
    assert metrics.seqeval_f1(pred, gold) == pytest.approx(50.0)
    assert metrics.token_accuracy(pred, gold) == pytest.approx(75.0)


def test_seqeval_precision_recall_and_lenient_i_start():
    gold = [["B-PER", "O", "B-LOC", "O"]]
    pred = [["B-PER", "B-ORG", "B-MISC", "O"]]  # 3 predicted, 2 gold, 1 right: P 1/3, R 1/2, F1 .4
    assert metrics.seqeval_scores(pred, gold) == pytest.approx({"precision": 100 / 3, "recall": 50.0, "f1": 40.0})
    # seqeval's default mode starts an entity at an I- tag
    assert metrics.seqeval_f1([["I-PER", "I-PER"]], [["B-PER", "I-PER"]]) == 100.0
    # entities are counted over all sentences together (micro average)
    gold2 = [["B-PER"], ["B-LOC"], ["B-ORG"], ["B-MISC"]]
    pred2 = [["B-PER"], ["O"], ["O"], ["O"]]  # P 1/1, R 1/4 -> 0.4
    assert metrics.seqeval_f1(pred2, gold2) == pytest.approx(40.0)


def test_seqeval_reads_pos_tags_as_chunks():
    # seqeval >= 1.0: first letter = chunk prefix, rest = type. NOUN NOUN is one chunk of type "OUN".
    gold = [["NOUN", "NOUN", "VERB"]]  # chunks: OUN(0-1), ERB(2)
    pred = [["NOUN", "VERB", "VERB"]]  # chunks: OUN(0), ERB(1-2): none right
    assert metrics.seqeval_f1(pred, gold) == 0.0
    assert metrics.token_accuracy(pred, gold) == pytest.approx(200 / 3)
    # CCONJ and SCONJ are both type CONJ (prefixes C and S): a wrong tag scores as right
    assert metrics.seqeval_f1([["CCONJ"]], [["SCONJ"]]) == 100.0
    assert metrics.token_accuracy([["CCONJ"]], [["SCONJ"]]) == 0.0
    # PRON vs PROPN: types RON and ROPN differ
    assert metrics.seqeval_f1([["PRON"]], [["PROPN"]]) == 0.0


def test_tagging_length_mismatch():
    with pytest.raises(XferError, match="1 predicted sentences for 2 references"):
        metrics.seqeval_f1([["O"]], [["O"], ["O"]])
    with pytest.raises(XferError, match="sentence 1 has 1 predicted tags for 2 words"):
        metrics.seqeval_scores([["O"], ["O"]], [["O"], ["O", "B-PER"]])
    with pytest.raises(XferError, match="sentence 0 has 2 predicted tags for 1 words"):
        metrics.token_accuracy([["O", "O"]], [["O"]])


def test_squad_normalisation():
    assert metrics.squad_normalize("The  Eiffel-Tower!") == "eiffeltower"
    assert metrics.squad_normalize("An apple, a pear and THE plum.") == "apple pear and plum"
    assert metrics.squad_normalize("theatre") == "theatre"  # articles are whole words only


def test_squad_em_f1_max_over_golds_and_unanswered():
    references = {"q1": ["Eiffel Tower"], "q2": ["Paris", "Lyon"], "q3": ["1889"]}
    predictions = {"q1": "the Eiffel Tower.", "q2": "Paris France", "extra": "x"}
    # q1: EM 1, F1 1. q2: [paris, france] vs [paris]: P 1/2, R 1 -> 2/3 (Lyon: 0). q3 unanswered: 0.
    out = metrics.squad_scores(predictions, references)
    assert out["exact_match"] == pytest.approx(100 / 3)
    assert out["f1"] == pytest.approx(100 * (1 + 2 / 3) / 3)
    assert metrics.squad_f1("a the", "the") == 0.0  # both normalise to nothing: no common token
    with pytest.raises(XferError, match="no questions"):
        metrics.squad_scores({}, {})


def test_cosine_nearest_and_retrieval_accuracy():
    source = np.array([[1.0, 0.1], [0.1, 1.0], [5.0, 4.0]])
    target = np.array([[10.0, 0.0], [0.0, 0.5], [1.0, 1.0]])
    # cosine ignores length: row 2 (5, 4) is nearest to (1, 1), not to the long (10, 0)
    assert metrics.cosine_nearest(source, target).tolist() == [0, 1, 2]
    assert metrics.retrieval_accuracy([0, 1, 2]) == 100.0
    assert metrics.retrieval_accuracy([0, 2, 1, 3]) == 50.0
    with pytest.raises(XferError, match="do not match"):
        metrics.cosine_nearest(source, np.ones((2, 3)))
