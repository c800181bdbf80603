"""The report's figures as matplotlib Figures (Agg canvas, no pyplot state)."""

from __future__ import annotations

import math

def figure(summary: dict):
    """The plot as a matplotlib Figure (Agg canvas, no pyplot state): low- and high-resource averages against
    the budget, one line per intermediate task, its 95% interval over seeds as a band; the oracle selection, when
    the summary has one, as dashed lines. A None point is left out and counted in a note."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullLocator

    rows = summary["rows"]
    oracle_rows = (summary.get("oracle") or {}).get("rows", [])
    low = summary["low_resource"]
    budgets = sorted({row["budget"] for row in rows + oracle_rows})
    positive = [b for b in budgets if b > 0]
    itasks = sorted({row["intermediate_task"] for row in rows})
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    axes = fig.subplots(1, 2)
    panels = (("low_resource", f"low-resource languages ({low['name']}: {' '.join(low['languages'])})"),
              ("high_resource", "high-resource languages (the others, English excluded)"))
    n_missing, banded = 0, False
    for ax, (key, label) in zip(axes, panels):
        for itask in itasks:
            mine = sorted((r for r in rows if r["intermediate_task"] == itask), key=lambda r: r["budget"])
            n_missing += sum(r[key] is None and key not in r.get("not_computed", {}) for r in mine)
            xs = [r["budget"] for r in mine]
            line, = ax.plot(xs, [math.nan if r[key] is None else r[key] for r in mine], marker="o", label=itask)
            cis = [r.get("ci95", {}).get(key) for r in mine]
            if any(ci is not None for ci in cis):
                banded = True
                ax.fill_between(xs, [math.nan if ci is None else ci[0] for ci in cis],
                                [math.nan if ci is None else ci[1] for ci in cis], color=line.get_color(), alpha=0.2,
                                linewidth=0)
            theirs = sorted((r for r in oracle_rows if r["intermediate_task"] == itask), key=lambda r: r["budget"])
            if theirs:
                ax.plot([r["budget"] for r in theirs], [math.nan if r[key] is None else r[key] for r in theirs],
                        linestyle="--", marker="x", color=line.get_color(), alpha=0.8, label=f"{itask} (oracle)")
        if all(row[key] is None for row in rows):
            ax.text(0.5, 0.5, "no value", transform=ax.transAxes, ha="center", va="center", color="gray")
        ax.set_xscale("symlog", linthresh=min(positive) if positive else 1)
        ax.set_xticks(budgets, [str(b) for b in budgets])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel("intermediate-task training steps (0 = no intermediate phase)")
        ax.set_ylabel("mean zero-shot score (%)")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(title="intermediate task", fontsize=8)
    fig.suptitle(summary.get("title", "xfer sweep"))
    notes = []
    if n_missing:
        notes.append(f"note: {n_missing} missing: points whose average needs a missing cell are left out "
                     f"(see summary.md)")
    if banded:
        notes.append("bands: 95% bootstrap interval over seeds")
    if oracle_rows:
        notes.append("dashed: oracle selection on target-language dev sets (an upper bound)")
    if notes:
        fig.supxlabel("; ".join(notes), fontsize=9, color="firebrick" if n_missing else "black")
    return fig


def render_plot(summary: dict, path) -> None:
    figure(summary).savefig(path, format="png", dpi=120)

