"""The report's figures read at a glance, checked on the matplotlib Figure objects: the heatmap's cells, axes,
grouping by resource size, colour scale centred at 0 and marked cells; the scatter against PAN-X size; the
averages plot with paired intervals as bands. Also: the report files and summary.md sections they come with."""

from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib.collections import PolyCollection, QuadMesh
from matplotlib.text import Text
from test_report_paired import LOW, Sweep, synthetic

from xfer.report import Bootstrap, figures, write_report
from xfer.report.paired import NO_EXAMPLES

PAIRS = [("xnli", "en"), ("xnli", "de"), ("xnli", "sw"), ("panx", "en"), ("panx", "de"), ("panx", "sw"),
         ("panx", "yo")]
BUDGETS = (0, 10, 100, 1000)
QUALITY = {0: 0.45, 10: 0.5, 100: 0.62, 1000: 0.6}


@pytest.fixture(scope="module")
def sweep():
    sweep, rng = Sweep(), np.random.default_rng(11)
    base = {pair: synthetic(*pair, rng, QUALITY[0]) for pair in PAIRS}  # budget 0: one shared run
    for itask in ("mnli", "squad"):
        for pair in PAIRS:
            sweep.add(itask, 0, 1, base[pair])
        for budget in BUDGETS[1:]:
            for task, lang in PAIRS:
                quality = QUALITY[budget] - (0.1 if itask == "squad" and lang == "yo" else 0.0)
                sweep.add(itask, budget, 1, synthetic(task, lang, rng, quality))
    return sweep


@pytest.fixture(scope="module")
def summary(sweep):
    summary, paired = sweep.paired(Bootstrap(1000, 0))
    return {**summary, "title": "figures", "paired": paired}


