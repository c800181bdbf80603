"""The sweep report: XTREME-style averages checked by hand arithmetic, missing cells that void every average
they feed, English kept out of the high-resource average, results.csv round trip and errors, and all-or-none
report files."""

from __future__ import annotations

import json
import random

import pytest
from matplotlib.text import Text

from xfer import report
from xfer.errors import XferError
from xfer.report import Cell, LowResourceSet, read_results_csv, summarize, write_report, write_results_csv

LOW = LowResourceSet("panx-1k", frozenset({"jv", "kk", "my", "sw", "te", "yo"}),
                     "languages whose PAN-X training set has at most 1,000 sentences")

# (target task, language, metric) -> value for seed 1, seed 2; budget 0 is shared by both intermediate tasks
BASELINE = {
    ("xnli", "en", "accuracy"): (80, 82), ("xnli", "sw", "accuracy"): (60, 62), ("xnli", "de", "accuracy"): (70, 74),
    ("xquad", "en", "exact_match"): (60, 62), ("xquad", "en", "f1"): (70, 74),
    ("xquad", "de", "exact_match"): (40, 44), ("xquad", "de", "f1"): (50, 56),
}
TRAINED = {
    "mnli": {
        ("xnli", "en", "accuracy"): (84, 86), ("xnli", "sw", "accuracy"): (66, 68),
        ("xnli", "de", "accuracy"): (76, 78),
        ("xquad", "en", "exact_match"): (62, 64), ("xquad", "en", "f1"): (72, 76),
        ("xquad", "de", "exact_match"): (42, 46), ("xquad", "de", "f1"): (54, 58),
    },
    "squad": {
        ("xnli", "en", "accuracy"): (81, 83), ("xnli", "sw", "accuracy"): (61, 65),
        ("xnli", "de", "accuracy"): (71, 73),
        ("xquad", "en", "exact_match"): (70, 72), ("xquad", "en", "f1"): (80, 84),
        ("xquad", "de", "exact_match"): (50, 52), ("xquad", "de", "f1"): (60, 64),
    },
}


def sweep_rows() -> list[dict]:
    rows = []
    for itask in ("mnli", "squad"):
        for budget, table in ((0, BASELINE), (100, TRAINED[itask])):
            for (task, lang, metric), values in table.items():
                for seed, value in zip((1, 2), values):
                    rows.append({"intermediate_task": itask, "budget": budget, "seed": seed, "target_task": task,
                                 "language": lang, "metric": metric, "value": float(value)})
    return rows


def without(rows, **match):
    return [r for r in rows if not all(r[k] == v for k, v in match.items())]


def row_of(summary, itask, budget):
    (row,) = [r for r in summary["rows"] if (r["intermediate_task"], r["budget"]) == (itask, budget)]
    return row


# Hand arithmetic: seed means first, then the mean over languages; QA per language is (EM + F1) / 2.
HAND = {
    ("mnli", 0): {
        "xnli": ((80 + 82) / 2 + (60 + 62) / 2 + (70 + 74) / 2) / 3,                   # 71.333
        "xquad": (((60 + 62) / 2 + (70 + 74) / 2) / 2 + ((40 + 44) / 2 + (50 + 56) / 2) / 2) / 2,  # 57.0
        "low": (60 + 62) / 2,                                                           # sw only
        "high": ((70 + 74) / 2 + ((40 + 44) / 2 + (50 + 56) / 2) / 2) / 2,              # de (xnli, xquad)
    },
    ("mnli", 100): {
        "xnli": ((84 + 86) / 2 + (66 + 68) / 2 + (76 + 78) / 2) / 3,                    # 76.333
        "xquad": (((62 + 64) / 2 + (72 + 76) / 2) / 2 + ((42 + 46) / 2 + (54 + 58) / 2) / 2) / 2,  # 59.25
        "low": (66 + 68) / 2,
        "high": ((76 + 78) / 2 + ((42 + 46) / 2 + (54 + 58) / 2) / 2) / 2,
    },
    ("squad", 100): {
        "xnli": ((81 + 83) / 2 + (61 + 65) / 2 + (71 + 73) / 2) / 3,                    # 72.333
        "xquad": (((70 + 72) / 2 + (80 + 84) / 2) / 2 + ((50 + 52) / 2 + (60 + 64) / 2) / 2) / 2,  # 66.5
        "low": (61 + 65) / 2,
        "high": ((71 + 73) / 2 + ((50 + 52) / 2 + (60 + 64) / 2) / 2) / 2,
    },
}
HAND[("squad", 0)] = HAND[("mnli", 0)]


