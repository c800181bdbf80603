"""Per-example test scores (xfer/example_scores.py): summing each example's part reproduces every job metric
exactly (compared with the formats' scorers and xfer/metrics.py on the bundled fixtures, with predictions
perturbed at random), seqeval's corpus reading of POS tags included; the file format round-trips and rejects
anything else in one line."""

from __future__ import annotations

import random

import numpy as np
import pytest

from xfer import bucc, formats, metrics, tasks
from xfer import example_scores as E
from xfer.data import DataSource
from xfer.errors import XferError
from xfer.formats.retrieval import Mined


@pytest.fixture(scope="module")
def data():
    return DataSource("bundled")


def _perturbed_labels(gold, labels, rng, rate=0.35):
    return [rng.choice(labels) if rng.random() < rate else g for g in gold]


@pytest.mark.parametrize("name, lang", [("xnli", "de"), ("xnli", "sw"), ("pawsx", "es")])
def test_classification_accuracy_is_the_sum_of_its_examples(data, name, lang):
    task = tasks.get(name)
    rows = data.load(task, task.test, lang)
    fmt = formats.get(task.format)
    gold = [task.labels[i] for i in formats.common.label_ids(task, task.test, rows[task.test.columns["label"]])
            if i >= 0]
    predictions = _perturbed_labels(gold, list(task.labels), random.Random(1))
    scores = E.compute(task, task.test, rows, predictions, lang)
    assert scores.kind == "accuracy" and scores.n == len(gold)
    assert E.metrics(scores) == fmt.score(task, task.test, rows, predictions, lang)  # bit for bit
    assert E.metrics(scores)["accuracy"] not in (0.0, 100.0)  # the perturbation made some wrong


def _tag_predictions(task, split, rows, rng, rate):
    gold = E._gold_tags(task, split, rows)
    return [[rng.choice(task.labels) if rng.random() < rate else t for t in sentence] for sentence in gold]


@pytest.mark.parametrize("name, lang, rate", [("panx", "de", 0.2), ("panx", "sw", 0.5), ("udpos", "es", 0.3),
                                              ("udpos", "yo", 0.6)])
def test_tagging_f1_and_token_accuracy_are_sums_over_sentences(data, name, lang, rate):
    task = tasks.get(name)
    rows = data.load(task, task.test, lang)
    predictions = _tag_predictions(task, task.test, rows, random.Random(2), rate)
    scores = E.compute(task, task.test, rows, predictions, lang)
    expected = formats.get("tagging").score(task, task.test, rows, predictions, lang)
    assert E.metrics(scores) == expected  # seqeval's F1 and token accuracy, bit for bit
    assert 0 < expected["f1"] < 100
    a = scores.arrays
    assert scores.n == len(rows) and int(a["tokens"].sum()) == sum(len(t) for t in rows[task.test.columns["tags"]])
    # precision and recall too: seqeval's, from the same sums
    p = metrics.seqeval_scores(predictions, E._gold_tags(task, task.test, rows))
    assert 100 * a["true_positives"].sum() / a["predicted"].sum() == pytest.approx(p["precision"], abs=1e-12)
    assert 100 * a["true_positives"].sum() / a["gold"].sum() == pytest.approx(p["recall"], abs=1e-12)


def test_seqeval_chunks_that_run_across_sentences_are_counted_where_they_start():
    """seqeval joins sentences with an "O" and reads un-prefixed POS tags oddly: an `X` (type '_') after that
    "O" starts no chunk, and a chunk of it can run into the next sentence. The counts still sum to seqeval's."""
    task = tasks.get("udpos")
    gold = [["X", "NOUN"], ["X", "X"], ["VERB"], [], ["X"], ["NOUN", "X", "ADJ"]]
    predicted = [["X", "VERB"], ["NOUN", "X"], ["VERB"], [], ["X"], ["NOUN", "NOUN", "ADJ"]]

    class Split:
        labels_are, columns = "name", {"tags": "tags"}

    rows = {"tags": gold}
    scores = E.compute(task, Split, rows, predicted)
    assert E.metrics(scores)["f1"] == metrics.seqeval_f1(predicted, gold)
    assert E.metrics(scores)["token_accuracy"] == metrics.token_accuracy(predicted, gold)
    assert scores.arrays["gold"][3] == 0  # the empty sentence holds nothing


QA_CASES = [("xquad", "de", "xquad"), ("mlqa", "es", "mlqa"), ("mlqa", "de", "mlqa"), ("tydiqa", "sw", "tydiqa"),
            ("squad_v2", "en", "squad_v2")]


