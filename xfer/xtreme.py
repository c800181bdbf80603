"""XTREME's scoring rules in one place: which metrics make each task's score, the four task categories,
and the two headline averages (`avg_over_tasks`, XTREME's `all_task`; `avg_over_categories`, the
leaderboard's "Avg").

A task's score is the unweighted mean over its languages of its metric, or for the QA tasks
(mean EM + mean F1) / 2. A headline average exists only when every task it needs is present; otherwise it
is None and the mean over what is present is given separately, labelled partial, with the missing tasks.
"""

from __future__ import annotations

from typing import Mapping

from xfer.errors import XferError

# The metrics that make each task's score, in XTREME's task order; two metrics (QA) -> their mean.
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "xnli": ("accuracy",),
    "pawsx": ("accuracy",),
    "udpos": ("f1",),
    "panx": ("f1",),
    "xquad": ("exact_match", "f1"),
    "mlqa": ("exact_match", "f1"),
    "tydiqa": ("exact_match", "f1"),
    "bucc2018": ("f1",),
    "tatoeba": ("accuracy",),
}

# The leaderboard's four categories.
CATEGORIES: dict[str, tuple[str, ...]] = {
    "classification": ("xnli", "pawsx"),
    "structured_prediction": ("udpos", "panx"),
    "question_answering": ("xquad", "mlqa", "tydiqa"),
    "retrieval": ("bucc2018", "tatoeba"),
}


def task_score(task: str, metric_means: Mapping[str, float]) -> float:
    """A task's score from its per-metric means over languages (QA: (EM + F1) / 2)."""
    if task not in TASK_METRICS:
        raise XferError(f"unknown XTREME task {task!r} (known: {' '.join(TASK_METRICS)})")
    missing = [m for m in TASK_METRICS[task] if m not in metric_means]
    if missing:
        raise XferError(f"{task}: metric {missing[0]!r} is missing (needs {', '.join(TASK_METRICS[task])})")
    values = [float(metric_means[m]) for m in TASK_METRICS[task]]
    return sum(values) / len(values)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def headline(task_scores: Mapping[str, float | None]) -> dict:
    """The two headline averages from task -> score (None or absent = missing).

    Returns {"avg_over_tasks": float | None, "avg_over_categories": float | None, "missing": [tasks],
    "partial": {name: {"value", "tasks", "missing"}}}; a partial entry exists for each headline average
    that is None while at least one task is present (its value is the same mean over what is present:
    over the present tasks, or over the categories with all their tasks present).
    """
    unknown = [t for t in task_scores if t not in TASK_METRICS]
    if unknown:
        raise XferError(f"unknown XTREME task {unknown[0]!r} (known: {' '.join(TASK_METRICS)})")
    present = [t for t in TASK_METRICS if task_scores.get(t) is not None]
    missing = [t for t in TASK_METRICS if t not in present]
    out: dict = {"avg_over_tasks": None, "avg_over_categories": None, "missing": missing, "partial": {}}
    if not present:
        return out
    over_tasks = _mean([float(task_scores[t]) for t in present])
    complete = {c: _mean([float(task_scores[t]) for t in ts]) for c, ts in CATEGORIES.items()
                if all(t in present for t in ts)}
    if not missing:
        out["avg_over_tasks"] = over_tasks
        out["avg_over_categories"] = _mean(list(complete.values()))
        return out
    out["partial"]["avg_over_tasks"] = {"value": over_tasks, "tasks": present, "missing": missing}
    if complete:
        out["partial"]["avg_over_categories"] = {
            "value": _mean(list(complete.values())), "categories": list(complete),
            "tasks": [t for c in complete for t in CATEGORIES[c]], "missing": missing}
    return out
