"""Differences from the budget-0 baseline, with 95% intervals and p-values from a paired bootstrap over test
examples (Koehn 2004; Dror et al. 2018), and the dose-response of each intermediate task.

For each intermediate task and budget b > 0 (a summary row) and its budget-0 row, the difference of every cell
(target task, language), task score, language (the mean over the tasks that evaluate it), low-/high-resource
and overall average and headline average. The point estimate is the difference of the summary's own values.
The interval comes from resampling: in each of `resamples` replicates every (task, language) draws its test
examples with replacement, on its own (its own RNG stream, from the fixed seed and the task and language), and
the same draw scores both runs (the pairing); corpus-level metrics (F1 of entities or of BUCC pairs) are
recomputed from the resampled per-example counts (`xfer.example_scores`); each average is formed inside each
replicate from its parts. With several seeds the seeds are resampled too (each replicate draws the seeds with
replacement, jointly for the trained runs and the baseline when they have the same seeds, and every task and
language of a replicate uses the same seed draw); each seed's own difference against the baseline's same seed
is given beside (`per_seed`). The interval is the 2.5-97.5 percentile range of the replicates' differences;
the p-value is two-sided: twice the smaller share of replicates on either side of 0, counting the observed
sample ((1 + count) / (1 + resamples)), at most 1; it is below 0.05 about when the interval excludes 0.

The replicates are the same for every row (common random numbers), so the rows of one intermediate task can be
compared with each other: the dose-response fits, inside each replicate, the least-squares slope of the
difference against log10(budget) over the budgets b > 0 (points per tenfold more steps), and names the budget
with the best mean difference (budget 0 counting as 0) with the share of replicates in which it is best.

Each resample is a matrix product: multinomial counts of the examples (resamples x examples) times the
per-example values of every run (examples x runs), so a sweep's ~100M scored examples take minutes; identical
per-example values share one column, which makes the difference of two identical runs exactly 0 in every
replicate. A cell without usable per-example scores (none recorded, unreadable, or not reproducing its job's
metrics) has the point estimate without an interval, and its reason is listed.

Written here rather than with `scipy.stats.bootstrap` (the tests' reference): scipy draws anew for each call and
gathers every sample array per replicate, while the report needs one draw per (task, language) shared by all of a
sweep's runs, the replicates of every (task, language) kept to form averages and slopes per replicate, and the
seeds resampled jointly with the baseline's; one counts-matrix product per (task, language) does all of that.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from xfer import example_scores as E
from xfer.report.summary import _headline_value
from xfer.report.table import AVG, ENGLISH, TASK_METRICS, Cell, LowResourceSet
from xfer.xtreme import CATEGORIES

NO_EXAMPLES = "no per-example scores (job written before they were recorded)"
FROM_TABLE = "no per-example scores (a results table)"
TOLERANCE = 1e-6  # percent: per-example scores must give the job's metrics to within rounding
CHUNK = 256  # resamples per matrix product: bounds the counts matrix to CHUNK x examples
GROUPS = ("low_resource", "high_resource", "overall")
HEADLINES = ("avg_over_tasks", "avg_over_categories")

ScoresOf = Callable[[Cell], "E.ExampleScores | str"]  # a cell's per-example scores, or why there are none


@dataclass(frozen=True)
class Bootstrap:
    """The paired bootstrap's settings (the sweep config's `report:` section)."""

    resamples: int = 2000
    seed: int = 0

    def method(self) -> str:
        return (f"paired bootstrap over test examples: {self.resamples:,} resamples, RNG seed {self.seed}; each "
                f"task and language resampled on its own examples, the same draw for both runs; F1 recomputed "
                f"from the resampled counts; averages formed per resample; seeds resampled too when there are "
                f"several; 95% percentile interval")


P_VALUE = ("two-sided: twice the smaller share of resampled differences at or beyond 0 on either side, counting "
           "the observed sample ((1 + count) / (1 + resamples)), at most 1")
SLOPE_UNIT = "points per tenfold more intermediate-task steps (least squares on log10(budget), budgets > 0)"


def _stream(*parts) -> list[int]:
    """A stable RNG seed sequence from the bootstrap seed and names (crc32 of each name)."""
    return [p if isinstance(p, int) else zlib.crc32(str(p).encode("utf-8")) for p in parts]


@dataclass
class _Comparison:
    """One trained row against its budget-0 row, for the given seeds of each (the pooled comparison: all)."""

    row: dict
    base: dict
    seeds: tuple[int, ...]
    base_seeds: tuple[int, ...]
    draws: dict = field(default_factory=dict)  # (task, lang) -> resampled differences, or why there are none
    unavailable: dict = field(default_factory=dict)  # reason -> labels of the cells without usable scores

    @property
    def itask(self) -> str:
        return self.row["intermediate_task"]

    @property
    def budget(self) -> int:
        return self.row["budget"]

    def pairs(self) -> list[tuple[str, str]]:
        return [(c["target_task"], c["language"]) for c in self.row["cells"]]


class _Resampler:
    def __init__(self, boot: Bootstrap):
        self.boot = boot
        self._seed_weights: dict[tuple[int, ...], np.ndarray] = {}

    def counts(self, task: str, lang: str, n: int):
        """Multinomial counts of n examples, CHUNK resamples at a time: (chunk, n) float64."""
        rng = np.random.default_rng(_stream(self.boot.seed, task, lang))
        for start in range(0, self.boot.resamples, CHUNK):
            rows = min(CHUNK, self.boot.resamples - start)
            picks = rng.integers(0, n, size=(rows, n)) + (np.arange(rows) * n)[:, None]
            yield np.bincount(picks.ravel(), minlength=rows * n).reshape(rows, n).astype(np.float64)

    def seed_weights(self, seeds: tuple[int, ...]) -> np.ndarray:
        """(resamples, len(seeds)) weights summing to 1 per resample: the seeds drawn with replacement; the same
        draw for the same seeds everywhere."""
        if seeds not in self._seed_weights:
            k, b = len(seeds), self.boot.resamples
            if k == 1:
                weights = np.ones((b, 1))
            else:
                rng = np.random.default_rng(_stream(self.boot.seed, "seeds", *seeds))
                picks = rng.integers(0, k, size=(b, k)) + (np.arange(b) * k)[:, None]
                weights = np.bincount(picks.ravel(), minlength=b * k).reshape(b, k) / k
            self._seed_weights[seeds] = weights
        return self._seed_weights[seeds]


def _checked(cell: Cell, got, metrics: Mapping[str, float]) -> E.ExampleScores | str:
    """The cell's per-example scores if they are its task's and reproduce its job's metrics, else why not."""
    if isinstance(got, str):
        return got
    if (got.task, got.language) != (cell.target_task, cell.language):
        return f"per-example scores of {got.task}/{got.language}, not {cell.target_task}/{cell.language}"
    mine = E.metrics(got)
    for name in TASK_METRICS[cell.target_task]:
        if name not in mine or name not in metrics or not abs(mine[name] - metrics[name]) <= TOLERANCE:
            return (f"per-example scores disagree with the job's results ({name} {mine.get(name)!r} "
                    f"vs {metrics.get(name)!r})")
    return got


def _cell_scores(task: str, lang: str, loaded: dict[Cell, E.ExampleScores], resampler: _Resampler
                 ) -> dict[Cell, np.ndarray]:
    """Each cell's task score (the mean of the task's metrics) in every resample of its examples."""
    out: dict[Cell, np.ndarray] = {}
    by_n: dict[int, list[Cell]] = {}
    for cell, scores in loaded.items():
        by_n.setdefault(scores.n, []).append(cell)
    for n, cells in by_n.items():
        columns: dict[tuple, int] = {}  # identical per-example values share one column
        where: dict[Cell, dict[str, int]] = {}
        data = []
        for cell in cells:
            where[cell] = {}
            for name, values in loaded[cell].arrays.items():
                values = np.asarray(values, dtype=np.float64)
                key = (hashlib.sha256(values.tobytes()).hexdigest(),)
                if key not in columns:
                    columns[key] = len(data)
                    data.append(values)
                where[cell][name] = columns[key]
        matrix = np.stack(data, axis=1)  # (examples, distinct columns)
        sums = np.concatenate([counts @ matrix for counts in resampler.counts(task, lang, n)])
        for cell in cells:
            metrics = E.metrics_of_sums(loaded[cell].kind, {k: sums[:, i] for k, i in where[cell].items()}, n)
            names = TASK_METRICS[task]
            out[cell] = sum(metrics[m] for m in names) / len(names)
    return out


