"""The sweep report: XTREME-style averages checked by hand arithmetic, missing cells that void every average
they feed, English kept out of the high-resource average, results.csv round trip and errors, and all-or-none
report files."""

from __future__ import annotations

import itertools
import json
import random
import statistics

import pytest
from matplotlib.collections import PolyCollection
from matplotlib.text import Text

from xfer import report
from xfer.errors import XferError
from xfer.report import Cell, LowResourceSet, read_results_csv, summarize, write_report, write_results_csv

LOW = LowResourceSet("panx-1k", frozenset({"jv", "kk", "my", "sw", "te", "yo"}),
                     "languages whose PAN-X training set has at most 1,000 sentences", "PAN-X training-set sizes")

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
                                       "criterion": LOW.criterion, "source": "PAN-X training-set sizes"}
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
        summarize(rows, None, LOW, shared_baseline=("mnli", "squad"))  # a sweep's: one shared run
    # rows outside the sweep's shared baseline are systems of their own: each keeps its budget-0 numbers
    summary = summarize(rows, None, LOW, shared_baseline=("mnli",))
    assert row_of(summary, "squad", 0)["tasks"]["xnli"] == pytest.approx(HAND[("squad", 0)]["xnli"] + 0.5 / 3)
    assert row_of(summary, "mnli", 0)["tasks"]["xnli"] == pytest.approx(HAND[("mnli", 0)]["xnli"])


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
        LowResourceSet("explicit list", frozenset({"en", "sw"}), "languages listed in the config", "explicit list")


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


