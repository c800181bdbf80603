"""The report's figures, as matplotlib Figures (Agg canvas, no pyplot state):

- `plot.png` (`figure`): low- and high-resource averages against the budget, one line per intermediate task;
  as a band, the paired 95% interval of the difference from budget 0 drawn around the baseline's level where
  the report has one, else the 95% interval over seeds; the oracle selection dashed.
- `heatmap-<intermediate task>.png` (`heatmap`): language x budget, the difference from budget 0 of each
  language (the mean over the tasks that evaluate it), on a diverging colour scale centred at 0; languages
  grouped (low-resource, high-resource, English) and ordered by PAN-X training-set size, the preset's criterion;
  a cell whose paired interval excludes 0 is marked `*`.
- `scatter.png` (`scatter`): each language's difference at each intermediate task's best budget against its
  PAN-X training-set size (log scale), with the paired intervals as error bars.
"""

from __future__ import annotations

import math
import re

from xfer.languages import PANX_TRAIN_SIZE
from xfer.report.table import ENGLISH

HEATMAP_PREFIX = "heatmap-"
SCATTER_FILE = "scatter.png"
DPI = 120


def figure(summary: dict):
    """plot.png: low- and high-resource averages against the budget (see the module doc). A None point is left
    out and counted in a note."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullLocator

    rows = summary["rows"]
    oracle_rows = (summary.get("oracle") or {}).get("rows", [])
    paired = {(r["intermediate_task"], r["budget"]): r for r in (summary.get("paired") or {}).get("rows", [])}
    low = summary["low_resource"]
    budgets = sorted({row["budget"] for row in rows + oracle_rows})
    positive = [b for b in budgets if b > 0]
    itasks = sorted({row["intermediate_task"] for row in rows})
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    axes = fig.subplots(1, 2)
    panels = (("low_resource", f"low-resource languages ({low['name']}: {' '.join(low['languages'])})"),
              ("high_resource", "high-resource languages (the others, English excluded)"))
    n_missing, bands = 0, set()
    for ax, (key, label) in zip(axes, panels):
        for itask in itasks:
            mine = sorted((r for r in rows if r["intermediate_task"] == itask), key=lambda r: r["budget"])
            n_missing += sum(r[key] is None and key not in r.get("not_computed", {}) for r in mine)
            xs = [r["budget"] for r in mine]
            line, = ax.plot(xs, [math.nan if r[key] is None else r[key] for r in mine], marker="o", label=itask)
            band, kind = _band(mine, key, paired)
            if band:
                bands.add(kind)
                ax.fill_between(xs, *band, color=line.get_color(), alpha=0.2, linewidth=0)
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
    if "paired" in bands:
        notes.append("bands: paired 95% bootstrap interval of the difference from budget 0, around the baseline")
    if "seeds" in bands:
        notes.append("bands: 95% bootstrap interval over seeds")
    if oracle_rows:
        notes.append("dashed: oracle selection on target-language dev sets (an upper bound)")
    if notes:
        fig.supxlabel("; ".join(notes), fontsize=9, color="firebrick" if n_missing else "black")
    return fig


def _band(mine: list[dict], key: str, paired: dict) -> tuple[tuple[list, list] | None, str]:
    """The band of one line: the paired intervals around the baseline's level when every budget above 0 has
    one, else the intervals over seeds (if any)."""
    base = next((r for r in mine if r["budget"] == 0), None)
    stats = [paired.get((r["intermediate_task"], r["budget"]), {}).get(key, {}) for r in mine if r["budget"] > 0]
    if base is not None and base[key] is not None and stats and all(s.get("ci95") for s in stats):
        lows, highs = [], []
        for r in mine:
            ci = [0.0, 0.0] if r["budget"] == 0 else paired[(r["intermediate_task"], r["budget"])][key]["ci95"]
            lows.append(base[key] + ci[0])
            highs.append(base[key] + ci[1])
        return (lows, highs), "paired"
    cis = [r.get("ci95", {}).get(key) for r in mine]
    if any(ci is not None for ci in cis):
        return ([math.nan if ci is None else ci[0] for ci in cis],
                [math.nan if ci is None else ci[1] for ci in cis]), "seeds"
    return None, ""


def _size_label(size: int | None) -> str:
    if size is None:
        return "?"
    return f"{size // 1000}k" if size >= 1000 and size % 1000 == 0 else str(size)


def language_order(languages, low: set[str]) -> list[tuple[str, list[str]]]:
    """[(group, languages)]: low-resource, high-resource, then English, each ordered by PAN-X training-set size
    (unknown sizes last), then by code; empty groups left out."""
    def key(lang):
        size = PANX_TRAIN_SIZE.get(lang)
        return (size is None, size or 0, lang)

    langs = set(languages)
    groups = [("low-resource", sorted((lang for lang in langs if lang in low), key=key)),
              ("high-resource", sorted((lang for lang in langs if lang not in low and lang != ENGLISH), key=key)),
              ("training language", [ENGLISH] if ENGLISH in langs else [])]
    return [(name, members) for name, members in groups if members]


def _excludes_zero(stat: dict) -> bool:
    ci = stat.get("ci95")
    return ci is not None and (ci[0] > 0 or ci[1] < 0)


def heatmap(summary: dict, itask: str):
    """One intermediate task's heatmap (see the module doc)."""
    import numpy as np
    from matplotlib.colors import CenteredNorm
    from matplotlib.figure import Figure

    rows = sorted((r for r in summary["paired"]["rows"] if r["intermediate_task"] == itask and r["languages"]),
                  key=lambda r: r["budget"])
    low = set(summary["low_resource"]["languages"])
    groups = language_order({lang for r in rows for lang in r["languages"]}, low)
    order = [lang for _, members in groups for lang in members]
    values = np.array([[r["languages"].get(lang, {}).get("delta") for r in rows] for lang in order], dtype=float)
    finite = values[np.isfinite(values)]
    half = float(np.max(np.abs(finite))) if finite.size and np.max(np.abs(finite)) > 0 else 1.0
    fig = Figure(figsize=(3.6 + 1.1 * len(rows), 1.8 + 0.32 * len(order)), layout="constrained")
    ax = fig.subplots()
    cmap = _diverging()
    mesh = ax.pcolormesh(np.ma.masked_invalid(values), cmap=cmap, norm=CenteredNorm(vcenter=0.0, halfrange=half),
                         edgecolors="white", linewidth=0.5)
    for i, lang in enumerate(order):
        for j, r in enumerate(rows):
            stat = r["languages"].get(lang, {})
            if stat.get("delta") is None:
                ax.text(j + 0.5, i + 0.5, "missing", ha="center", va="center", fontsize=7, color="gray")
                continue
            star = _excludes_zero(stat)
            ax.text(j + 0.5, i + 0.5, f"{stat['delta']:+.1f}" + ("*" if star else ""), ha="center", va="center",
                    fontsize=8, color="white" if abs(stat["delta"]) > 0.6 * half else "black")
    ax.set_xticks(np.arange(len(rows)) + 0.5, [str(r["budget"]) for r in rows])
    ax.set_yticks(np.arange(len(order)) + 0.5,
                  [f"{lang} ({_size_label(PANX_TRAIN_SIZE.get(lang))})" for lang in order])
    ax.invert_yaxis()  # the smallest training sets on top
    start = 0
    for name, members in groups:
        if start:
            ax.axhline(start, color="black", linewidth=1.5)
        ax.text(len(rows) + 0.08, start + len(members) / 2, name, ha="left", va="center", fontsize=8)
        start += len(members)
    ax.set_xlabel("intermediate-task training steps")
    ax.set_ylabel("language (PAN-X training sentences)")
    ax.set_title(f"{itask}: difference from budget 0 by language\n(mean over the tasks evaluating it)", fontsize=10)
    colorbar = fig.colorbar(mesh, ax=ax, pad=0.16)
    colorbar.set_label("difference from budget 0 (points)")
    resampled = any(r["languages"][lang].get("ci95") for r in rows for lang in r["languages"])
    note = ("*: the paired 95% bootstrap interval excludes 0" if resampled else
            "no intervals: no per-example scores (see summary.md)")
    fig.supxlabel(note, fontsize=8)
    return fig