def _resample_pair(task: str, lang: str, comparisons: list[_Comparison], scores_of: ScoresOf | None,
                   values: Mapping[Cell, Mapping[str, float]], resampler: _Resampler) -> None:
    """Fill every comparison's resampled difference for (task, lang), or the reason there is none."""
    mine = [c for c in comparisons if (task, lang) in c.pairs()]
    needed: dict[Cell, str] = {}  # cell -> its label in the lists of unavailable cells
    for comp in mine:
        for seed in comp.seeds:
            needed.setdefault(Cell(comp.itask, comp.budget, seed, task, lang), f"{task}/{lang}/seed={seed}")
        for seed in comp.base_seeds:
            needed.setdefault(Cell(comp.itask, 0, seed, task, lang), f"baseline {task}/{lang}/seed={seed}")
    got = {cell: FROM_TABLE if scores_of is None else _checked(cell, scores_of(cell), values.get(cell, {}))
           for cell in needed}
    loaded = {cell: s for cell, s in got.items() if not isinstance(s, str)}
    resampled = _cell_scores(task, lang, loaded, resampler) if loaded else {}
    for comp in mine:
        trained = [Cell(comp.itask, comp.budget, s, task, lang) for s in comp.seeds]
        base = [Cell(comp.itask, 0, s, task, lang) for s in comp.base_seeds]
        reasons = {}
        for cell in trained + base:
            if isinstance(got[cell], str):
                reasons.setdefault(got[cell], []).append(needed[cell])
        if not reasons:
            reference = {(got[c].n, got[c].ids_sha256) for c in base}
            for cell in trained + base:
                if {(got[cell].n, got[cell].ids_sha256)} != reference:
                    reasons.setdefault("test examples differ from the baseline's", []).append(needed[cell])
        if reasons:
            for reason, labels in reasons.items():
                comp.unavailable.setdefault(reason, []).extend(labels)
            comp.draws[(task, lang)] = next(iter(reasons))
            continue
        a, c = resampler.seed_weights(comp.seeds), resampler.seed_weights(comp.base_seeds)
        comp.draws[(task, lang)] = ((np.stack([resampled[x] for x in trained], axis=1) * a).sum(axis=1)
                                    - (np.stack([resampled[x] for x in base], axis=1) * c).sum(axis=1))


# --------------------------------------------------------------------------------------- statistics


def _mean_draws(parts: list) -> np.ndarray | str:
    for part in parts:
        if isinstance(part, str):
            return part
    return np.mean(np.stack(parts), axis=0)


def _stat(delta: float | None, draws) -> dict:
    """{"delta", "ci95", "p_value"} (and "reason" when there is no interval)."""
    out = {"delta": delta, "ci95": None, "p_value": None}
    if delta is None:
        out["reason"] = "a cell it needs is missing"
    elif isinstance(draws, str) or draws is None:
        out["reason"] = draws or "not resampled"
    else:
        low, high = np.percentile(draws, [2.5, 97.5])
        below, above = int(np.count_nonzero(draws <= 0)), int(np.count_nonzero(draws >= 0))
        out["ci95"] = [float(low), float(high)]
        out["p_value"] = min(1.0, 2 * (1 + min(below, above)) / (1 + len(draws)))
    return out


def _difference(a, b) -> float | None:
    return None if a is None or b is None else a - b


def _view(row: dict, seed: int | None) -> dict:
    """A row's values: the means over its seeds (seed None), or one seed's own."""
    if seed is None:
        return {"cells": {(c["target_task"], c["language"]): c["mean"] for c in row["cells"]},
                "tasks": row["tasks"], **{k: row[k] for k in GROUPS},
                **{k: _headline_value(row, k) for k in HEADLINES}}
    i = row["seeds"].index(seed)
    ps = row["per_seed"][i]
    return {"cells": {(c["target_task"], c["language"]): c["per_seed"][i] for c in row["cells"]},
            "tasks": ps["tasks"], **{k: ps[k] for k in GROUPS + HEADLINES}}


