"""The sweep report: result rows (one metric, one language, one cell) -> results.csv, summary.md, summary.json
and plot.png, scored XTREME style.

A cell is (intermediate task, budget, seed, target task, language). Its score is the task's metric, or for the
QA tasks (EM + F1) / 2. Seeds are averaged first; a task's score is the unweighted mean over its languages; the
low-resource average is the mean over every (task, language) pair whose language is in the low-resource set,
the high-resource average the same over the other languages except English (the training language), and
overall the mean of the task scores. Any average that needs a missing cell is None: nothing is ever averaged
over a subset of what was planned.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from xfer import languages as L
from xfer.errors import XferError
from xfer.xtreme import TASK_METRICS  # noqa: F401  (re-exported for report users)

COLUMNS = ("intermediate_task", "budget", "seed", "target_task", "language", "metric", "value")
REPORT_FILES = ("results.csv", "summary.md", "summary.json", "plot.png")
ENGLISH = "en"  # the training language: in the task scores, never in the low/high-resource averages

TASK_LANGUAGES: dict[str, tuple[str, ...]] = {
    "xnli": L.XNLI, "pawsx": L.PAWSX, "udpos": L.UDPOS, "panx": L.PANX, "xquad": L.XQUAD, "mlqa": L.MLQA,
    "tydiqa": L.TYDIQA, "bucc2018": L.BUCC2018, "tatoeba": L.TATOEBA,
}
_TASK_ORDER = {task: i for i, task in enumerate(TASK_METRICS)}


@dataclass(frozen=True)
class Cell:
    """One planned evaluation: every metric of its task for one language of one target run."""

    intermediate_task: str
    budget: int
    seed: int
    target_task: str
    language: str

    def label(self) -> str:
        return f"{self.target_task}/{self.language}/seed={self.seed}"


@dataclass(frozen=True)
class LowResourceSet:
    """The languages counted as low-resource, and the one-sentence criterion that picked them."""

    name: str
    languages: frozenset[str]
    criterion: str

    def __post_init__(self):
        if ENGLISH in self.languages:
            raise XferError(f"low-resource set {self.name!r} contains {ENGLISH!r}, the training language")
        if not self.criterion.strip():
            raise XferError(f"low-resource set {self.name!r} has no criterion")


# ---------------------------------------------------------------------------------------------- rows


def _integer(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        return int(value.strip())
    raise ValueError


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError
    return float(value)


def _check_row(row: dict, where: str) -> dict:
    """A clean, typed copy of one result row; XferError naming `where` and the column otherwise."""
    for key in row:
        if key not in COLUMNS:
            raise XferError(f"{where}: unknown column {key!r} (columns: {','.join(COLUMNS)})")
    for key in COLUMNS:
        if key not in row or row[key] is None or row[key] == "":
            raise XferError(f"{where}: column {key!r} is empty or absent")
    out = {}
    for key in ("intermediate_task", "target_task", "language", "metric"):
        if not isinstance(row[key], str) or row[key] != row[key].strip():
            raise XferError(f"{where}: column {key!r}: {row[key]!r} is not a plain name")
        out[key] = row[key]
    for key in ("budget", "seed"):
        try:
            out[key] = _integer(row[key])
        except ValueError:
            raise XferError(f"{where}: column {key!r}: {row[key]!r} is not an integer") from None
    if out["budget"] < 0:
        raise XferError(f"{where}: column 'budget': {out['budget']} is negative")
    try:
        out["value"] = _number(row["value"])
    except ValueError:
        raise XferError(f"{where}: column 'value': {row['value']!r} is not a number") from None
    if not (math.isfinite(out["value"]) and 0.0 <= out["value"] <= 100.0):
        raise XferError(f"{where}: column 'value': {row['value']!r} is not a percentage in [0, 100]")
    task, lang, metric = out["target_task"], out["language"], out["metric"]
    if task not in TASK_METRICS:
        raise XferError(f"{where}: column 'target_task': unknown task {task!r} (known: {' '.join(TASK_METRICS)})")
    if metric not in TASK_METRICS[task]:
        raise XferError(f"{where}: column 'metric': {metric!r} is not a metric of {task} "
                        f"(its metrics: {' '.join(TASK_METRICS[task])})")
    if lang not in TASK_LANGUAGES[task]:
        raise XferError(f"{where}: column 'language': {lang!r} is not a language of {task} "
                        f"(XTREME's: {' '.join(TASK_LANGUAGES[task])})")
    return out


def _sort_key(row: dict) -> tuple:
    return tuple(row[k] for k in COLUMNS[:-1])


def read_results_csv(path) -> list[dict]:
    """The rows of a results.csv, typed (budget and seed int, value float) and checked."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise XferError(f"{path}: empty file (expected the header {','.join(COLUMNS)})")
            for name in header:
                if name not in COLUMNS:
                    raise XferError(f"{path}:1: unknown column {name!r} (columns: {','.join(COLUMNS)})")
            for name in COLUMNS:
                if header.count(name) != 1:
                    raise XferError(f"{path}:1: column {name!r} appears {header.count(name)} times, expected once")
            rows, first_seen = [], {}
            for fields in reader:
                line = reader.line_num
                if not fields:
                    continue
                if len(fields) != len(header):
                    raise XferError(f"{path}:{line}: {len(fields)} fields, expected {len(header)}")
                row = _check_row(dict(zip(header, fields)), f"{path}:{line}")
                key = _sort_key(row)
                if key in first_seen:
                    raise XferError(f"{path}:{line}: duplicate result for {'/'.join(map(str, key))} "
                                    f"(first on line {first_seen[key]})")
                first_seen[key] = line
                rows.append(row)
    except OSError as e:
        raise XferError(f"{path}: cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise XferError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except csv.Error as e:
        raise XferError(f"{path}: not valid CSV: {e}") from None
    return rows


def write_results_csv(rows: Iterable[dict], path) -> None:
    """Write `rows` with exactly the results columns, sorted by every column but the value."""
    clean = sorted((_check_row(row, f"result row {i}") for i, row in enumerate(rows, 1)), key=_sort_key)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in clean:
            writer.writerow([*(row[k] for k in COLUMNS[:-1]), repr(row["value"])])


# ------------------------------------------------------------------------------------------- summary


def _mean(values: list[float | None]) -> float | None:
    """The mean, or None when any value is None or there is nothing to average."""
    if not values or any(v is None for v in values):
        return None
    return math.fsum(values) / len(values)


def _check_cell(cell: Any, where: str) -> Cell:
    if not isinstance(cell, Cell):
        raise XferError(f"{where}: expected a Cell, got {type(cell).__name__}")
    row = {**{k: getattr(cell, k) for k in COLUMNS[:5]}, "metric": TASK_METRICS.get(cell.target_task, ("?",))[0],
           "value": 0.0}
    return Cell(*(_check_row(row, where)[k] for k in COLUMNS[:5]))


def _cells(rows: list[dict]) -> dict[Cell, dict[str, float]]:
    """{cell: {metric: value}}; conflicting duplicates and a budget-0 baseline that differs between
    intermediate tasks are errors."""
    values: dict[Cell, dict[str, float]] = {}
    baseline: dict[tuple, tuple[str, float]] = {}
    for i, row in enumerate(rows, 1):
        cell = Cell(*(row[k] for k in COLUMNS[:5]))
        metrics = values.setdefault(cell, {})
        old = metrics.setdefault(row["metric"], row["value"])
        if old != row["value"]:
            raise XferError(f"result row {i}: {cell.intermediate_task}@{cell.budget} {cell.label()} "
                            f"{row['metric']} is both {old!r} and {row['value']!r}")
        if cell.budget == 0:
            key = (cell.seed, cell.target_task, cell.language, row["metric"])
            first = baseline.setdefault(key, (cell.intermediate_task, row["value"]))
            if first[1] != row["value"]:
                raise XferError(f"result row {i}: the budget-0 baseline {cell.label()} {row['metric']} is "
                                f"{first[1]!r} for {first[0]} but {row['value']!r} for {cell.intermediate_task}; "
                                f"it is one shared run and must be identical")
    return values


def _expected_cells(values: dict[Cell, dict[str, float]], expected: Iterable[Cell] | None) -> set[Cell]:
    if expected is None:
        runs = {(c.intermediate_task, c.budget) for c in values}
        seeds = {c.seed for c in values}
        pairs = {(c.target_task, c.language) for c in values}
        return {Cell(t, b, s, task, lang) for t, b in runs for s in seeds for task, lang in pairs}
    cells = {_check_cell(cell, f"expected cell {i}") for i, cell in enumerate(expected, 1)}
    for cell in sorted(values, key=_cell_key):
        if cell not in cells:
            raise XferError(f"result for {cell.intermediate_task}@{cell.budget} {cell.label()} is not an "
                            f"expected cell of this sweep")
    # every row is scored on the same (task, language) pairs, so the rows stay comparable: a pair that some
    # row lacks counts as missing there, for each of that row's seeds
    pairs = {(c.target_task, c.language) for c in cells}
    seeds: dict[tuple[str, int], set[int]] = {}
    for c in cells:
        seeds.setdefault((c.intermediate_task, c.budget), set()).add(c.seed)
    return {Cell(t, b, s, task, lang) for (t, b), ss in seeds.items() for s in ss for task, lang in pairs}


def _cell_key(cell: Cell) -> tuple:
    return (cell.intermediate_task, cell.budget, cell.seed, cell.target_task, cell.language)


def summarize(rows: Iterable[dict], expected: Iterable[Cell] | None, low_resource: LowResourceSet) -> dict:
    """Per (intermediate task, budget): task scores, low-/high-resource and overall averages, seeds, missing
    cells. `expected` None: the full cross product of what the rows themselves show (see the module doc)."""
    clean = [_check_row(row, f"result row {i}") for i, row in enumerate(rows, 1)]
    values = _cells(clean)
    cells = _expected_cells(values, expected)
    if not cells:
        raise XferError("nothing to report: no result rows and no expected cells")

    def score(cell: Cell) -> float | None:
        got = values.get(cell, {})
        metrics = TASK_METRICS[cell.target_task]
        return _mean([got.get(m) for m in metrics]) if all(m in got for m in metrics) else None

    runs: dict[tuple[str, int], list[Cell]] = {}
    for cell in cells:
        runs.setdefault((cell.intermediate_task, cell.budget), []).append(cell)
    tasks = sorted({c.target_task for c in cells}, key=_TASK_ORDER.__getitem__)
    out_rows = []
    for (itask, budget), run_cells in sorted(runs.items()):
        seeds = sorted({c.seed for c in run_cells})
        per_pair: dict[tuple[str, str], list[float | None]] = {}
        missing = []
        for cell in run_cells:
            s = score(cell)
            per_pair.setdefault((cell.target_task, cell.language), []).append(s)
            if s is None:
                missing.append(cell.label())
        lang_score = {pair: _mean(scores) for pair, scores in per_pair.items()}  # seed-averaged
        task_scores = {task: _mean([v for (t, _), v in lang_score.items() if t == task]) for task in tasks}
        low = [v for (_, lang), v in lang_score.items() if lang in low_resource.languages]
        high = [v for (_, lang), v in lang_score.items() if lang not in low_resource.languages and lang != ENGLISH]
        out_rows.append({
            "intermediate_task": itask,
            "budget": budget,
            "tasks": task_scores,
            "low_resource": _mean(low),
            "high_resource": _mean(high),
            "overall": _mean(list(task_scores.values())),
            "seeds": seeds,
            "n_seeds": len(seeds),
            "missing": sorted(missing),
        })
    return {
        "low_resource": {"name": low_resource.name, "languages": sorted(low_resource.languages),
                         "criterion": low_resource.criterion},
        "rows": out_rows,
    }


# ------------------------------------------------------------------------------------------ rendering


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _task_columns(summary: dict) -> list[str]:
    tasks: dict[str, None] = {}
    for row in summary["rows"]:
        tasks.update(dict.fromkeys(row["tasks"]))
    return list(tasks)


def _table_rows(summary: dict) -> tuple[list[str], list[list[str]]]:
    tasks = _task_columns(summary)
    header = ["intermediate task", "budget", *tasks, "low-res", "high-res", "overall"]
    body = [[row["intermediate_task"], str(row["budget"]), *(_fmt(row["tasks"].get(t)) for t in tasks),
             _fmt(row["low_resource"]), _fmt(row["high_resource"]), _fmt(row["overall"])]
            for row in summary["rows"]]
    return header, body


def _criterion_sentence(summary: dict) -> str:
    low = summary["low_resource"]
    criterion = low["criterion"].strip().rstrip(".")
    return (f"Low-resource languages (set `{low['name']}`): {criterion}: {', '.join(low['languages'])}; "
            f"high-resource: every other evaluated language except English, the training language.")


def format_table(summary: dict) -> str:
    """The summary table for the terminal (rich, no colour codes)."""
    from rich.console import Console
    from rich.table import Table

    header, body = _table_rows(summary)
    n_missing = sum(len(row["missing"]) for row in summary["rows"])
    low = summary["low_resource"]
    caption = (f"low-res: {low['name']} ({' '.join(low['languages'])}); high-res: the others except en; "
               f"— = needs a missing cell ({n_missing} missing)")
    table = Table(title=summary.get("title"), caption=caption)
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i == 0 else "right")
    for cells in body:
        table.add_row(*cells)
    console = Console(file=io.StringIO(), width=max(100, 12 * len(header)), color_system=None,
                      force_terminal=False, highlight=False)
    console.print(table)
    return console.file.getvalue().rstrip("\n")


