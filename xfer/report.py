"""The sweep report: result rows (one metric, one language, one cell) -> results.csv, summary.md, summary.json
and plot.png, scored XTREME style.

A cell is (intermediate task, budget, seed, target task, language). Its score is the task's metric, or for the
QA tasks (EM + F1) / 2. For each seed, a task's score is the unweighted mean over its languages; the
low-resource average is the mean over every (task, language) pair whose language is in the low-resource set,
the high-resource average the same over the other languages except English (the training language), and
overall the mean of the task scores. Each seed's averages are computed first; the report gives their mean over
seeds, the sample standard deviation and a percentile-bootstrap 95% interval (seeds resampled with
replacement, fixed RNG seed). XTREME's headline averages (`xfer.xtreme.headline`) are given beside them,
labelled partial when tasks are absent. Any average that needs a missing cell is None: nothing is ever
averaged over a subset of what was planned.

A hand-written table may give a task's published score without per-language scores: language `avg` ("the
task's average over its languages"). Such a row counts for the task score and the headline averages but not
for the low-/high-resource averages, which are then None with the reason given; it cannot be mixed with
per-language rows of the same task for the same intermediate task and budget.

The oracle model selection (target-language dev sets, an upper bound) is reported separately, with the same
averages, in `results_oracle.csv` and the summary's "oracle" section.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import statistics
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

from xfer import languages as L
from xfer.errors import XferError
from xfer.xtreme import CATEGORIES, TASK_LANGUAGES, TASK_METRICS, headline

COLUMNS = ("intermediate_task", "budget", "seed", "target_task", "language", "metric", "value")
REPORT_FILES = ("results.csv", "summary.md", "summary.json", "plot.png")
ORACLE_FILE = "results_oracle.csv"  # written beside REPORT_FILES when the report has an oracle section
ENGLISH = "en"  # the training language: in the task scores, never in the low/high-resource averages
AVG = "avg"  # hand-written tables: the task's published average over its languages, no per-language scores
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0  # fixed: the same results give the same intervals
ORACLE_LABEL = ("oracle selection on target-language dev sets — an upper bound, not a model-selection method "
                "usable without target-language data")
HEADLINES = ("avg_over_tasks", "avg_over_categories")

_TASK_ORDER = {task: i for i, task in enumerate(TASK_METRICS)}
EXPLICIT = "explicit list"


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
    """The languages counted as low-resource, the one-sentence criterion that picked them, and its source."""

    name: str
    languages: frozenset[str]
    criterion: str
    source: str  # where the criterion comes from; "explicit list" for a list given by the user

    def __post_init__(self):
        if ENGLISH in self.languages:
            raise XferError(f"low-resource set {self.name!r} contains {ENGLISH!r}, the training language")
        if AVG in self.languages:
            raise XferError(f"low-resource set {self.name!r} contains {AVG!r}, which is not a language")
        if not self.criterion.strip():
            raise XferError(f"low-resource set {self.name!r} has no criterion")

    def to_json(self) -> dict:
        return {"name": self.name, "languages": sorted(self.languages), "criterion": self.criterion,
                "source": self.source}


def low_resource_set(spec: str | Iterable[str], listed_in: str = "the config") -> LowResourceSet:
    """A named preset (`xfer.languages.LOW_RESOURCE_PRESETS`, with its criterion and source), or an explicit
    list of language codes, labelled "explicit list"; `listed_in` says where the list was given."""
    if isinstance(spec, str):
        if spec not in L.LOW_RESOURCE_PRESETS:
            raise XferError(f"unknown low-resource preset {spec!r} (presets: {', '.join(L.LOW_RESOURCE_PRESETS)}; "
                            f"or give a list of language codes)")
        langs, criterion = L.LOW_RESOURCE_PRESETS[spec]
        return LowResourceSet(spec, frozenset(langs), criterion, L.LOW_RESOURCE_SOURCE)
    return LowResourceSet(EXPLICIT, frozenset(spec), f"languages listed in {listed_in}", EXPLICIT)


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
    if lang not in TASK_LANGUAGES[task] and lang != AVG:
        raise XferError(f"{where}: column 'language': {lang!r} is not a language of {task} "
                        f"(XTREME's: {' '.join(TASK_LANGUAGES[task])}; or {AVG!r}: the task's average)")
    return out


def _mixing(run: tuple) -> str:
    itask, budget, task = run
    return (f"{itask}@{budget} {task}: both language {AVG!r} (the task's average) and per-language rows; "
            f"give one or the other")


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
            rows, first_seen, kind_seen = [], {}, {}
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
                run = (row["intermediate_task"], row["budget"], row["target_task"])
                is_avg = row["language"] == AVG
                first = kind_seen.setdefault(run, (is_avg, line))
                if first[0] != is_avg:
                    raise XferError(f"{path}:{line}: {_mixing(run)} (line {first[1]} has the other kind)")
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


@lru_cache(maxsize=None)
def _resamples(n: int):
    """Bootstrap resamples of n seeds: indices, shape (BOOTSTRAP_RESAMPLES, n), from a fixed RNG seed. Every
    statistic of a row uses the same resamples: the seeds are resampled jointly."""
    import numpy as np

    return np.random.default_rng(BOOTSTRAP_SEED).integers(0, n, size=(BOOTSTRAP_RESAMPLES, n))


def seed_statistics(values: list[float | None]) -> tuple[float | None, float | None, list[float] | None]:
    """(mean, sample standard deviation, percentile-bootstrap 95% interval) of one value per seed.

    Any None (a missing cell) -> all None; one seed -> (value, None, None): no spread can be estimated."""
    if not values or any(v is None for v in values):
        return None, None, None
    mean = math.fsum(values) / len(values)
    if len(values) == 1:
        return mean, None, None
    import numpy as np

    means = np.asarray(values, dtype=float)[_resamples(len(values))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return mean, statistics.stdev(values), [float(low), float(high)]


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
    """Every cell the report needs: each (intermediate task, budget) with its seeds (`expected` None: every seed
    seen anywhere), crossed with the same (task, language) pairs, so the rows stay comparable: a pair that
    some row lacks counts as missing there. A task that a row gives as `avg` is expected there as `avg` only;
    a row that gives nothing for a task that others give only as `avg` is missing `avg`."""
    if expected is None:
        given = set(values)
        all_seeds = {c.seed for c in given}
        seeds = {(c.intermediate_task, c.budget): all_seeds for c in given}
    else:
        given = {_check_cell(cell, f"expected cell {i}") for i, cell in enumerate(expected, 1)}
        for cell in sorted(values, key=_cell_key):
            if cell not in given:
                raise XferError(f"result for {cell.intermediate_task}@{cell.budget} {cell.label()} is not an "
                                f"expected cell of this sweep")
        seeds = {}
        for c in given:
            seeds.setdefault((c.intermediate_task, c.budget), set()).add(c.seed)
    kinds: dict[tuple, set[bool]] = {}
    for c in given:
        kinds.setdefault((c.intermediate_task, c.budget, c.target_task), set()).add(c.language == AVG)
    for run, kind in sorted(kinds.items()):
        if len(kind) == 2:
            raise XferError(_mixing(run))
    per_language: dict[str, set[str]] = {}
    for c in given:
        langs = per_language.setdefault(c.target_task, set())
        if c.language != AVG:
            langs.add(c.language)
    out = set()
    for (itask, budget), ss in seeds.items():
        for task, langs in per_language.items():
            if kinds.get((itask, budget, task)) == {True} or not langs:
                langs = {AVG}
            out |= {Cell(itask, budget, s, task, lang) for s in ss for lang in langs}
    return out


def table_cells(rows: Iterable[dict]) -> list[Cell]:
    """The cells one results table implies on its own: each of its (intermediate task, budget) rows with every
    seed that the table uses, on every (task, language) pair it has. Given as expected cells for several tables
    reported together, each table keeps its own seeds (published numbers are usually seed 0)."""
    clean = [_check_row(row, f"result row {i}") for i, row in enumerate(rows, 1)]
    return sorted(_expected_cells(_cells(clean), None), key=_cell_key)


def _cell_key(cell: Cell) -> tuple:
    return (cell.intermediate_task, cell.budget, cell.seed, cell.target_task, cell.language)


def _pair_key(pair: tuple[str, str]) -> tuple:
    return (_TASK_ORDER[pair[0]], pair[1])


def _partial_label(entry: dict) -> str:
    missing = ", ".join(entry["missing"])
    n_tasks = f"{len(entry['tasks'])} of {len(TASK_METRICS)} tasks"
    if "categories" in entry:
        return f"partial ({len(entry['categories'])} of {len(CATEGORIES)} categories, {n_tasks}; missing: {missing})"
    return f"partial ({n_tasks}; missing: {missing})"


def _headline_value(out: dict, key: str) -> float | None:
    """The headline average as shown: the complete value, else the partial one (None if neither)."""
    return out[key] if out[key] is not None else out["partial"].get(key, {}).get("value")


def _summarize_run(itask: str, budget: int, run_cells: list[Cell], tasks: list[str], score,
                   low_resource: LowResourceSet, avg_tasks: list[str]) -> dict:
    """One row of the summary. `avg_tasks`: the tasks this row's own results give as `avg` (an `avg` cell that
    is only expected, because no row gives the task per language, is missing and feeds no low/high average)."""
    seeds = sorted({c.seed for c in run_cells})
    pairs = sorted({(c.target_task, c.language) for c in run_cells}, key=_pair_key)
    by_seed = {pair: [score(Cell(itask, budget, s, *pair)) for s in seeds] for pair in pairs}
    missing = sorted(Cell(itask, budget, s, *pair).label()
                     for pair, values in by_seed.items() for s, v in zip(seeds, values) if v is None)
    low_pairs = [p for p in pairs if p[1] in low_resource.languages]
    high_pairs = [p for p in pairs if p[1] not in low_resource.languages and p[1] not in (ENGLISH, AVG)]
    not_computed = {}
    if avg_tasks:
        reason = (f"{', '.join(avg_tasks)} given only as the task's average (language {AVG!r}), "
                  f"without per-language scores")
        not_computed = {"low_resource": reason, "high_resource": reason}
    else:
        if not low_pairs:
            not_computed["low_resource"] = "no low-resource language is evaluated"
        if not high_pairs:
            not_computed["high_resource"] = "no high-resource language is evaluated"

    per_seed = []  # each seed's own averages, computed before any statistic over seeds
    for i, seed in enumerate(seeds):
        lang = {pair: values[i] for pair, values in by_seed.items()}
        task_scores = {t: _mean([v for (pt, _), v in lang.items() if pt == t]) for t in tasks}
        per_seed.append({
            "seed": seed,
            "tasks": task_scores,
            "low_resource": None if "low_resource" in not_computed else _mean([lang[p] for p in low_pairs]),
            "high_resource": None if "high_resource" in not_computed else _mean([lang[p] for p in high_pairs]),
            "overall": _mean(list(task_scores.values())),
        })
    task_stats = {t: seed_statistics([ps["tasks"][t] for ps in per_seed]) for t in tasks}
    stats = {key: seed_statistics([ps[key] for ps in per_seed]) for key in ("low_resource", "high_resource",
                                                                               "overall")}
    task_scores = {t: task_stats[t][0] for t in tasks}
    head = headline(task_scores)
    covered = [t for t in tasks if task_scores[t] is not None]  # each seed's headline over the same tasks
    for ps in per_seed:
        seed_head = headline({t: ps["tasks"][t] for t in covered})
        ps.update({key: _headline_value(seed_head, key) for key in HEADLINES})
    stats.update({key: seed_statistics([ps[key] for ps in per_seed]) for key in HEADLINES})
    cells = [{"target_task": task, "language": lang, **dict(zip(("mean", "std", "ci95"), seed_statistics(values))),
              "per_seed": values} for (task, lang), values in by_seed.items()]
    task_languages: dict[str, list[str]] = {}
    for task, lang in pairs:
        task_languages.setdefault(task, []).append(lang)
    return {
        "intermediate_task": itask,
        "budget": budget,
        "tasks": task_scores,
        "low_resource": stats["low_resource"][0],
        "high_resource": stats["high_resource"][0],
        "overall": stats["overall"][0],
        "avg_over_tasks": head["avg_over_tasks"],
        "avg_over_categories": head["avg_over_categories"],
        "partial": {key: {**entry, "label": _partial_label(entry)} for key, entry in head["partial"].items()},
        "headline_missing": head["missing"],
        "seeds": seeds,
        "n_seeds": len(seeds),
        "std": {"tasks": {t: task_stats[t][1] for t in tasks}, **{k: v[1] for k, v in stats.items()}},
        "ci95": {"tasks": {t: task_stats[t][2] for t in tasks}, **{k: v[2] for k, v in stats.items()}},
        "per_seed": per_seed,
        "cells": cells,
        "task_languages": task_languages,
        "not_computed": not_computed,
        "missing": missing,
    }


STATISTICS_NOTE = (f"Each seed's averages (task scores, low-/high-resource, overall, headline) are computed "
                   f"first; the row gives their mean over seeds, the sample standard deviation (std) and a "
                   f"percentile-bootstrap 95% interval (ci95: {BOOTSTRAP_RESAMPLES:,} resamples of the seeds with "
                   f"replacement, RNG seed {BOOTSTRAP_SEED}). With one seed, std and ci95 are null.")


def summarize(rows: Iterable[dict], expected: Iterable[Cell] | None, low_resource: LowResourceSet) -> dict:
    """Per (intermediate task, budget): task scores, low-/high-resource and overall averages, XTREME's headline
    averages, statistics over seeds, missing cells. `expected` None: the full cross product of what the rows
    themselves show (see the module doc)."""
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
    gave_avg = {(c.intermediate_task, c.budget, c.target_task) for c in values if c.language == AVG}
    return {
        "low_resource": low_resource.to_json(),
        "statistics": STATISTICS_NOTE,
        "rows": [_summarize_run(itask, budget, run_cells, tasks, score, low_resource,
                                [t for t in tasks if (itask, budget, t) in gave_avg])
                 for (itask, budget), run_cells in sorted(runs.items())],
    }


# ------------------------------------------------------------------------------------------ rendering


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _fmt_std(value: float | None, std: float | None) -> str:
    return _fmt(value) if value is None or std is None else f"{value:.1f} ± {std:.1f}"


def _fmt_ci(ci: list[float] | None) -> str:
    return "—" if ci is None else f"[{ci[0]:.1f}, {ci[1]:.1f}]"


def _task_columns(summary: dict) -> list[str]:
    tasks: dict[str, None] = {}
    for row in summary["rows"]:
        tasks.update(dict.fromkeys(row["tasks"]))
    return list(tasks)


def _table_rows(summary: dict, with_std: bool = False) -> tuple[list[str], list[list[str]]]:
    tasks = _task_columns(summary)
    header = ["intermediate task", "budget", *tasks, "low-res", "high-res", "overall"]

    def cell(value, std):
        return _fmt_std(value, std) if with_std else _fmt(value)

    body = []
    for row in summary["rows"]:
        std = row.get("std", {})
        body.append([row["intermediate_task"], str(row["budget"]),
                     *(cell(row["tasks"].get(t), std.get("tasks", {}).get(t)) for t in tasks),
                     *(cell(row[k], std.get(k)) for k in ("low_resource", "high_resource", "overall"))])
    return header, body


def _criterion_sentence(summary: dict) -> str:
    low = summary["low_resource"]
    criterion = low["criterion"].strip().rstrip(".")
    if low["name"] == EXPLICIT:
        named = "an explicit list"
    else:
        named = f"preset `{low['name']}`; source: {low.get('source', '?')}"
    return (f"Low-resource languages ({named}): {criterion}: {', '.join(low['languages'])}; "
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


def _markdown_table(header: list[str], body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
            *("| " + " | ".join(cells) + " |" for cells in body)]


def _headline_cell(row: dict, key: str) -> str:
    value = _headline_value(row, key)
    if value is None:
        return "—"
    text = _fmt_std(value, row.get("std", {}).get(key))
    return text if row[key] is not None else f"{text} {row['partial'][key]['label']}"


def _body_markdown(summary: dict, heading: str) -> list[str]:
    """The tables and notes of one summary (the default selection, or the oracle section)."""
    rows = summary["rows"]
    multi = any(row["n_seeds"] > 1 for row in rows)
    lines = []
    seed_sets = {tuple(row["seeds"]) for row in rows}
    if len(seed_sets) == 1:
        lines += [f"Seeds averaged: {', '.join(map(str, next(iter(seed_sets))))}."]
    else:
        lines += ["Seeds differ between rows: " + "; ".join(
            f"{row['intermediate_task']}@{row['budget']}: {', '.join(map(str, row['seeds']))}" for row in rows) + "."]
    if multi:
        lines[-1] += (" \"x ± s\": mean over seeds ± sample standard deviation; each seed's averages are computed "
                      f"first, then the statistics over seeds. 95% intervals (percentile bootstrap over seeds, "
                      f"{BOOTSTRAP_RESAMPLES:,} resamples, fixed RNG seed) are in the interval table below.")
    if any(row["n_seeds"] == 1 for row in rows):
        lines[-1] += " A row with one seed has no standard deviation or interval."
    lines += ["", *_markdown_table(*_table_rows(summary, with_std=True)), ""]
    lines += [f"{heading} XTREME headline averages", ""]
    if heading == "##":  # the oracle section (###) refers to this
        lines += ["avg over tasks: XTREME's `all_task`, the mean of the nine task scores; avg over categories: the "
                  "leaderboard's \"Avg\", the mean over the four categories (" + "; ".join(
                      f"{c.replace('_', ' ')}: {', '.join(ts)}" for c, ts in CATEGORIES.items()) + "). Each is "
                  "given only when all nine tasks are present; otherwise the mean over what is present is given, "
                  "labelled partial, naming the missing tasks. \"overall\" in the table above is the mean of the task "
                  "scores this report covers.", ""]
    lines += _markdown_table(["intermediate task", "budget", "avg over tasks", "avg over categories"],
                             [[row["intermediate_task"], str(row["budget"]),
                               *(_headline_cell(row, key) for key in HEADLINES)] for row in rows])
    lines.append("")
    if multi:
        tasks = _task_columns(summary)
        lines += [f"{heading} 95% intervals over seeds", ""]
        lines += _markdown_table(
            ["intermediate task", "budget", *tasks, "low-res", "high-res", "overall"],
            [[row["intermediate_task"], str(row["budget"]), *(_fmt_ci(row["ci95"]["tasks"].get(t)) for t in tasks),
              *(_fmt_ci(row["ci95"][k]) for k in ("low_resource", "high_resource", "overall"))] for row in rows])
        lines += ["", "Per-language means, standard deviations and intervals: `summary.json`, `rows[].cells`.", ""]
    not_computed = [f"- {row['intermediate_task']} @ {row['budget']}: {key.replace('_', '-')}: {reason}"
                    for row in rows for key, reason in row.get("not_computed", {}).items()]
    notes, languages = [], {}
    for row in rows:
        for task, langs in row.get("task_languages", {}).items():
            languages.setdefault(task, {}).setdefault(tuple(langs), []).append(
                f"{row['intermediate_task']}@{row['budget']}")
    for task, variants in languages.items():
        for langs, where in variants.items():
            scope = "" if len(variants) == 1 else f" ({', '.join(where)})"
            if langs == (AVG,):
                notes.append(f"- {task}{scope}: the published average over XTREME's {len(TASK_LANGUAGES[task])} "
                             f"languages (language `{AVG}`)")
            else:
                notes.append(f"- {task}{scope}: {len(langs)} language(s): {' '.join(langs)}")
    lines += [f"{heading} Languages", "", "The languages each task score covers:", "", *notes, ""]
    if not_computed:
        lines += ["Averages not computed (null in summary.json), and why:", "", *not_computed, ""]
    lines += [f"{heading} Missing cells", ""]
    missing = [row for row in rows if row["missing"]]
    if missing:
        lines += [f"- {row['intermediate_task']} @ {row['budget']}: {', '.join(row['missing'])}" for row in missing]
    else:
        lines.append("None.")
    lines.append("")
    return lines


def render_markdown(summary: dict) -> str:
    lines = [f"# {summary.get('title', 'xfer sweep')}", "", _criterion_sentence(summary), "",
             "Zero-shot scores in percent, English-dev-selected checkpoints (the default model selection). Task "
             "score as in XTREME: the unweighted mean over the task's languages of the per-language score (QA: "
             "(EM + F1) / 2); overall: the mean of the task scores. \"—\": a cell it needs is missing; nothing is "
             "averaged over a subset.", ""]
    lines += _body_markdown(summary, "##")
    oracle = summary.get("oracle")
    if oracle:
        lines += ["## Oracle selection", "", f"**{ORACLE_LABEL[0].upper() + ORACLE_LABEL[1:]}.** For each target "
                  "language, the checkpoint of the target phase with the best score on that language's dev set "
                  f"(rows in `{ORACLE_FILE}`). Keung et al. 2020: English dev accuracy is a poor guide to "
                  "target-language accuracy; the gap between the two selections shows how much is at stake. "
                  "Chosen on dev data, it is usually, not necessarily, above the default on the test sets. Same "
                  "averages as above.", ""]
        default_used = oracle.get("default_selection_used", {})
        if default_used:
            lines += ["These use the default (English-dev) selection, having no target-language dev set:", "",
                      *(f"- {reason}: {', '.join(items)}" for reason, items in default_used.items()), ""]
        lines += _body_markdown(oracle, "###")
    lines += ["Low- and high-resource averages against the step budget, with their 95% intervals over seeds: "
              "[plot.png](plot.png)", ""]
    return "\n".join(lines)


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


def write_report(rows: Iterable[dict], expected: Iterable[Cell] | None, low_resource: LowResourceSet, out_dir,
                 title: str, oracle_rows: Iterable[dict] | None = None, oracle_expected: Iterable[Cell] | None = None,
                 default_selection_used: Mapping[str, list[str]] | None = None) -> dict:
    """Write results.csv, summary.md, summary.json and plot.png into `out_dir`, all or none: every file is
    written in a temporary folder beside it first and moved in only once all exist. Returns the summary.

    `oracle_rows` (with their own `oracle_expected` cells): the same cells under the oracle selection, written
    to results_oracle.csv and summarized in the summary's "oracle" section; `default_selection_used`:
    {reason: ["task/lang", ...]} for the cells there that had no target-language dev set."""
    rows = list(rows)
    summary = {"title": title, **summarize(rows, expected, low_resource)}
    if oracle_rows is not None:
        oracle_rows = list(oracle_rows)
        oracle = summarize(oracle_rows, oracle_expected, low_resource)
        summary["oracle"] = {"label": ORACLE_LABEL, "file": ORACLE_FILE,
                             "default_selection_used": dict(default_selection_used or {}), "rows": oracle["rows"]}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.report-"))
    try:
        write_results_csv(rows, tmp / "results.csv")
        names = list(REPORT_FILES)
        if oracle_rows is not None:
            write_results_csv(oracle_rows, tmp / ORACLE_FILE)
            names.append(ORACLE_FILE)
        (tmp / "summary.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False, allow_nan=False) + "\n",
                                          encoding="utf-8")
        (tmp / "summary.md").write_text(render_markdown(summary), encoding="utf-8")
        render_plot(summary, tmp / "plot.png")
        for name in names:
            os.replace(tmp / name, out / name)
        if oracle_rows is None and (out / ORACLE_FILE).exists():
            (out / ORACLE_FILE).unlink()  # from an earlier report: it would no longer match results.csv
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary
