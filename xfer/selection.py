"""Model selection in the target phase: when to evaluate, and which evaluation point each selection picks.

The target phase is evaluated at a few points of its training (the end of every epoch, at most
`max_points` of them, evenly spread; the last step always). The default selection takes the point with the best
English dev score. Because English dev accuracy is a poor guide to target-language accuracy (Keung et al.
2020), the report also gives the oracle selection: for each language, the point with the best score on that
language's own dev set - an upper bound, not a method usable without target-language data. Ties go to the
earlier point in both. A point's dev score is the mean of the task's metrics (QA: (EM + F1) / 2). A target job
that trains once for several tasks (XQuAD and MLQA, both trained on SQuAD) shares one default selection: its
criterion is the mean over those tasks of each task's dev score on the shared English dev set.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

DEFAULT_MAX_POINTS = 5


def evaluation_points(total_steps: int, steps_per_epoch: int, max_points: int = DEFAULT_MAX_POINTS) -> list[int]:
    """The steps after which to evaluate: each epoch's end (the last, possibly partial, epoch ends at
    `total_steps`); when there are more than `max_points`, that many evenly spread ones, the last included."""
    if total_steps < 1 or steps_per_epoch < 1 or max_points < 1:
        raise ValueError(f"evaluation_points({total_steps}, {steps_per_epoch}, {max_points}): all must be >= 1")
    ends = sorted({min(k * steps_per_epoch, total_steps) for k in range(1, math.ceil(total_steps / steps_per_epoch)
                                                                           + 1)})
    if len(ends) <= max_points:
        return ends
    n = len(ends)
    return [ends[math.ceil(i * n / max_points) - 1] for i in range(1, max_points + 1)]


def dev_score(metrics: Mapping[str, float], names: Sequence[str]) -> float:
    """The selection criterion of one evaluation: the mean of the task's metrics."""
    return math.fsum(float(metrics[name]) for name in names) / len(names)


def group_dev_score(dev: Mapping[str, Mapping[str, float]], metrics: Mapping[str, Sequence[str]]) -> float:
    """The criterion of one evaluation of a group of tasks trained once: the mean over the tasks (`metrics`:
    task -> its metric names) of each task's dev score (`dev`: task -> its scores); for one task, its score."""
    return math.fsum(dev_score(dev[task], names) for task, names in metrics.items()) / len(metrics)


def best_point(scores: Sequence[float | None]) -> int | None:
    """The index of the highest score, the earliest among equals; None entries are skipped; None if all are."""
    best = None
    for i, score in enumerate(scores):
        if score is not None and (best is None or score > scores[best]):
            best = i
    return best


def select(points: Sequence[int], english_dev: Sequence[float] | None,
           language_dev: Mapping[str, Sequence[float]]) -> dict:
    """{"default": step, "oracle": {lang: step}} for evaluations at `points` (steps, in order).

    `english_dev`: the English dev score at each point (None: no English dev set -> the last point).
    `language_dev`: for each language that has a dev set, its dev score at each point; a language without
    one is absent here and absent from "oracle"."""
    if not points:
        raise ValueError("no evaluation points")
    for name, scores in [("english_dev", english_dev), *language_dev.items()]:
        if scores is not None and len(scores) != len(points):
            raise ValueError(f"{name}: {len(scores)} scores for {len(points)} points")
    default = len(points) - 1 if english_dev is None else best_point(english_dev)
    if default is None:
        raise ValueError("english_dev has no score")
    oracle = {}
    for lang, scores in language_dev.items():
        index = best_point(scores)
        if index is not None:
            oracle[lang] = points[index]
    return {"default": points[default], "oracle": oracle}


def still_choosable(steps: Sequence[int], english_dev: Sequence[float] | None,
                    language_dev: Mapping[str, Sequence[float]]) -> set[int]:
    """The points evaluated so far (`steps`) that a selection may still choose once later points are
    evaluated: the best so far on the English dev set and on each language's dev set. A later point can only
    displace a best point (ties go to the earlier one), never revive a passed-over one, so the models of all
    other points can be dropped. Without an English dev set the default is the last point, the final model,
    which needs no keeping."""
    kept = set()
    if english_dev is not None:
        best = best_point(english_dev)
        if best is not None:
            kept.add(steps[best])
    for scores in language_dev.values():
        best = best_point(scores)
        if best is not None:
            kept.add(steps[best])
    return kept
