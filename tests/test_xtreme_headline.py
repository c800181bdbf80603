"""XTREME's headline averages: task scores, categories, and partial averages named as such."""

import pytest

from xfer.errors import XferError
from xfer.xtreme import CATEGORIES, TASK_METRICS, headline, task_score

# XLM-R on XTREME (RemBERT paper, Table 16): the seven trainable tasks.
XLMR = {"xnli": {"accuracy": 79.2}, "udpos": {"f1": 73.8}, "panx": {"f1": 65.4}, "pawsx": {"accuracy": 86.4},
        "xquad": {"exact_match": 60.8, "f1": 76.6}, "mlqa": {"exact_match": 53.2, "f1": 71.6},
        "tydiqa": {"exact_match": 45.0, "f1": 65.1}}


def test_categories_cover_every_task_once():
    assert sorted(t for ts in CATEGORIES.values() for t in ts) == sorted(TASK_METRICS)


def test_qa_task_score_is_mean_of_em_and_f1():
    assert task_score("xquad", {"exact_match": 60.8, "f1": 76.6}) == pytest.approx(68.7)
    assert task_score("xnli", {"accuracy": 79.2}) == 79.2
    with pytest.raises(XferError, match="'f1' is missing"):
        task_score("mlqa", {"exact_match": 1.0})


def test_published_xlmr_seven_tasks_average_70_1_and_is_partial():
    scores = {task: task_score(task, metrics) for task, metrics in XLMR.items()}
    out = headline(scores)
    assert out["avg_over_tasks"] is None and out["avg_over_categories"] is None
    assert out["missing"] == ["bucc2018", "tatoeba"]
    partial = out["partial"]["avg_over_tasks"]
    assert round(partial["value"], 1) == 70.1
    assert sorted(partial["tasks"]) == sorted(XLMR)
    # retrieval is incomplete: the category average covers the three complete categories only
    cats = out["partial"]["avg_over_categories"]
    assert cats["categories"] == ["classification", "structured_prediction", "question_answering"]
    expected = ((79.2 + 86.4) / 2 + (73.8 + 65.4) / 2 + (68.7 + 62.4 + 55.05) / 3) / 3
    assert cats["value"] == pytest.approx(expected)


def test_complete_scores_give_both_headlines():
    scores = {task: float(i) for i, task in enumerate(TASK_METRICS)}
    out = headline(scores)
    assert out["avg_over_tasks"] == pytest.approx(sum(range(9)) / 9)
    # classification (0,1) .5; structured (2,3) 2.5; QA (4,5,6) 5; retrieval (7,8) 7.5
    assert out["avg_over_categories"] == pytest.approx((0.5 + 2.5 + 5 + 7.5) / 4)
    assert out["partial"] == {} and out["missing"] == []


def test_nothing_present_and_unknown_tasks():
    assert headline({})["partial"] == {}
    assert headline({"xnli": None})["missing"][0] == "xnli"
    with pytest.raises(XferError, match="unknown XTREME task 'squad'"):
        headline({"squad": 1.0})
