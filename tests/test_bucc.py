"""BUCC 2018 mining (ratio margin), threshold chosen on dev and applied to test, pair P/R/F1."""

import numpy as np
import pytest

from xfer import metrics
from xfer.bucc import apply_threshold, mine, pair_scores, score_with_dev_threshold, select_threshold
from xfer.errors import XferError

# sources e1, e2; targets y0, y1 and a "hub" close to both sources. Cosines (sources x targets):
#   x0: y0 0.6, y1 0.0, hub 0.7
#   x1: y0 0.0, y1 0.6, hub 0.7
SRC = np.array([[1, 0, 0, 0], [0, 1, 0, 0]], dtype=float)
TGT = np.array([[0.6, 0, 0.8, 0], [0, 0.6, 0, 0.8], [0.7, 0.7, 0.1, 0.1]])


def test_ratio_margin_beats_the_hub():
    # plain cosine picks the hub for both sources
    assert metrics.cosine_nearest(SRC, TGT).tolist() == [2, 2]
    # k=2: x0's neighbours y0 .6 and hub .7 (mean .65), x1 likewise; y0's x0 .6, x1 0 (mean .3), y1 likewise;
    # hub's .7 .7 (mean .7). margin(x0, y0) = .6 / ((.65 + .3) / 2) = 1.2632; margin(x0, hub) = .7 / .675 = 1.037
    out = mine(SRC * 3, TGT, ["s0", "s1"], ["t0", "t1", "hub"], k=2)
    assert [(s, t) for s, t, _ in out] == [("s0", "t0"), ("s1", "t1")]
    assert [score for _, _, score in out] == pytest.approx([0.6 / 0.475, 0.6 / 0.475])


def test_pairs_are_one_to_one_and_duplicate_texts_dropped():
    # t1 repeats t0's text: one embedding (t0's) is kept, and pairs with either id are dropped.
    # Targets t0, hub: x0 (.6, .7) mean .65, x1 (0, .7) mean .35; t0 (.6, 0) mean .3, hub mean .7.
    # x1-hub = .7 / ((.35 + .7) / 2) = 4/3 is taken first; x0-t0 = 1.263 would be next but t0's text repeats.
    out = mine(SRC, TGT, ["s0", "s1"], ["t0", "t1", "hub"], k=2, src_texts=["a", "b"], tgt_texts=["x", "x", "h"])
    assert out == [("s1", "hub", pytest.approx(4 / 3))]


def test_mine_errors():
    with pytest.raises(XferError, match="2 source ids for 3 embeddings"):
        mine(np.ones((3, 4)), TGT, ["a", "b"], ["t0", "t1", "hub"])
    with pytest.raises(XferError, match="source embeddings have 3 dimensions, target 4"):
        mine(np.ones((2, 3)), TGT, ["a", "b"], ["t0", "t1", "hub"])


# dev candidates, best first, and a dev gold with one pair never retrieved (g)
DEV = [("a", "A", 1.5), ("b", "B", 1.4), ("c", "C", 1.3), ("d", "D", 1.2), ("e", "E", 1.1), ("f", "F", 1.0)]
DEV_GOLD = {("a", "A"), ("b", "B"), ("d", "D"), ("g", "G")}


def test_threshold_with_best_dev_f1():
    # F1 after a: .4; b: 2/3; c: 4/7; d: P 3/4 R 3/4 -> .75 (best); e: 2/3; f: .6
    threshold = select_threshold(DEV, DEV_GOLD)
    assert threshold == pytest.approx((1.2 + 1.1) / 2)
    assert apply_threshold(DEV, threshold) == {("a", "A"), ("b", "B"), ("c", "C"), ("d", "D")}
    # the candidate order does not matter
    assert select_threshold(list(reversed(DEV)), DEV_GOLD) == pytest.approx(1.15)


def test_dev_threshold_applied_to_test():
    test = [("p", "P", 1.6), ("q", "Q", 1.16), ("r", "R", 1.14), ("s", "S", 0.9)]
    test_gold = {("p", "P"), ("r", "R"), ("s", "S")}
    out = score_with_dev_threshold(DEV, DEV_GOLD, test, test_gold)
    # 1.15 keeps p and q: 1 right of 2 predicted, of 3 gold
    assert out["threshold"] == pytest.approx(1.15)
    assert out["precision"] == pytest.approx(50.0) and out["recall"] == pytest.approx(100 / 3)
    assert out["f1"] == pytest.approx(40.0)
    # choosing on the test gold itself (XTREME's scripts) would have kept everything down to s: F1 6/7
    assert select_threshold(test, test_gold) == pytest.approx(0.9)


def test_ties_are_kept_together():
    # c and b tie at 1.0; a cut inside the tie (after c alone: F1 1.0) is not a threshold anyone can apply
    cands = [("a", "A", 2.0), ("c", "C", 1.0), ("b", "B", 1.0), ("d", "D", 0.5)]
    gold = {("a", "A"), ("c", "C")}
    # after a: 2/3; after {c, b}: P 2/3 R 1 -> .8; after d: 2/3
    assert select_threshold(cands, gold) == pytest.approx(0.75)
    # best cut after the last candidate: the threshold is the last score
    assert select_threshold(cands[:3], gold) == pytest.approx(1.0)
    assert len(apply_threshold(cands[:3], 1.0)) == 3


def test_no_dev_pair_right_gives_zero_like_xtreme_and_empty_gold_fails():
    assert select_threshold([("x", "Y", 1.3)], {("x", "X")}) == 0.0
    with pytest.raises(XferError, match="empty"):
        select_threshold(DEV, set())
    with pytest.raises(XferError, match="empty"):
        pair_scores({("a", "b")}, set())


def test_pair_scores():
    out = pair_scores({("1", "2"), ("3", "4")}, {("1", "2"), ("5", "6"), ("7", "8")})
    assert out == pytest.approx({"precision": 50.0, "recall": 100 / 3, "f1": 40.0})
    assert pair_scores({("2", "1")}, {("1", "2")}) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert pair_scores(set(), {("1", "2")})["f1"] == 0.0