def _diverging():
    from matplotlib import colormaps

    return colormaps["RdBu"].with_extremes(bad="#dddddd")  # red: worse than the baseline, blue: better


def best_budgets(summary: dict) -> dict[str, int]:
    """Each intermediate task's budget above 0 with the best mean overall difference (the scatter's)."""
    out: dict[str, int] = {}
    for entry in summary["paired"]["dose_response"]:
        if entry["group"] != "overall" or any(d is None for d in entry["deltas"]):
            continue
        best = max(range(len(entry["budgets"])), key=lambda i: entry["deltas"][i])  # ties: the smaller budget
        out[entry["intermediate_task"]] = entry["budgets"][best]
    return out


def _spread(languages: set[str]) -> dict[str, float]:
    """Each language's x position: its PAN-X size, languages of the same size spread over a factor of 1.5
    around it (many have 20,000 sentences), in code order."""
    by_size: dict[int, list[str]] = {}
    for lang in sorted(languages):
        if lang in PANX_TRAIN_SIZE:
            by_size.setdefault(PANX_TRAIN_SIZE[lang], []).append(lang)
    out = {}
    for size, langs in by_size.items():
        for i, lang in enumerate(langs):
            out[lang] = size * 1.5 ** ((i + 0.5) / len(langs) - 0.5) if len(langs) > 1 else float(size)
    return out