def _headline_parts(row: dict, key: str) -> list[str] | None:
    """The tasks (avg_over_tasks) or categories (avg_over_categories) the row's shown headline value covers."""
    if row[key] is not None:
        return list(TASK_METRICS) if key == "avg_over_tasks" else list(CATEGORIES)
    entry = row["partial"].get(key)
    if entry is None:
        return None
    return entry["tasks"] if key == "avg_over_tasks" else entry["categories"]


def _summarize_comparison(comp: _Comparison, low: LowResourceSet, seed: int | None) -> dict:
    t, b = _view(comp.row, seed), _view(comp.base, seed)
    pairs = comp.pairs()
    cell_delta = {p: _difference(t["cells"].get(p), b["cells"].get(p)) for p in pairs}
    draws = comp.draws
    tasks = list(comp.row["tasks"])
    task_draws = {task: _mean_draws([draws[p] for p in pairs if p[0] == task]) for task in tasks}
    out = {"cells": [{"target_task": task, "language": lang, **_stat(cell_delta[(task, lang)], draws[(task, lang)])}
                     for task, lang in pairs],
           "tasks": {task: _stat(_difference(t["tasks"][task], b["tasks"].get(task)), task_draws[task])
                     for task in tasks}}
    languages: dict[str, list] = {}
    for task, lang in pairs:
        if lang != AVG:
            languages.setdefault(lang, []).append((task, lang))
    out["languages"] = {}
    for lang, mine in languages.items():
        deltas = [cell_delta[p] for p in mine]
        delta = None if any(d is None for d in deltas) else math.fsum(deltas) / len(deltas)
        out["languages"][lang] = {"tasks": [task for task, _ in mine],
                                  **_stat(delta, _mean_draws([draws[p] for p in mine]))}
    groups = {"low_resource": [p for p in pairs if p[1] in low.languages],
              "high_resource": [p for p in pairs if p[1] not in low.languages and p[1] not in (ENGLISH, AVG)]}
    for key, members in groups.items():
        stat = _stat(_difference(t[key], b[key]), _mean_draws([draws[p] for p in members]) if members else None)
        if key in comp.row.get("not_computed", {}):
            stat["reason"] = comp.row["not_computed"][key]
        out[key] = stat
    out["overall"] = _stat(_difference(t["overall"], b["overall"]), _mean_draws(list(task_draws.values())))
    for key in HEADLINES:
        parts = _headline_parts(comp.row, key)
        if parts is None or parts != _headline_parts(comp.base, key):
            out[key] = _stat(None, None)
            continue
        if key == "avg_over_tasks":
            resampled = _mean_draws([task_draws[task] for task in parts])
        else:
            resampled = _mean_draws([_mean_draws([task_draws[task] for task in CATEGORIES[c]]) for c in parts])
        out[key] = _stat(_difference(t[key], b[key]), resampled)
        if comp.row[key] is None:
            out[key]["label"] = comp.row["partial"][key]["label"]
    return out


def _group_draws(comp: _Comparison, low: LowResourceSet, key: str):
    """The resampled differences of a low/high-resource or overall average (for the dose-response)."""
    pairs = comp.pairs()
    if key == "overall":
        tasks = list(comp.row["tasks"])
        return _mean_draws([_mean_draws([comp.draws[p] for p in pairs if p[0] == task]) for task in tasks])
    members = [p for p in pairs if (p[1] in low.languages) == (key == "low_resource") and p[1] not in (ENGLISH, AVG)]
    return _mean_draws([comp.draws[p] for p in members]) if members else "no language in the group"


def _slopes(budgets: list[int], values: np.ndarray) -> np.ndarray:
    """Least-squares slopes of values (..., budgets) against log10(budget)."""
    x = np.log10(np.asarray(budgets, dtype=np.float64))
    xc = x - x.mean()
    return ((values - values.mean(axis=-1, keepdims=True)) @ xc) / (xc @ xc)