def test_write_report_writes_the_four_files_and_the_figures(tmp_path):
    out = tmp_path / "report"
    summary = write_report(sweep_rows(), None, LOW, out, title="test sweep")
    assert sorted(p.name for p in out.iterdir()) == ["heatmap-mnli.png", "heatmap-squad.png", "plot.png",
                                                     "results.csv", "scatter.png", "summary.json", "summary.md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no temporary folder left behind
    assert (out / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == summary and list(on_disk) == ["title", "low_resource", "statistics", "rows", "paired"]
    assert on_disk["title"] == "test sweep"
    assert on_disk["rows"][0]["tasks"]["xnli"] == summary["rows"][0]["tasks"]["xnli"]  # not rounded
    assert read_results_csv(out / "results.csv") == sorted(sweep_rows(), key=report._sort_key)
    md = (out / "summary.md").read_text()
    assert md.startswith("# test sweep\n")
    assert "at most 1,000 sentences: jv, kk, my, sw, te, yo" in md
    assert "| intermediate task | budget | xnli | xquad | low-res | high-res | overall |" in md
    # mean ± sample std over the two seeds' own averages; 59.25 -> 59.2 (round half even)
    # xnli 75.33, 77.33; xquad 57.5, 61; low 66, 68; high 62, 65; overall 66.42, 69.17
    assert "| mnli | 100 | 76.3 ± 1.4 | 59.2 ± 2.5 | 67.0 ± 1.4 | 63.5 ± 2.1 | 67.8 ± 1.9 |" in md
    assert "## Missing cells\n\nNone." in md and "plot.png" in md


def test_report_with_missing_cells(tmp_path):
    rows = without(sweep_rows(), intermediate_task="mnli", budget=100, seed=2, target_task="xnli", language="sw")
    summary = write_report(rows, None, LOW, tmp_path / "r", title="t")
    md = (tmp_path / "r" / "summary.md").read_text()
    assert "| mnli | 100 | — | 59.2 ± 2.5 | — | 63.5 ± 2.1 | — |" in md
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


# ------------------------------------------------------------------------------------ seeds statistics


def test_seed_statistics_are_over_each_seeds_own_averages():
    row = row_of(summarize(sweep_rows(), None, LOW), "mnli", 100)
    per_seed = {1: {"xnli": (84 + 66 + 76) / 3, "xquad": ((62 + 72) / 2 + (42 + 54) / 2) / 2},
                2: {"xnli": (86 + 68 + 78) / 3, "xquad": ((64 + 76) / 2 + (46 + 58) / 2) / 2}}
    assert [ps["seed"] for ps in row["per_seed"]] == [1, 2]
    for ps in row["per_seed"]:
        assert ps["tasks"] == pytest.approx(per_seed[ps["seed"]])
        assert ps["overall"] == pytest.approx(sum(per_seed[ps["seed"]].values()) / 2)
    # two values a, b: sample std |a - b| / sqrt(2); the bootstrap means are a, (a+b)/2, b with probabilities
    # 1/4, 1/2, 1/4, so the 2.5% and 97.5% percentiles are a and b
    a, b = per_seed[1]["xnli"], per_seed[2]["xnli"]
    assert row["std"]["tasks"]["xnli"] == pytest.approx(abs(a - b) / 2 ** 0.5)
    assert row["ci95"]["tasks"]["xnli"] == pytest.approx([a, b])
    assert row["std"]["low_resource"] == pytest.approx(2 / 2 ** 0.5)  # sw: 66, 68
    assert row["ci95"]["high_resource"] == pytest.approx([62.0, 65.0])
    cell = next(c for c in row["cells"] if (c["target_task"], c["language"]) == ("xquad", "de"))
    assert cell["per_seed"] == [(42 + 54) / 2, (46 + 58) / 2] and cell["mean"] == 50.0
    assert cell["ci95"] == pytest.approx([48.0, 52.0])


def test_bootstrap_interval_matches_the_exact_bootstrap_distribution():
    """Four seeds: all 4^4 resamples are equally likely; their exact 2.5% and 97.5% quantiles, against the
    report's 10,000 random resamples (a Monte Carlo error of a few tenths at most)."""
    values = [60.0, 62.0, 64.0, 70.0]
    means = sorted(sum(values[i] for i in idx) / 4 for idx in itertools.product(range(4), repeat=4))
    exact = (means[int(0.025 * 256)], means[int(0.975 * 256)])   # 6th and 249th of 256
    mean, std, (low, high) = report.seed_statistics(values)
    assert mean == 64.0 and std == pytest.approx(statistics.stdev(values))
    assert low == pytest.approx(exact[0], abs=0.6) and high == pytest.approx(exact[1], abs=0.6)
    assert report.seed_statistics(values) == (mean, std, [low, high])  # fixed RNG seed: reproducible


def test_one_seed_has_no_spread_and_says_so(tmp_path):
    rows = [r for r in sweep_rows() if r["seed"] == 1]
    summary = write_report(rows, None, LOW, tmp_path, title="t")
    for row in summary["rows"]:
        assert row["n_seeds"] == 1 and row["std"]["overall"] is None and row["ci95"]["overall"] is None
        assert row["std"]["tasks"] == {"xnli": None, "xquad": None}
    md = (tmp_path / "summary.md").read_text()
    assert "A row with one seed has no standard deviation or interval." in md
    assert "±" not in md and "intervals over seeds\n" not in md
    assert "| mnli | 100 | 75.3 | 57.5 | 66.0 | 62.0 | 66.4 |" in md
    assert not report.figure(summary).findobj(PolyCollection)  # no interval band to draw


def test_the_plot_draws_the_interval_as_a_band():
    fig = report.figure(summarize(sweep_rows(), None, LOW))
    bands = fig.findobj(PolyCollection)
    assert len(bands) == 4  # 2 panels x 2 intermediate tasks
    texts = [t.get_text() for t in fig.findobj(Text)]
    assert any("95% bootstrap interval over seeds" in t for t in texts)


def test_interval_table_in_markdown(tmp_path):
    write_report(sweep_rows(), None, LOW, tmp_path, title="t")
    md = (tmp_path / "summary.md").read_text()
    assert "## 95% intervals over seeds" in md
    assert "| mnli | 100 | [75.3, 77.3] | [57.5, 61.0] | [66.0, 68.0] | [62.0, 65.0] | [66.4, 69.2] |" in md
    assert "each seed's averages are computed first" in md


# ----------------------------------------------------------------------------------- headline averages


def _task_rows(itask: str, scores: dict[str, float], seed: int = 0) -> list[dict]:
    rows = []
    for task, value in scores.items():
        for metric in report.TASK_METRICS[task]:
            rows.append({"intermediate_task": itask, "budget": 0, "seed": seed, "target_task": task,
                         "language": "avg", "metric": metric, "value": value})
    return rows


def test_headline_averages_in_every_row(tmp_path):
    summary = write_report(sweep_rows(), None, LOW, tmp_path, title="t")
    row = row_of(summary, "squad", 100)
    assert row["avg_over_tasks"] is None and row["avg_over_categories"] is None  # 2 of 9 tasks
    partial = row["partial"]["avg_over_tasks"]
    assert partial["value"] == pytest.approx((HAND[("squad", 100)]["xnli"] + HAND[("squad", 100)]["xquad"]) / 2)
    assert partial["label"] == ("partial (2 of 9 tasks; missing: pawsx, udpos, panx, mlqa, tydiqa, bucc2018, "
                                "tatoeba)")
    assert "avg_over_categories" not in row["partial"]  # no category is complete
    md = (tmp_path / "summary.md").read_text()
    assert "## XTREME headline averages" in md and "XTREME's `all_task`" in md and "leaderboard's \"Avg\"" in md
    assert "| squad | 100 | 69.4 ± 2.0 partial (2 of 9 tasks; missing: pawsx, udpos, panx, mlqa, tydiqa, " \
           "bucc2018, tatoeba) | — |" in md


def test_all_nine_tasks_give_complete_headlines():
    scores = {"xnli": 80.0, "pawsx": 90.0, "udpos": 70.0, "panx": 60.0, "xquad": 50.0, "mlqa": 40.0,
              "tydiqa": 30.0, "bucc2018": 20.0, "tatoeba": 10.0}
    (row,) = summarize(_task_rows("published", scores), None, LOW)["rows"]
    assert row["avg_over_tasks"] == pytest.approx(450 / 9)
    assert row["avg_over_categories"] == pytest.approx((85 + 65 + 40 + 15) / 4)
    assert row["partial"] == {} and row["headline_missing"] == []
    assert row["overall"] == pytest.approx(450 / 9)


# ------------------------------------------------------------------------- hand-written task averages


def test_avg_rows_count_for_tasks_and_headlines_but_not_low_high():
    rows = _task_rows("published", {"xnli": 79.2, "xquad": 60.0})
    rows[-1]["value"] = 76.0  # xquad f1; em 60
    (row,) = summarize(rows, None, LOW)["rows"]
    assert row["tasks"] == {"xnli": 79.2, "xquad": 68.0} and row["missing"] == []
    assert row["low_resource"] is None and row["high_resource"] is None
    assert row["not_computed"]["low_resource"].startswith("xnli, xquad given only as the task's average")
    assert row["partial"]["avg_over_tasks"]["value"] == pytest.approx((79.2 + 68.0) / 2)
    assert row["task_languages"] == {"xnli": ["avg"], "xquad": ["avg"]}


def test_avg_rows_beside_per_language_rows_of_another_row(tmp_path):
    """A sweep row scores xnli per language, a published row gives it as `avg`: both are complete."""
    sweep = [r for r in sweep_rows() if r["target_task"] == "xnli" and (r["intermediate_task"], r["budget"],
                                                                          r["seed"]) == ("mnli", 100, 1)]
    published = [{**r, "seed": 1} for r in _task_rows("published", {"xnli": 79.2})]
    summary = write_report(sweep + published, None, LOW, tmp_path, title="t")
    assert row_of(summary, "published", 0)["tasks"]["xnli"] == 79.2
    assert row_of(summary, "published", 0)["missing"] == []
    row = row_of(summary, "mnli", 100)
    assert row["tasks"]["xnli"] == pytest.approx((84 + 66 + 76) / 3) and row["low_resource"] == 66.0
    assert row["missing"] == [] and row["not_computed"] == {}
    md = (tmp_path / "summary.md").read_text()
    assert "- xnli (mnli@100): 3 language(s): de en sw" in md
    assert "- xnli (published@0): the published average over XTREME's 15 languages (language `avg`)" in md
    # without expected cells every row needs every seed seen: a published seed 0 beside sweep seed 1 is missing
    # seed 1 there (and the sweep seed 0), as for any rows; give expected cells (a sweep config) to avoid it
    (row,) = [r for r in summarize(sweep + _task_rows("published", {"xnli": 79.2}), None, LOW)["rows"]
              if r["intermediate_task"] == "published"]
    assert row["missing"] == ["xnli/avg/seed=1"]


def test_a_task_only_others_give_as_avg_is_missing_as_avg():
    rows = _task_rows("published", {"xnli": 79.2, "panx": 65.4}) + [
        r for r in sweep_rows() if r["target_task"] == "xnli" and (r["intermediate_task"], r["budget"], r["seed"])
        == ("mnli", 100, 1)]
    rows = [{**r, "seed": 1} for r in rows]
    summary = summarize(rows, None, LOW)
    sweep = row_of(summary, "mnli", 100)
    assert sweep["missing"] == ["panx/avg/seed=1"] and sweep["overall"] is None
    assert sweep["low_resource"] == 66.0  # an `avg` cell never feeds the low/high averages


def test_mixing_avg_and_per_language_rows_is_an_error(tmp_path):
    rows = _task_rows("published", {"xnli": 79.2}) + [
        {"intermediate_task": "published", "budget": 0, "seed": 1, "target_task": "xnli", "language": "de",
         "metric": "accuracy", "value": 80.0}]
    with pytest.raises(XferError, match=r"published@0 xnli: both language 'avg' .* and per-language rows"):
        summarize(rows, None, LOW)
    path = tmp_path / "mixed.csv"
    path.write_text(HEADER + "published,0,0,xnli,avg,accuracy,79.2\npublished,0,0,xnli,de,accuracy,80.0\n")
    with pytest.raises(XferError, match=rf"^{path}:3: published@0 xnli: both language 'avg'"):
        read_results_csv(path)


def test_avg_round_trips_through_csv(tmp_path):
    rows = _task_rows("published", {"xnli": 79.2, "mlqa": 53.2})
    write_results_csv(rows, tmp_path / "r.csv")
    assert read_results_csv(tmp_path / "r.csv") == sorted(rows, key=report._sort_key)


# -------------------------------------------------------------------------------------- low-resource


def test_presets_state_criterion_and_source(tmp_path):
    one, five = report.low_resource_set("panx-1k"), report.low_resource_set("panx-5k")
    assert one.languages == {"jv", "kk", "my", "sw", "te", "yo"}
    assert five.languages == one.languages | {"af", "hi", "mr"}
    source = "PAN-X training-set sizes, Rahimi et al. 2019 splits, as in google/xtreme dataset info"
    assert one.source == five.source == source
    summary = write_report(sweep_rows(), None, five, tmp_path, title="t")
    assert summary["low_resource"]["source"] == source and "5,000" in summary["low_resource"]["criterion"]
    md = (tmp_path / "summary.md").read_text()
    assert f"(preset `panx-5k`; source: {source})" in md
    assert "at most 5,000 sentences: af, hi, jv, kk, mr, my, sw, te, yo" in md
    assert "except English, the training language" in md


def test_an_explicit_list_is_labelled_and_english_stays_out_of_high(tmp_path):
    low = report.low_resource_set(["de"], listed_in="the config")
    assert (low.name, low.source, low.criterion) == ("explicit list", "explicit list", "languages listed in the config")
    summary = write_report(sweep_rows(), None, low, tmp_path, title="t")
    row = row_of(summary, "mnli", 100)
    # low: de in xnli and xquad; high: sw only (en excluded)
    assert row["low_resource"] == pytest.approx(((76 + 78) / 2 + ((42 + 46) / 2 + (54 + 58) / 2) / 2) / 2)
    assert row["high_resource"] == pytest.approx((66 + 68) / 2)
    assert "Low-resource languages (an explicit list): languages listed in the config: de;" in (
        tmp_path / "summary.md").read_text()
    with pytest.raises(XferError, match="unknown low-resource preset 'panx-2k'"):
        report.low_resource_set("panx-2k")


# ------------------------------------------------------------------------------------ oracle section


def test_oracle_rows_are_reported_separately_and_labelled(tmp_path):
    rows = sweep_rows()
    oracle = [{**r, "value": min(100.0, r["value"] + 2)} for r in rows]  # every score 2 points higher
    summary = write_report(rows, None, LOW, tmp_path, title="t", oracle_rows=oracle,
                           default_selection_used={"no target-language dev set": ["xquad/de", "xquad/en"]})
    assert read_results_csv(tmp_path / "results.csv") == sorted(rows, key=report._sort_key)
    assert read_results_csv(tmp_path / "results_oracle.csv") == sorted(oracle, key=report._sort_key)
    section = summary["oracle"]
    assert section["label"] == report.ORACLE_LABEL and section["file"] == "results_oracle.csv"
    for row, orow in zip(summary["rows"], section["rows"]):
        assert orow["overall"] == pytest.approx(row["overall"] + 2)
        assert orow["std"]["overall"] == pytest.approx(row["std"]["overall"])
    md = (tmp_path / "summary.md").read_text()
    assert "## Oracle selection" in md and "### XTREME headline averages" in md
    assert "- no target-language dev set: xquad/de, xquad/en" in md
    assert md.index("## Oracle selection") > md.index("## Missing cells")
    # a later report without an oracle section leaves no stale oracle file behind
    write_report(rows, None, LOW, tmp_path, title="t")
    assert not (tmp_path / "results_oracle.csv").exists()