def scatter(summary: dict):
    """Each language's difference at each intermediate task's best budget against its PAN-X training-set size."""
    from matplotlib.figure import Figure

    paired = {(r["intermediate_task"], r["budget"]): r for r in summary["paired"]["rows"]}
    best = best_budgets(summary)
    low = summary["low_resource"]
    fig = Figure(figsize=(8.5, 5), layout="constrained")
    ax = fig.subplots()
    unknown: set[str] = set()
    spread = _spread({lang for itask, budget in best.items() for lang in paired[(itask, budget)]["languages"]})
    for k, (itask, budget) in enumerate(sorted(best.items())):
        languages = paired[(itask, budget)]["languages"]
        points = [(spread[lang] * (1 + 0.04 * k), stat, lang) for lang, stat in sorted(languages.items())
                  if lang in PANX_TRAIN_SIZE and stat["delta"] is not None]
        unknown |= {lang for lang in languages if lang not in PANX_TRAIN_SIZE}
        if not points:
            continue
        xs, ys = [p[0] for p in points], [p[1]["delta"] for p in points]
        errors = [[max(0.0, p[1]["delta"] - p[1]["ci95"][0]) if p[1]["ci95"] else 0.0 for p in points],
                  [max(0.0, p[1]["ci95"][1] - p[1]["delta"]) if p[1]["ci95"] else 0.0 for p in points]]
        ax.errorbar(xs, ys, yerr=errors, fmt="o", capsize=2, label=f"{itask} @ {budget} steps")
        for x, y, (_, _, lang) in zip(xs, ys, points):
            ax.annotate(lang, (x, y), xytext=(3, 3), textcoords="offset points", fontsize=7)
    ax.axhline(0, color="gray", linewidth=0.8)
    low_sizes = [PANX_TRAIN_SIZE[lang] for lang in low["languages"] if lang in PANX_TRAIN_SIZE]
    if low["name"].startswith("panx-") and low_sizes:
        ax.axvline(max(low_sizes) * 1.5, color="firebrick", linestyle=":", linewidth=1,
                   label=f"low-resource ({low['name']}): at most {max(low_sizes):,} sentences")
    ax.set_xscale("log")
    ax.set_xlabel("PAN-X training sentences of the language (log scale; the low-resource criterion)")
    ax.set_ylabel("difference from budget 0 (points)")
    ax.set_title("Change at each intermediate task's best budget against resource size\n(each language: the mean "
                 "over the tasks evaluating it)", fontsize=10)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    resampled = any(paired[(itask, budget)]["languages"][lang].get("ci95")
                    for itask, budget in best.items() for lang in paired[(itask, budget)]["languages"])
    notes = ["best budget: the budget above 0 with the best mean overall difference; " +
             ("bars: paired 95% intervals" if resampled else "no intervals: no per-example scores (see summary.md)")]
    if unknown:
        notes.append(f"left out (no PAN-X size): {' '.join(sorted(unknown))}")
    fig.supxlabel("; ".join(notes), fontsize=8)
    return fig


def heatmap_file(itask: str) -> str:
    return f"{HEATMAP_PREFIX}{re.sub(r'[^A-Za-z0-9._-]', '_', itask)}.png"


def render_plot(summary: dict, path) -> None:
    figure(summary).savefig(path, format="png", dpi=DPI)


def heatmap_tasks(summary: dict) -> list[str]:
    """The intermediate tasks that get a heatmap (and, if any, the report a scatter): those with paired
    differences of some language (rows of `avg` results only have none)."""
    rows = (summary.get("paired") or {}).get("rows", [])
    return sorted({r["intermediate_task"] for r in rows if r["languages"]})


def render_figures(summary: dict, folder) -> list[str]:
    """Write the heatmaps and the scatter into `folder` (see `heatmap_tasks`); returns the file names written."""
    names = []
    for itask in heatmap_tasks(summary):
        names.append(heatmap_file(itask))
        heatmap(summary, itask).savefig(folder / names[-1], format="png", dpi=DPI)
    if names:
        scatter(summary).savefig(folder / SCATTER_FILE, format="png", dpi=DPI)
        names.append(SCATTER_FILE)
    return names