def test_hand_computed_sweep():
    summary = summarize(sweep_rows(), None, LOW)
    assert summary["low_resource"] == {"name": "panx-1k", "languages": ["jv", "kk", "my", "sw", "te", "yo"],
                                       "criterion": LOW.criterion}
    assert [(r["intermediate_task"], r["budget"]) for r in summary["rows"]] == [
        ("mnli", 0), ("mnli", 100), ("squad", 0), ("squad", 100)]
    assert HAND[("mnli", 0)]["xquad"] == 57.0 and HAND[("squad", 100)]["xquad"] == 66.5  # the arithmetic itself
    for row in summary["rows"]:
        hand = HAND[(row["intermediate_task"], row["budget"])]
        assert list(row["tasks"]) == ["xnli", "xquad"]  # XTREME's task order
        assert row["tasks"]["xnli"] == pytest.approx(hand["xnli"])
        assert row["tasks"]["xquad"] == pytest.approx(hand["xquad"])
        assert row["low_resource"] == pytest.approx(hand["low"])
        assert row["high_resource"] == pytest.approx(hand["high"])
        assert row["overall"] == pytest.approx((hand["xnli"] + hand["xquad"]) / 2)
        assert row["seeds"] == [1, 2] and row["n_seeds"] == 2 and row["missing"] == []


def test_qa_score_is_mean_em_plus_mean_f1_over_two():
    row = row_of(summarize(sweep_rows(), None, LOW), "mnli", 100)
    mean_em = ((62 + 64) / 2 + (42 + 46) / 2) / 2
    mean_f1 = ((72 + 76) / 2 + (54 + 58) / 2) / 2
    assert row["tasks"]["xquad"] == pytest.approx((mean_em + mean_f1) / 2)


def test_explicit_expected_cells_give_the_same_summary():
    cells = [Cell(t, b, s, task, lang) for t in ("mnli", "squad") for b in (0, 100) for s in (1, 2)
             for task, lang in (("xnli", "en"), ("xnli", "sw"), ("xnli", "de"), ("xquad", "en"), ("xquad", "de"))]
    assert summarize(sweep_rows(), cells, LOW) == summarize(sweep_rows(), None, LOW)


def test_english_is_left_out_of_high_resource():
    rows = sweep_rows()
    for r in rows:
        if r["language"] == "en":
            r["value"] = 0.0 if r["budget"] == 0 else 100.0  # would swing a high-resource mean that counted en
    summary = summarize(rows, None, LOW)
    for key, hand in HAND.items():
        row = row_of(summary, *key)
        assert row["high_resource"] == pytest.approx(hand["high"])
        assert row["low_resource"] == pytest.approx(hand["low"])
        assert row["tasks"]["xnli"] != pytest.approx(hand["xnli"])  # English does count in the task score


@pytest.mark.parametrize("lang, voided, kept", [
    ("de", ("high_resource",), ("low_resource",)),
    ("sw", ("low_resource",), ("high_resource",)),
])
def test_a_missing_seed_voids_every_average_it_feeds(lang, voided, kept):
    rows = without(sweep_rows(), intermediate_task="mnli", budget=100, seed=2, target_task="xnli", language=lang)
    summary = summarize(rows, None, LOW)
    row = row_of(summary, "mnli", 100)
    assert row["tasks"]["xnli"] is None  # never the mean of the seed that is there
    assert row["tasks"]["xquad"] == pytest.approx(HAND[("mnli", 100)]["xquad"])
    assert row["overall"] is None
    for key in voided:
        assert row[key] is None
    for key in kept:
        assert row[key] is not None
    assert row["missing"] == [f"xnli/{lang}/seed=2"]
    assert row["seeds"] == [1, 2] and row["n_seeds"] == 2
    for other in (("mnli", 0), ("squad", 0), ("squad", 100)):  # the other rows are untouched
        assert row_of(summary, *other)["overall"] is not None and row_of(summary, *other)["missing"] == []


def test_a_missing_qa_metric_makes_the_cell_missing():
    rows = without(sweep_rows(), intermediate_task="squad", budget=100, seed=1, target_task="xquad", language="de",
                   metric="f1")
    row = row_of(summarize(rows, None, LOW), "squad", 100)
    assert row["tasks"]["xquad"] is None and row["high_resource"] is None and row["overall"] is None
    assert row["tasks"]["xnli"] == pytest.approx(HAND[("squad", 100)]["xnli"])
    assert row["missing"] == ["xquad/de/seed=1"]


def test_an_expected_seed_with_no_rows_is_missing_everywhere():
    cells = [Cell("mnli", 100, s, task, lang) for s in (1, 2, 3)
             for task, lang in (("xnli", "en"), ("xnli", "sw"), ("xnli", "de"), ("xquad", "en"), ("xquad", "de"))]
    rows = [r for r in sweep_rows() if (r["intermediate_task"], r["budget"]) == ("mnli", 100)]
    (row,) = summarize(rows, cells, LOW)["rows"]
    assert row["seeds"] == [1, 2, 3] and row["n_seeds"] == 3
    assert row["missing"] == sorted(["xnli/en/seed=3", "xnli/sw/seed=3", "xnli/de/seed=3", "xquad/en/seed=3",
                                     "xquad/de/seed=3"])
    assert all(row[k] is None for k in ("low_resource", "high_resource", "overall"))
    assert row["tasks"] == {"xnli": None, "xquad": None}


def test_a_whole_missing_seed_is_found_without_expected_cells():
    rows = without(sweep_rows(), intermediate_task="squad", budget=0, seed=2)
    rows = without(rows, intermediate_task="mnli", budget=0, seed=2)
    summary = summarize(rows, None, LOW)
    for itask in ("mnli", "squad"):
        row = row_of(summary, itask, 0)
        assert row["seeds"] == [1, 2] and len(row["missing"]) == 5 and row["overall"] is None
        assert row_of(summary, itask, 100)["missing"] == []


def test_rows_outside_the_expected_cells_are_an_error():
    cells = [Cell("mnli", 0, s, "xnli", lang) for s in (1, 2) for lang in ("en", "sw", "de")]
    rows = [r for r in sweep_rows() if (r["intermediate_task"], r["budget"]) == ("mnli", 0)]
    with pytest.raises(XferError, match=r"xquad/de/seed=1 is not an expected cell"):
        summarize(rows, cells, LOW)


def test_a_baseline_that_differs_between_intermediate_tasks_is_an_error():
    rows = sweep_rows()
    for r in rows:
        if (r["intermediate_task"], r["budget"], r["seed"], r["language"], r["target_task"]) == (
                "squad", 0, 1, "sw", "xnli"):
            r["value"] = 61.0
    with pytest.raises(XferError, match=r"budget-0 baseline xnli/sw/seed=1 accuracy"):
        summarize(rows, None, LOW)


@pytest.mark.parametrize("change, message", [
    ({"metric": "f1", "target_task": "xnli"}, r"'f1' is not a metric of xnli"),
    ({"target_task": "glue"}, r"unknown task 'glue'"),
    ({"language": "xx"}, r"'xx' is not a language of xnli"),
    ({"value": 101.0}, r"not a percentage"),
    ({"value": float("nan")}, r"not a percentage"),
    ({"budget": "ten"}, r"'budget': 'ten' is not an integer"),
    ({"extra": 1}, r"unknown column 'extra'"),
])
def test_summarize_rejects_bad_rows(change, message):
    rows = sweep_rows()
    rows[0] = {**rows[0], **change}
    with pytest.raises(XferError, match=message):
        summarize(rows, None, LOW)


def test_english_cannot_be_low_resource():
    with pytest.raises(XferError, match="training language"):
        LowResourceSet("custom", frozenset({"en", "sw"}), "languages listed in the config")


# ---------------------------------------------------------------------------------------------- CSV


def test_csv_round_trip_is_exact_and_deterministic(tmp_path):
    rows = sweep_rows()
    rows[0]["value"] = 100 / 3  # a float that needs every digit
    rows.append({**rows[1], "budget": 20})  # budgets sort as numbers: 0, 20, 100
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    write_results_csv(rows, a)
    shuffled = rows[:]
    random.Random(0).shuffle(shuffled)
    write_results_csv(shuffled, b)
    assert a.read_bytes() == b.read_bytes()
    lines = a.read_text().splitlines()
    assert lines[0] == "intermediate_task,budget,seed,target_task,language,metric,value"
    assert len(lines) == len(rows) + 1
    back = read_results_csv(a)
    key = report._sort_key
    assert sorted(rows, key=key) == back  # types and values come back exactly, in sorted order
    assert isinstance(back[0]["budget"], int) and isinstance(back[0]["value"], float)
    assert [r["budget"] for r in back if r["intermediate_task"] == "mnli"] == sorted(
        r["budget"] for r in rows if r["intermediate_task"] == "mnli")


HEADER = "intermediate_task,budget,seed,target_task,language,metric,value\n"
GOOD = "mnli,100,1,xnli,sw,accuracy,66.0\n"


