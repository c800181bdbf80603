"""The summary: per (intermediate task, budget), XTREME-style task scores, low-/high-resource and overall
averages, XTREME's headline averages, statistics over seeds and missing cells.

A cell's score is the task's metric, or for the QA tasks (EM + F1) / 2. For each seed, a task's score is the
unweighted mean over its languages; the low-resource average is the mean over every (task, language) pair whose
language is in the low-resource set, the high-resource average the same over the other languages except English
(the training language), and overall the mean of the task scores. Each seed's averages are computed first; the
report gives their mean over seeds, the sample standard deviation and a percentile-bootstrap 95% interval.
XTREME's headline averages (`xfer.xtreme.headline`) are given beside them, labelled partial when tasks are absent.
Any average that needs a missing cell is None: nothing is ever averaged over a subset of what was planned.

A task given as `avg` (a published average without per-language scores) counts for the task score and the
headline averages but not for the low-/high-resource averages, which are then None with the reason given.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

from xfer.errors import XferError
from xfer.report.stats import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, seed_statistics
from xfer.report.table import (AVG, ENGLISH, TASK_METRICS, _TASK_ORDER, Cell, LowResourceSet, _expected_cells,
                               _pair_key, cell_values)
from xfer.xtreme import CATEGORIES, headline

ORACLE_LABEL = ("oracle selection on target-language dev sets — an upper bound, not a model-selection method "
                "usable without target-language data")
HEADLINES = ("avg_over_tasks", "avg_over_categories")


def _mean(values: list[float | None]) -> float | None:
    """The mean, or None when any value is None or there is nothing to average."""
    if not values or any(v is None for v in values):
        return None
    return math.fsum(values) / len(values)


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
                   low_resource: LowResourceSet, avg_tasks: list[str], reasons: Mapping[Cell, str]) -> dict:
    """One row of the summary. `avg_tasks`: the tasks this row's own results give as `avg` (an `avg` cell that
    is only expected, because no row gives the task per language, is missing and feeds no low/high average);
    `reasons`: why a cell is missing, where that is known."""
    seeds = sorted({c.seed for c in run_cells})
    pairs = sorted({(c.target_task, c.language) for c in run_cells}, key=_pair_key)
    by_seed = {pair: [score(Cell(itask, budget, s, *pair)) for s in seeds] for pair in pairs}
    missing_cells = sorted((Cell(itask, budget, s, *pair) for pair, values in by_seed.items()
                            for s, v in zip(seeds, values) if v is None), key=Cell.label)
    missing = [c.label() for c in missing_cells]
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
        "missing_reasons": {c.label(): reasons[c] for c in missing_cells if c in reasons},
    }


STATISTICS_NOTE = (f"Each seed's averages (task scores, low-/high-resource, overall, headline) are computed "
                   f"first; the row gives their mean over seeds, the sample standard deviation (std) and a "
                   f"percentile-bootstrap 95% interval (ci95: {BOOTSTRAP_RESAMPLES:,} resamples of the seeds with "
                   f"replacement, RNG seed {BOOTSTRAP_SEED}). With one seed, std and ci95 are null.")


def summarize(rows: Iterable[dict], expected: Iterable[Cell] | None, low_resource: LowResourceSet,
              shared_baseline: Iterable[str] = (), missing_reasons: Mapping[Cell, str] | None = None) -> dict:
    """Per (intermediate task, budget): task scores, low-/high-resource and overall averages, XTREME's headline
    averages, statistics over seeds, missing cells (with `missing_reasons[cell]` where given). `expected` None:
    the full cross product of what the rows themselves show (see the module doc). `shared_baseline`: the
    intermediate tasks whose budget-0 rows are one shared run, which must be identical (a sweep's)."""
    values = cell_values(rows, shared_baseline)
    cells = _expected_cells(values, expected)
    if not cells:
        raise XferError("nothing to report: no result rows and no expected cells")

    reasons = dict(missing_reasons or {})
    for cell in cells:
        given = values.get(cell, {})
        absent = [m for m in TASK_METRICS[cell.target_task] if m not in given]
        if given and absent and cell not in reasons:
            reasons[cell] = f"{', '.join(absent)} not given ({', '.join(given)} only)"

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
                                [t for t in tasks if (itask, budget, t) in gave_avg], reasons)
                 for (itask, budget), run_cells in sorted(runs.items())],
    }

