"""Rendering a summary as text: the terminal table (rich) and summary.md."""

from __future__ import annotations

import io

from xfer.report.stats import BOOTSTRAP_RESAMPLES
from xfer.report.summary import HEADLINES, ORACLE_LABEL, _headline_value
from xfer.report.table import AVG, EXPLICIT, ORACLE_FILE
from xfer.xtreme import CATEGORIES, TASK_LANGUAGES

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