@pytest.mark.parametrize("text, line, message", [
    (HEADER + GOOD + "mnli,100,2,xnli,sw,accuracy,abc\n", 3, "column 'value': 'abc' is not a number"),
    ("intermediate_task,budget,seed,target_task,language,metric,value,note\n" + GOOD, 1, "unknown column 'note'"),
    ("intermediate_task,budget,seed,target_task,language,value\n", 1, "column 'metric' appears 0 times"),
    (HEADER + "mnli,1.5,1,xnli,sw,accuracy,66.0\n", 2, "column 'budget': '1.5' is not an integer"),
    (HEADER + GOOD + GOOD, 3, "duplicate result for mnli/100/1/xnli/sw/accuracy (first on line 2)"),
    (HEADER + "mnli,100,1,xnli,sw,exact_match,66.0\n", 2, "column 'metric': 'exact_match' is not a metric of xnli"),
    (HEADER + "mnli,100,1,ner,sw,f1,66.0\n", 2, "column 'target_task': unknown task 'ner'"),
    (HEADER + "mnli,100,1,xnli,sw,accuracy\n", 2, "6 fields, expected 7"),
    (HEADER + "mnli,100,1,xnli,sw,accuracy,0.66e3\n", 2, "not a percentage"),
])
def test_csv_errors_name_the_file_and_line(tmp_path, text, line, message):
    path = tmp_path / "results.csv"
    path.write_text(text)
    with pytest.raises(XferError) as info:
        read_results_csv(path)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(f"{path}:{line}: ")
    assert message in text


def test_csv_missing_or_empty_file(tmp_path):
    with pytest.raises(XferError, match="cannot read"):
        read_results_csv(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(XferError, match="empty file"):
        read_results_csv(tmp_path / "empty.csv")


# ------------------------------------------------------------------------------------------- report


def test_write_report_writes_the_four_files(tmp_path):
    out = tmp_path / "report"
    summary = write_report(sweep_rows(), None, LOW, out, title="test sweep")
    assert sorted(p.name for p in out.iterdir()) == ["plot.png", "results.csv", "summary.json", "summary.md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no temporary folder left behind
    assert (out / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == summary and list(on_disk) == ["title", "low_resource", "rows"]
    assert on_disk["title"] == "test sweep"
    assert on_disk["rows"][0]["tasks"]["xnli"] == summary["rows"][0]["tasks"]["xnli"]  # not rounded
    assert read_results_csv(out / "results.csv") == sorted(sweep_rows(), key=report._sort_key)
    md = (out / "summary.md").read_text()
    assert md.startswith("# test sweep\n")
    assert "at most 1,000 sentences: jv, kk, my, sw, te, yo" in md
    assert "| intermediate task | budget | xnli | xquad | low-res | high-res | overall |" in md
    assert "| mnli | 100 | 76.3 | 59.2 | 67.0 | 63.5 | 67.8 |" in md  # 59.25 -> 59.2 (round half even)
    assert "## Missing cells\n\nNone." in md and "plot.png" in md


def test_report_with_missing_cells(tmp_path):
    rows = without(sweep_rows(), intermediate_task="mnli", budget=100, seed=2, target_task="xnli", language="sw")
    summary = write_report(rows, None, LOW, tmp_path / "r", title="t")
    md = (tmp_path / "r" / "summary.md").read_text()
    assert "| mnli | 100 | — | 59.2 | — | 63.5 | — |" in md
    assert "- mnli @ 100: xnli/sw/seed=2" in md
    fig = report.figure(summary)
    texts = [t.get_text() for t in fig.findobj(Text)]
    assert any(t.startswith("note: 1 missing") for t in texts)  # the one None point (mnli@100 low-res)
    complete = report.figure(summarize(sweep_rows(), None, LOW))
    assert not any("missing" in t.get_text() for t in complete.findobj(Text))
    table = report.format_table(summary)
    assert "overall" in table and "76.3" not in table and "72.3" in table and "—" in table
    assert "1 missing" in table


def test_format_table_reads_a_summary_json(tmp_path):
    write_report(sweep_rows(), None, LOW, tmp_path, title="from disk")
    table = report.format_table(json.loads((tmp_path / "summary.json").read_text()))
    assert "from disk" in table and "71.3" in table and "66.5" in table and "low-res" in table


def test_a_failed_write_leaves_no_report_files(tmp_path, monkeypatch):
    def broken(summary, path):
        path.write_bytes(b"\x89PNG half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(report, "render_plot", broken)
    out = tmp_path / "report"
    with pytest.raises(RuntimeError, match="disk full"):
        write_report(sweep_rows(), None, LOW, out, title="t")
    assert not any((out / name).exists() for name in report.REPORT_FILES)
    assert list(out.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_a_failed_rewrite_keeps_the_previous_report(tmp_path, monkeypatch):
    out = tmp_path / "report"
    write_report(sweep_rows(), None, LOW, out, title="first")
    before = {name: (out / name).read_bytes() for name in report.REPORT_FILES}
    monkeypatch.setattr(report, "render_plot", lambda summary, path: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        write_report(sweep_rows()[:10], None, LOW, out, title="second")
    assert {name: (out / name).read_bytes() for name in report.REPORT_FILES} == before


def test_bad_rows_write_nothing(tmp_path):
    rows = sweep_rows()
    rows[3]["value"] = -1.0
    with pytest.raises(XferError, match="result row 4: column 'value'"):
        write_report(rows, None, LOW, tmp_path / "report", title="t")
    assert not (tmp_path / "report").exists()