def test_heatmap_cells_axes_and_colour_scale(summary):
    fig = figures.heatmap(summary, "mnli")
    ax = fig.axes[0]
    (mesh,) = [c for c in ax.collections if isinstance(c, QuadMesh)]
    assert mesh.get_array().shape == (4, 3)  # languages x budgets above 0
    assert mesh.norm.vcenter == 0.0 and mesh.norm(0.0) == pytest.approx(0.5)  # diverging, centred at 0
    assert mesh.cmap.name.startswith("RdBu")
    values = np.asarray(mesh.get_array())
    assert mesh.norm.halfrange == pytest.approx(np.abs(values).max())  # symmetric: the largest change sets it
    # grouped by resource (low, high, English) and ordered by PAN-X training-set size within each group
    assert [t.get_text() for t in ax.get_yticklabels()] == ["yo (100)", "sw (1k)", "de (20k)", "en (20k)"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["10", "100", "1000"]
    assert ax.get_xlabel() == "intermediate-task training steps"
    assert ax.get_ylabel() == "language (PAN-X training sentences)"
    assert ax.get_title().startswith("mnli: difference from budget 0 by language")
    texts = [t.get_text() for t in ax.texts]
    assert {"low-resource", "high-resource", "training language"} <= set(texts)
    rows = sorted((r for r in summary["paired"]["rows"] if r["intermediate_task"] == "mnli"), key=lambda r: r["budget"])
    expected = sum(figures._excludes_zero(r["languages"][lang]) for r in rows for lang in ("yo", "sw", "de", "en"))
    assert 0 < expected < 12
    assert sum(t.endswith("*") for t in texts) == expected  # the marked cells
    yo_at_100 = next(r for r in rows if r["budget"] == 100)["languages"]["yo"]
    assert values[0, 1] == pytest.approx(yo_at_100["delta"])
    colorbar_labels = [a.get_ylabel() for a in fig.axes[1:]]
    assert "difference from budget 0 (points)" in colorbar_labels
    notes = [t.get_text() for t in fig.findobj(Text)]
    assert "*: the paired 95% bootstrap interval excludes 0" in notes


def test_heatmap_without_intervals_says_so(sweep):
    summary, paired = sweep.paired(Bootstrap(1000, 0), scores_of=lambda c: NO_EXAMPLES)
    fig = figures.heatmap({**summary, "paired": paired}, "squad")
    texts = [t.get_text() for t in fig.findobj(Text)]
    assert "no intervals: no per-example scores (see summary.md)" in texts
    assert not any(t.endswith("*") for t in texts)
    scatter_notes = [t.get_text() for t in figures.scatter({**summary, "paired": paired}).findobj(Text)]
    assert any(t.endswith("no intervals: no per-example scores (see summary.md)") for t in scatter_notes)
    (mesh,) = [c for c in fig.axes[0].collections if isinstance(c, QuadMesh)]
    assert np.all(np.isfinite(mesh.get_array()))  # the differences are there all the same


def test_scatter_against_resource_size(summary):
    fig = figures.scatter(summary)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert ax.get_xlabel().startswith("PAN-X training sentences")
    assert ax.get_ylabel().startswith("difference from budget 0")
    best = figures.best_budgets(summary)
    assert set(best) == {"mnli", "squad"} and all(b in (10, 100, 1000) for b in best.values())
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert f"mnli @ {best['mnli']} steps" in labels and f"squad @ {best['squad']} steps" in labels
    assert any(label.startswith("low-resource (panx-1k): at most 1,000 sentences") for label in labels)
    annotations = [t.get_text() for t in ax.texts]
    assert sorted(annotations) == sorted(["yo", "sw", "de", "en"] * 2)  # every language, per intermediate task
    lines = [line for line in ax.get_lines() if line.get_linestyle() == "None"]
    xs = sorted({x for line in lines for x in line.get_xdata()})  # the points (their caps share them)
    assert xs[0] == pytest.approx(100)  # yo's 100 sentences; de and en share 20k, spread around it
    high = xs[-4:]  # de and en of both intermediate tasks: spread around 20k, de (first in code order) below
    assert all(20_000 / 1.5 < x < 20_000 * 1.5 * 1.04 for x in high) and high[1] < 20_000 < high[2]


def test_averages_plot_draws_the_paired_intervals_as_bands(summary):
    fig = figures.figure(summary)
    assert len(fig.findobj(PolyCollection)) == 4  # 2 panels x 2 intermediate tasks
    texts = [t.get_text() for t in fig.findobj(Text)]
    assert any("paired 95% bootstrap interval of the difference from budget 0" in t for t in texts)
    # the band at budget 0 has no width: the baseline is the reference
    band = fig.axes[0].findobj(PolyCollection)[0]
    vertices = band.get_paths()[0].vertices
    at_zero = vertices[np.isclose(vertices[:, 0], 0.0)][:, 1]
    assert np.ptp(at_zero) == pytest.approx(0.0)


def test_the_report_links_its_figures(tmp_path, sweep):
    out = tmp_path / "r"
    write_report(sweep.rows, None, LOW, out, title="t", shared_baseline=("mnli", "squad"),
                 scores_of=sweep.scores.__getitem__, bootstrap=Bootstrap(1000, 0))
    names = sorted(p.name for p in out.iterdir())
    assert names == ["heatmap-mnli.png", "heatmap-squad.png", "plot.png", "results.csv", "scatter.png",
                     "summary.json", "summary.md"]
    assert all((out / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in names if n.endswith(".png"))
    md = (out / "summary.md").read_text()
    assert "## Differences from the budget-0 baseline" in md and "## Dose-response" in md
    assert "[heatmap-mnli.png](heatmap-mnli.png)" in md and "[scatter.png](scatter.png)" in md
    assert "paired bootstrap over test examples: 1,000 resamples, RNG seed 0" in md
    summary = json.loads((out / "summary.json").read_text())
    row = next(r for r in summary["paired"]["rows"] if (r["intermediate_task"], r["budget"]) == ("mnli", 100))
    section = md[md.index("## Differences from the budget-0 baseline"):]
    line = next(x for x in section.splitlines() if x.startswith("| mnli | 100 |"))
    assert f"{row['tasks']['xnli']['delta']:+.1f} [{row['tasks']['xnli']['ci95'][0]:+.1f}, " in line
    # a later report of one intermediate task removes the other's heatmap
    write_report([r for r in sweep.rows if r["intermediate_task"] == "mnli"], None, LOW, out, title="t")
    assert not (out / "heatmap-squad.png").exists() and (out / "heatmap-mnli.png").exists()


def test_results_given_only_as_task_averages_get_no_heatmap(tmp_path):
    rows = [{"intermediate_task": "sys", "budget": budget, "seed": 0, "target_task": "xnli", "language": "avg",
             "metric": "accuracy", "value": value} for budget, value in ((0, 79.2), (100, 80.2))]
    summary = write_report(rows, None, LOW, tmp_path, title="t")
    assert summary["paired"]["rows"][0]["tasks"]["xnli"]["delta"] == pytest.approx(1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plot.png", "results.csv", "summary.json", "summary.md"]
    assert "heatmap" not in (tmp_path / "summary.md").read_text()