def _qa_predictions(task, split, rows, rng) -> dict[str, str]:
    """Right, partly right, wrong, empty and missing answers."""
    cols = split.columns
    out = {}
    for qid, answers in zip(rows[cols["id"]], rows[cols["answers"]]):
        texts = list(answers["text"])
        roll = rng.random()
        if roll < 0.15:
            continue  # unanswered: scores 0
        if not texts or roll < 0.3:
            out[str(qid)] = ""
        elif roll < 0.55:
            out[str(qid)] = texts[0]
        elif roll < 0.8:
            words = texts[0].split()
            out[str(qid)] = " ".join(words[: max(1, len(words) // 2)] + ["extra"])
        else:
            out[str(qid)] = "the wrong answer"
    return out


@pytest.mark.parametrize("name, lang, _", QA_CASES)
def test_qa_em_and_f1_are_sums_over_questions(data, name, lang, _):
    task = tasks.get(name)
    split = task.test if task.test is not None else task.dev
    rows = data.load(task, split, lang)
    predictions = _qa_predictions(task, split, rows, random.Random(3))
    scores = E.compute(task, split, rows, predictions, lang)
    expected = formats.get("span_qa").score(task, split, rows, predictions, lang)
    assert E.metrics(scores) == expected  # SQuAD v1.1 / MLQA / SQuAD 2.0 rules, bit for bit
    assert 0 < expected["f1"] < 100 and scores.n == len(set(rows[split.columns["id"]]))


def test_tatoeba_accuracy_is_the_sum_of_its_sources(data):
    task = tasks.get("tatoeba")
    rows = data.load(task, task.test, "sw")
    rng = random.Random(4)
    nearest = [i if rng.random() < 0.6 else rng.randrange(len(rows)) for i in range(len(rows))]
    scores = E.compute(task, task.test, rows, nearest, "sw")
    assert E.metrics(scores) == {"accuracy": metrics.retrieval_accuracy(nearest)}


@pytest.mark.parametrize("lang", ["de", "fr"])
def test_bucc_pair_f1_is_recomputed_from_per_source_counts(data, lang):
    task = tasks.get("bucc2018")
    rows = data.load(task, task.test, lang)
    cols = task.test.columns
    gold = sorted(set(zip(map(str, rows[cols["source_id"]]), map(str, rows[cols["target_id"]]))))
    rng = random.Random(5)
    targets = [t for _, t in gold]
    pairs = [(s, t if rng.random() < 0.6 else rng.choice(targets)) for s, t in gold if rng.random() < 0.8]
    scores = E.compute(task, task.test, rows, Mined(pairs, 1.1), lang)
    expected = bucc.pair_scores(set(pairs), set(gold))
    assert E.metrics(scores) == expected and 0 < expected["f1"] < 100
    assert int(scores.arrays["gold"].sum()) == len(gold) and int(scores.arrays["predicted"].sum()) == len(set(pairs))
    assert E.metrics(E.compute(task, task.test, rows, [], lang)) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_vectorised_f1_agrees_with_the_scorers():
    tp, predicted, gold = np.array([0, 3, 5]), np.array([0, 4, 9]), np.array([2, 6, 5])
    expected = [0.0] + [bucc.pair_scores(set(range(p)), set(range(p - t, p - t + g)))["f1"]
                        for t, p, g in zip(tp[1:], predicted[1:], gold[1:])]
    assert E.f1_of_counts(tp, predicted, gold) == pytest.approx(expected, abs=1e-12)


# ------------------------------------------------------------------------------------------- file format


def test_file_round_trip(tmp_path, data):
    task = tasks.get("panx")
    rows = data.load(task, task.test, "sw")
    scores = E.compute(task, task.test, rows, _tag_predictions(task, task.test, rows, random.Random(6), 0.3), "sw")
    path = tmp_path / E.relpath("panx", "sw")
    assert E.relpath("panx", "sw") == "examples/panx/test-sw.safetensors"
    E.write(scores, path)
    back = E.read(path)
    assert (back.task, back.language, back.kind, back.metrics, back.ids_sha256) == (
        "panx", "sw", "tagging", ("f1", "token_accuracy"), scores.ids_sha256)
    assert all(np.array_equal(back.arrays[k], scores.arrays[k]) for k in E.KINDS["tagging"])
    assert E.metrics(back) == E.metrics(scores)
    assert path.read_bytes() == E.to_bytes(scores)  # same scores, same bytes


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[:20], "not a per-example scores file"),
    (lambda b: b"not safetensors at all", "not a per-example scores file"),
])
def test_damaged_files_are_one_line_errors(tmp_path, damage, message):
    scores = E.ExampleScores("xnli", "de", "accuracy", ("accuracy",), {"correct": np.array([1, 0], np.uint8)}, "x")
    path = tmp_path / "s.safetensors"
    path.write_bytes(damage(E.to_bytes(scores)))
    with pytest.raises(XferError, match=message) as info:
        E.read(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_foreign_safetensors_file_is_rejected(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "model.safetensors"
    save_file({"weight": np.zeros(3, np.float32)}, str(path))
    with pytest.raises(XferError, match="format None"):
        E.read(path)


def test_invalid_scores_are_refused():
    with pytest.raises(XferError, match="negative or non-finite"):
        E.ExampleScores("xquad", "de", "qa", ("exact_match", "f1"),
                        {"exact_match": np.array([1.0]), "f1": np.array([np.nan])}, "x")
    with pytest.raises(XferError, match="arrays correct"):
        E.ExampleScores("xquad", "de", "qa", ("exact_match", "f1"), {"correct": np.array([1])}, "x")