def render_markdown(summary: dict) -> str:
    header, body = _table_rows(summary)
    lines = [f"# {summary.get('title', 'xfer sweep')}", "", _criterion_sentence(summary), "",
             "Zero-shot scores in percent. Task score as in XTREME: the unweighted mean over the task's languages "
             "of the seed-averaged per-language score (QA: (EM + F1) / 2); overall: the mean of the task scores. "
             "\"—\": a cell it needs is missing; nothing is averaged over a subset.", ""]
    seed_sets = {tuple(row["seeds"]) for row in summary["rows"]}
    if len(seed_sets) == 1:
        lines += [f"Seeds averaged: {', '.join(map(str, next(iter(seed_sets))))}.", ""]
    else:
        lines += ["Seeds differ between rows: " + "; ".join(
            f"{row['intermediate_task']}@{row['budget']}: {', '.join(map(str, row['seeds']))}"
            for row in summary["rows"]) + ".", ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    lines += ["", "## Missing cells", ""]
    missing = [row for row in summary["rows"] if row["missing"]]
    if missing:
        lines += [f"- {row['intermediate_task']} @ {row['budget']}: {', '.join(row['missing'])}" for row in missing]
    else:
        lines.append("None.")
    lines += ["", "Low- and high-resource averages against the step budget: [plot.png](plot.png)", ""]
    return "\n".join(lines)


def figure(summary: dict):
    """The plot as a matplotlib Figure (Agg canvas, no pyplot state): low- and high-resource averages against
    the budget, one line per intermediate task; a None point is left out and counted in a note."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullLocator

    rows = summary["rows"]
    low = summary["low_resource"]
    budgets = sorted({row["budget"] for row in rows})
    positive = [b for b in budgets if b > 0]
    itasks = sorted({row["intermediate_task"] for row in rows})
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    axes = fig.subplots(1, 2)
    panels = (("low_resource", f"low-resource languages ({low['name']}: {' '.join(low['languages'])})"),
              ("high_resource", "high-resource languages (the others, English excluded)"))
    n_missing = 0
    for ax, (key, label) in zip(axes, panels):
        for itask in itasks:
            points = sorted((row["budget"], row[key]) for row in rows if row["intermediate_task"] == itask)
            n_missing += sum(v is None for _, v in points)
            ax.plot([b for b, _ in points], [math.nan if v is None else v for _, v in points],
                    marker="o", label=itask)
        if all(row[key] is None for row in rows):
            ax.text(0.5, 0.5, "no value", transform=ax.transAxes, ha="center", va="center", color="gray")
        ax.set_xscale("symlog", linthresh=min(positive) if positive else 1)
        ax.set_xticks(budgets, [str(b) for b in budgets])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel("intermediate-task training steps (0 = no intermediate phase)")
        ax.set_ylabel("mean zero-shot score (%)")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(title="intermediate task", fontsize=9)
    fig.suptitle(summary.get("title", "xfer sweep"))
    if n_missing:
        fig.supxlabel(f"note: {n_missing} missing: points whose average needs a missing cell are left out "
                      f"(see summary.md)", fontsize=9, color="firebrick")
    return fig


def render_plot(summary: dict, path) -> None:
    figure(summary).savefig(path, format="png", dpi=120)


def write_report(rows: Iterable[dict], expected: Iterable[Cell] | None, low_resource: LowResourceSet, out_dir,
                 title: str) -> dict:
    """Write results.csv, summary.md, summary.json and plot.png into `out_dir`, all or none: every file is
    written in a temporary folder beside it first and moved in only once all four exist. Returns the summary."""
    rows = list(rows)
    summary = {"title": title, **summarize(rows, expected, low_resource)}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.report-"))
    try:
        write_results_csv(rows, tmp / "results.csv")
        (tmp / "summary.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False, allow_nan=False) + "\n",
                                          encoding="utf-8")
        (tmp / "summary.md").write_text(render_markdown(summary), encoding="utf-8")
        render_plot(summary, tmp / "plot.png")
        for name in REPORT_FILES:
            os.replace(tmp / name, out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary
