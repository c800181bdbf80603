"""The paired bootstrap against the budget-0 baseline (xfer/report/paired.py), on synthetic per-example scores:
identical runs give exactly [0, 0]; the intervals agree with scipy.stats.bootstrap (paired, vectorised) and
with the exact bootstrap distribution of a tiny case within Monte Carlo error; F1 is recomputed per resample;
averages resample each task and language on its own; seeds are resampled jointly; the p-value's definition;
cells without usable per-example scores keep their difference and say why; the dose-response; the `report:`
config section."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from xfer import example_scores as E
from xfer.config import parse
from xfer.errors import XferError
from xfer.report import Bootstrap, Cell, LowResourceSet, summarize
from xfer.report.paired import FROM_TABLE, NO_EXAMPLES, paired_section
from xfer.report.table import cell_values
from xfer.xtreme import TASK_METRICS

LOW = LowResourceSet("panx-1k", frozenset({"jv", "kk", "my", "sw", "te", "yo"}),
                     "languages whose PAN-X training set has at most 1,000 sentences", "PAN-X training-set sizes")
N = 300
KIND = {"xnli": "accuracy", "tatoeba": "accuracy", "panx": "tagging", "udpos": "tagging", "xquad": "qa",
        "mlqa": "qa", "bucc2018": "pairs"}


def synthetic(task: str, lang: str, rng, quality: float, n: int = N, ids: str = "same") -> E.ExampleScores:
    """Per-example scores of one run: `quality` in [0, 1] raises every metric."""
    kind = KIND[task]
    if kind == "accuracy":
        arrays = {"correct": (rng.random(n) < quality).astype(np.uint8)}
    elif kind == "qa":
        em = (rng.random(n) < quality).astype(float)
        arrays = {"exact_match": em, "f1": np.where(em == 1, 1.0, rng.random(n) * quality)}
    elif kind == "pairs":
        predicted = (rng.random(n) < 0.9).astype(np.int32)
        arrays = {"true_positives": predicted * (rng.random(n) < quality), "predicted": predicted,
                  "gold": np.ones(n, np.int32)}
    else:
        gold = rng.poisson(2, n).astype(np.int32)
        predicted = np.maximum(0, gold + rng.integers(-1, 2, n)).astype(np.int32)
        tp = rng.binomial(np.minimum(gold, predicted), quality).astype(np.int32)
        tokens = rng.integers(5, 15, n).astype(np.int32)
        arrays = {"true_positives": tp, "predicted": predicted, "gold": gold,
                  "tokens_correct": rng.binomial(tokens, quality).astype(np.int32), "tokens": tokens}
    arrays = {k: np.asarray(v, dtype=np.uint8 if k == "correct" else (np.float64 if kind == "qa" else np.int32))
              for k, v in arrays.items()}
    names = {"accuracy": ("accuracy",), "qa": ("exact_match", "f1"), "pairs": ("precision", "recall", "f1"),
             "tagging": ("f1", "token_accuracy")}[kind]
    return E.ExampleScores(task, lang, kind, names, arrays, f"{task}/{lang}/{ids}")


class Sweep:
    """Result rows and per-example scores of synthetic runs, kept consistent (rows = the scores' metrics)."""

    def __init__(self):
        self.rows, self.scores = [], {}

    def add(self, itask, budget, seed, scores: E.ExampleScores):
        cell = Cell(itask, budget, seed, scores.task, scores.language)
        self.scores[cell] = scores
        values = E.metrics(scores)
        self.rows += [{"intermediate_task": itask, "budget": budget, "seed": seed, "target_task": scores.task,
                       "language": scores.language, "metric": m, "value": values[m]} for m in TASK_METRICS[scores.task]]

    def paired(self, boot=Bootstrap(2000, 0), scores_of="own"):
        summary = summarize(self.rows, None, LOW)
        if scores_of == "own":
            scores_of = self.scores.__getitem__
        return summary, paired_section(summary, cell_values(self.rows), scores_of, LOW, boot)


PAIRS = [("xnli", "de"), ("xnli", "sw"), ("panx", "sw"), ("panx", "en"), ("xquad", "de"), ("bucc2018", "de")]


def every_stat(row: dict):
    yield from row["cells"]
    yield from row["tasks"].values()
    yield from row["languages"].values()
    for key in ("low_resource", "high_resource", "overall", "avg_over_tasks", "avg_over_categories"):
        yield row[key]


def test_identical_runs_give_exactly_zero_everywhere():
    sweep, rng = Sweep(), np.random.default_rng(0)
    base = {pair: synthetic(*pair, rng, 0.6) for pair in PAIRS}
    for budget in (0, 10, 100):
        for scores in base.values():
            sweep.add("mnli", budget, 1, scores)
    _, paired = sweep.paired()
    stats_seen = 0
    for row in paired["rows"]:
        assert row["unavailable"] == {}
        for stat in every_stat(row):
            if stat["delta"] is None:  # avg over categories: no category is complete here
                continue
            assert stat["delta"] == 0.0 and stat["ci95"] == [0.0, 0.0] and stat["p_value"] == 1.0, stat
            stats_seen += 1
    assert stats_seen > 2 * (len(PAIRS) + 4)
    slopes = [e for e in paired["dose_response"]]
    assert all(e["slope"] == 0.0 and e["slope_ci95"] == [0.0, 0.0] for e in slopes)
    assert all(e["best_budget"] == 0 for e in slopes)  # no budget beats budget 0


def _accuracy_pair(n=400, seed=1):
    rng = np.random.default_rng(seed)
    base = (rng.random(n) < 0.6).astype(np.uint8)
    trained = base.copy()
    trained[rng.random(n) < 0.12] = 1
    trained[rng.random(n) < 0.05] = 0
    return base, trained


def _one_comparison(task, lang, base: E.ExampleScores, trained: E.ExampleScores, boot):
    sweep = Sweep()
    sweep.add("mnli", 0, 1, base)
    sweep.add("mnli", 100, 1, trained)
    return sweep.paired(boot)[1]["rows"][0]


def test_accuracy_interval_agrees_with_scipy_paired_bootstrap():
    base, trained = _accuracy_pair()
    mk = lambda c: E.ExampleScores("xnli", "de", "accuracy", ("accuracy",), {"correct": c}, "ids")  # noqa: E731
    row = _one_comparison("xnli", "de", mk(base), mk(trained), Bootstrap(10_000, 0))
    (cell,) = row["cells"]
    assert cell["delta"] == pytest.approx(100 * (trained.mean() - base.mean()))
    reference = stats.bootstrap((trained.astype(float), base.astype(float)),
                                lambda t, b, axis: 100 * (t.mean(axis=axis) - b.mean(axis=axis)), paired=True,
                                vectorized=True, method="percentile", n_resamples=10_000, random_state=7)
    low, high = reference.confidence_interval
    # both are Monte Carlo estimates of the same percentiles: a few tenths of a point apart at most
    assert cell["ci95"][0] == pytest.approx(low, abs=0.5) and cell["ci95"][1] == pytest.approx(high, abs=0.5)
    assert row["tasks"]["xnli"]["ci95"] == cell["ci95"]  # one language: the task is that language


def test_corpus_f1_is_recomputed_per_resample_as_scipy_does():
    rng = np.random.default_rng(2)
    base = synthetic("panx", "de", rng, 0.5)
    trained = synthetic("panx", "de", rng, 0.6)
    row = _one_comparison("panx", "de", base, trained, Bootstrap(10_000, 0))
    (cell,) = row["cells"]

    def f1(tp, predicted, gold, axis):
        tp, predicted, gold = tp.sum(axis=axis), predicted.sum(axis=axis), gold.sum(axis=axis)
        return 200 * tp / (predicted + gold)

    def statistic(tp_t, p_t, g_t, tp_b, p_b, g_b, axis):
        return f1(tp_t, p_t, g_t, axis) - f1(tp_b, p_b, g_b, axis)

    arrays = [s.arrays[k].astype(float) for s in (trained, base) for k in ("true_positives", "predicted", "gold")]
    reference = stats.bootstrap(arrays, statistic, paired=True, vectorized=True, method="percentile",
                                n_resamples=10_000, random_state=8)
    low, high = reference.confidence_interval
    assert cell["delta"] == pytest.approx(statistic(*arrays, axis=-1), abs=1e-9)
    assert cell["ci95"][0] == pytest.approx(low, abs=0.4) and cell["ci95"][1] == pytest.approx(high, abs=0.4)
    # a mean of per-sentence F1s would be another statistic: the corpus F1 is not that
    per_sentence = stats.bootstrap(arrays[:1] + arrays[3:4], lambda a, b, axis: (a - b).mean(axis=axis),
                                   paired=True, vectorized=True, n_resamples=999, random_state=0)
    assert per_sentence.confidence_interval.low != pytest.approx(low, abs=0.4)


def test_the_bootstrap_distribution_matches_the_exact_one_on_a_tiny_case():
    """Five examples: all 5^5 resamples are equally likely; the share of replicates at or below each value of
    the difference matches the exact distribution within Monte Carlo error."""
    base = np.array([1, 0, 0, 1, 0], np.uint8)
    trained = np.array([1, 1, 0, 1, 1], np.uint8)
    exact = np.array([100 * (trained[list(idx)].mean() - base[list(idx)].mean())
                      for idx in itertools.product(range(5), repeat=5)])
    mk = lambda c: E.ExampleScores("xnli", "de", "accuracy", ("accuracy",), {"correct": c}, "ids")  # noqa: E731
    boot = Bootstrap(10_000, 3)
    row = _one_comparison("xnli", "de", mk(base), mk(trained), boot)
    (cell,) = row["cells"]
    exact_low, exact_high = np.percentile(exact, [2.5, 97.5])
    # the support is 0, 20, ..., 100; P(0) = 0.6^5 = 7.8% and P(80 or more) = 8.7%: both percentiles lie well
    # inside a step of the distribution, where a Monte Carlo estimate cannot miss them
    assert (exact_low, exact_high) == (0.0, 80.0)
    assert cell["ci95"] == [exact_low, exact_high]
    share_zero = np.mean(exact <= 0)  # P(no changed example drawn) = (3/5)^5
    assert share_zero == pytest.approx(0.6 ** 5)
    expected_p = min(1.0, 2 * (1 + share_zero * boot.resamples) / (1 + boot.resamples))
    assert cell["p_value"] == pytest.approx(expected_p, abs=4 * 2 * np.sqrt(share_zero * (1 - share_zero) / 10_000))


def test_p_value_is_two_sided_from_the_bootstrap_distribution():
    base, trained = np.zeros(200, np.uint8), np.ones(200, np.uint8)
    mk = lambda c: E.ExampleScores("xnli", "de", "accuracy", ("accuracy",), {"correct": c}, "ids")  # noqa: E731
    better = _one_comparison("xnli", "de", mk(base), mk(trained), Bootstrap(1000, 0))["cells"][0]
    assert better["delta"] == 100.0 and better["ci95"] == [100.0, 100.0]
    assert better["p_value"] == pytest.approx(2 / 1001)  # no replicate at or below 0
    worse = _one_comparison("xnli", "de", mk(trained), mk(base), Bootstrap(1000, 0))["cells"][0]
    assert worse["p_value"] == better["p_value"] and worse["ci95"] == [-100.0, -100.0]


def test_averages_are_formed_inside_each_resample():
    sweep, rng = Sweep(), np.random.default_rng(4)
    for pair in PAIRS:
        sweep.add("mnli", 0, 1, synthetic(*pair, rng, 0.5))
        sweep.add("mnli", 100, 1, synthetic(*pair, rng, 0.6))
    summary, paired = sweep.paired()
    (row,) = paired["rows"]
    base, trained = (next(r for r in summary["rows"] if r["budget"] == b) for b in (0, 100))
    for key in ("low_resource", "high_resource", "overall"):
        assert row[key]["delta"] == pytest.approx(trained[key] - base[key])
    cells = {(c["target_task"], c["language"]): c for c in row["cells"]}
    # the languages are resampled independently: the average's interval is narrower than its parts' mean width
    low_parts = [cells[("xnli", "sw")], cells[("panx", "sw")]]
    width = lambda s: s["ci95"][1] - s["ci95"][0]  # noqa: E731
    assert width(row["low_resource"]) < np.mean([width(s) for s in low_parts])
    assert row["languages"]["sw"]["delta"] == pytest.approx(np.mean([s["delta"] for s in low_parts]))
    assert row["tasks"]["bucc2018"]["ci95"] == cells[("bucc2018", "de")]["ci95"]  # one language
    assert row["avg_over_tasks"]["label"].startswith("partial (4 of 9 tasks")
    assert row["avg_over_tasks"]["delta"] == pytest.approx(row["overall"]["delta"])


def test_several_seeds_are_resampled_jointly_with_the_baseline():
    sweep, rng = Sweep(), np.random.default_rng(5)
    runs = {seed: synthetic("xnli", "de", rng, 0.55) for seed in (1, 2, 3)}
    for seed, scores in runs.items():
        sweep.add("mnli", 0, seed, scores)
        sweep.add("mnli", 100, seed, scores)  # each seed identical to the baseline's same seed
    _, paired = sweep.paired()
    (row,) = paired["rows"]
    assert row["seeds"] == row["baseline_seeds"] == [1, 2, 3]
    assert row["cells"][0]["ci95"] == [0.0, 0.0]  # the same seed draw for both: exactly 0 in every replicate
    assert [s["cells"][0]["ci95"] for s in row["per_seed"]] == [[0.0, 0.0]] * 3


def test_seeds_are_resampled_too():
    """One seed gains 20 points, the other nothing: a replicate may draw either seed twice, so the interval
    reaches from about 0 to about 20; resampling examples alone would keep it near 10."""
    sweep = Sweep()
    base = np.zeros(500, np.uint8)
    base[:250] = 1
    better = base.copy()
    better[250:350] = 1
    mk = lambda c: E.ExampleScores("xnli", "de", "accuracy", ("accuracy",), {"correct": c}, "ids")  # noqa: E731
    for seed in (1, 2):
        sweep.add("mnli", 0, seed, mk(base))
    sweep.add("mnli", 100, 1, mk(better))
    sweep.add("mnli", 100, 2, mk(base))
    (row,) = sweep.paired()[1]["rows"]
    cell = row["cells"][0]
    assert cell["delta"] == pytest.approx(10.0)
    assert cell["ci95"][0] < 3.0 and cell["ci95"][1] > 17.0
    assert [s["cells"][0]["delta"] for s in row["per_seed"]] == pytest.approx([20.0, 0.0])


def test_cells_without_per_example_scores_keep_their_difference_and_say_why():
    sweep, rng = Sweep(), np.random.default_rng(6)
    for pair in PAIRS:
        sweep.add("mnli", 0, 1, synthetic(*pair, rng, 0.5))
        sweep.add("mnli", 100, 1, synthetic(*pair, rng, 0.6))
    lacking = Cell("mnli", 100, 1, "xnli", "sw")
    _, paired = sweep.paired(scores_of=lambda c: NO_EXAMPLES if c == lacking else sweep.scores[c])
    (row,) = paired["rows"]
    cells = {(c["target_task"], c["language"]): c for c in row["cells"]}
    assert cells[("xnli", "sw")]["ci95"] is None and cells[("xnli", "sw")]["reason"] == NO_EXAMPLES
    assert cells[("xnli", "sw")]["delta"] is not None
    for stat in (row["tasks"]["xnli"], row["low_resource"], row["overall"], row["languages"]["sw"]):
        assert stat["ci95"] is None and stat["reason"] == NO_EXAMPLES and stat["delta"] is not None
    assert row["tasks"]["panx"]["ci95"] is not None and row["high_resource"]["ci95"] is not None
    assert row["unavailable"] == {NO_EXAMPLES: ["xnli/sw/seed=1"]}
    # results tables have none at all
    _, table = sweep.paired(scores_of=None)
    assert all(s["ci95"] is None and s["reason"] == FROM_TABLE for s in table["rows"][0]["cells"])


def test_per_example_scores_must_reproduce_the_results_and_the_baselines_examples():
    sweep, rng = Sweep(), np.random.default_rng(7)
    sweep.add("mnli", 0, 1, synthetic("xnli", "de", rng, 0.5))
    sweep.add("mnli", 100, 1, synthetic("xnli", "de", rng, 0.6))
    sweep.add("mnli", 0, 1, synthetic("panx", "de", rng, 0.5))
    sweep.add("mnli", 100, 1, synthetic("panx", "de", rng, 0.6, ids="other examples"))
    stale = Cell("mnli", 100, 1, "xnli", "de")
    other = synthetic("xnli", "de", np.random.default_rng(99), 0.2)
    _, paired = sweep.paired(scores_of=lambda c: other if c == stale else sweep.scores[c])
    reasons = paired["rows"][0]["unavailable"]
    (disagree,) = [r for r in reasons if r.startswith("per-example scores disagree with the job's results")]
    assert reasons[disagree] == ["xnli/de/seed=1"]
    assert reasons["test examples differ from the baseline's"] == ["panx/de/seed=1"]


def test_dose_response_slope_against_log_budget_and_best_budget():
    sweep = Sweep()
    mk = lambda c: E.ExampleScores("xnli", "sw", "accuracy", ("accuracy",), {"correct": c}, "ids")  # noqa: E731
    base = np.zeros(1000, np.uint8)
    base[:500] = 1
    for budget, gain in ((0, 0), (10, 20), (100, 40), (1000, 60)):  # +2, +4, +6 points: 2 per tenfold
        scores = base.copy()
        scores[500:500 + gain] = 1
        sweep.add("mnli", budget, 1, mk(scores))
    _, paired = sweep.paired()
    entries = {e["group"]: e for e in paired["dose_response"]}
    low = entries["low_resource"]
    assert low["budgets"] == [10, 100, 1000] and low["deltas"] == pytest.approx([2.0, 4.0, 6.0])
    assert low["slope"] == pytest.approx(2.0) and low["slope_ci95"][0] < 2.0 < low["slope_ci95"][1]
    assert low["slope_ci95"][0] > 0 and low["slope_p_value"] < 0.01
    assert low["best_budget"] == 1000 and low["best_delta"] == pytest.approx(6.0) and low["best_share"] > 0.9
    assert entries["high_resource"]["reason"] == "a budget's difference needs a missing cell"  # no high language


def test_report_config_section():
    base = ("name: t\nmodel: {name: m}\nintermediate: {tasks: [mnli], budgets: [0, 10]}\ntargets: {xnli: {}}\n")
    assert parse(base, "t.yaml").report.bootstrap_resamples == 2000
    config = parse(base + "report: {bootstrap_resamples: 5000, bootstrap_seed: 7}\n", "t.yaml")
    assert (config.report.bootstrap_resamples, config.report.bootstrap_seed) == (5000, 7)
    for bad, field in (("{bootstrap_resamples: 500}", "report.bootstrap_resamples"),
                       ("{bootstrap_resamples: 20000}", "report.bootstrap_resamples"),
                       ("{bootstrap_seed: -1}", "report.bootstrap_seed"), ("{resamples: 2000}", "report.resamples")):
        with pytest.raises(XferError, match=rf"^t\.yaml: {field}: ") as info:
            parse(base + f"report: {bad}\n", "t.yaml")
        assert "\n" not in str(info.value)


def test_fixed_seed_reproduces_and_another_seed_differs():
    sweep, rng = Sweep(), np.random.default_rng(8)
    sweep.add("mnli", 0, 1, synthetic("xnli", "de", rng, 0.5))
    sweep.add("mnli", 100, 1, synthetic("xnli", "de", rng, 0.6))
    first = sweep.paired(Bootstrap(1000, 0))[1]
    assert sweep.paired(Bootstrap(1000, 0))[1] == first
    assert sweep.paired(Bootstrap(1000, 1))[1]["rows"][0]["cells"][0]["ci95"] != first["rows"][0]["cells"][0]["ci95"]
    assert "1,000 resamples, RNG seed 0" in first["method"]