def _dose_response(pooled: list[_Comparison], low: LowResourceSet, rows: dict) -> list[dict]:
    out = []
    for itask in sorted({c.itask for c in pooled}):
        mine = sorted((c for c in pooled if c.itask == itask), key=lambda c: c.budget)
        for key in GROUPS:
            deltas = [rows[(c.itask, c.budget)][key]["delta"] for c in mine]
            draws = [_group_draws(c, low, key) for c in mine]
            budgets = [c.budget for c in mine]
            entry = {"intermediate_task": itask, "group": key, "budgets": budgets, "deltas": deltas,
                     "slope": None, "slope_ci95": None, "slope_p_value": None,
                     "best_budget": None, "best_delta": None, "best_share": None}
            if any(d is None for d in deltas):
                entry["reason"] = "a budget's difference needs a missing cell"
                out.append(entry)
                continue
            best = max(range(len(deltas) + 1), key=lambda i: ([0.0] + deltas)[i])  # ties: the smaller budget
            entry["best_budget"], entry["best_delta"] = ([0] + budgets)[best], ([0.0] + deltas)[best]
            resampled = None if any(isinstance(d, str) for d in draws) else np.stack(draws, axis=1)
            if resampled is not None:
                with_zero = np.concatenate([np.zeros((len(resampled), 1)), resampled], axis=1)
                entry["best_share"] = float(np.mean(np.argmax(with_zero, axis=1) == best))
            if len(budgets) < 2:
                entry["reason"] = "a slope needs at least two budgets above 0"
            else:
                stat = _stat(float(_slopes(budgets, np.asarray(deltas))),
                             None if resampled is None else _slopes(budgets, resampled))
                entry.update(slope=stat["delta"], slope_ci95=stat["ci95"], slope_p_value=stat["p_value"])
                if resampled is None:
                    entry["reason"] = next(d for d in draws if isinstance(d, str))
            out.append(entry)
    return out


def paired_section(summary: dict, values: Mapping[Cell, Mapping[str, float]], scores_of: ScoresOf | None,
                   low: LowResourceSet, boot: Bootstrap = Bootstrap()) -> dict | None:
    """The summary's "paired" section (None when no row has a budget above 0). `values`: {cell: {metric:
    value}} of the result rows (per-example scores must reproduce them); `scores_of(cell)`: the cell's
    per-example scores or the reason there are none (None: rows from a results table, which have none)."""
    rows = {(r["intermediate_task"], r["budget"]): r for r in summary["rows"]}
    trained = [r for key, r in sorted(rows.items()) if key[1] > 0]
    if not trained:
        return None
    no_baseline = [f"{r['intermediate_task']}@{r['budget']}" for r in trained
                   if (r["intermediate_task"], 0) not in rows]
    pooled, per_seed = [], []
    for row in trained:
        base = rows.get((row["intermediate_task"], 0))
        if base is None:
            continue
        pooled.append(_Comparison(row, base, tuple(row["seeds"]), tuple(base["seeds"])))
        if len(row["seeds"]) > 1:
            per_seed += [_Comparison(row, base, (s,), (s,)) for s in row["seeds"] if s in base["seeds"]]
    resampler = _Resampler(boot)
    comparisons = pooled + per_seed
    pairs = sorted({p for c in comparisons for p in c.pairs()})
    for task, lang in pairs:
        _resample_pair(task, lang, comparisons, scores_of, values, resampler)
    out_rows, by_key = [], {}
    for comp in pooled:
        entry = {"intermediate_task": comp.itask, "budget": comp.budget, "seeds": list(comp.seeds),
                 "baseline_seeds": list(comp.base_seeds), **_summarize_comparison(comp, low, None),
                 "unavailable": {reason: sorted(set(labels)) for reason, labels in comp.unavailable.items()}}
        mine = [c for c in per_seed if (c.itask, c.budget) == (comp.itask, comp.budget)]
        if mine:
            entry["per_seed"] = [{"seed": c.seeds[0], **_summarize_comparison(c, low, c.seeds[0])} for c in mine]
        out_rows.append(entry)
        by_key[(comp.itask, comp.budget)] = entry
    return {"method": boot.method(), "resamples": boot.resamples, "rng_seed": boot.seed, "p_value": P_VALUE,
            "slope_unit": SLOPE_UNIT, "no_baseline": no_baseline, "rows": out_rows,
            "dose_response": _dose_response(pooled, low, by_key)}
