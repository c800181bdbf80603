"""Rendering a summary as text: the terminal table (rich) and summary.md."""

from __future__ import annotations

import io

from xfer.report.stats import BOOTSTRAP_RESAMPLES
from xfer.report.summary import HEADLINES, ORACLE_LABEL, _headline_value
from xfer.report.table import _TASK_ORDER, AVG, EXPLICIT, ORACLE_FILE
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
    for row in missing:
        reasons = row.get("missing_reasons", {})
        where = f"- {row['intermediate_task']} @ {row['budget']}: "
        plain = [label for label in row["missing"] if label not in reasons]
        if plain:
            lines.append(where + ", ".join(plain))
        by_reason: dict[str, list[str]] = {}
        for label in row["missing"]:
            if label in reasons:
                by_reason.setdefault(reasons[label], []).append(label)
        lines += [f"{where}{', '.join(labels)}: {reason}" for reason, labels in by_reason.items()]
    if not missing:
        lines.append("None.")
    lines.append("")
    return lines


def _fmt_delta(stat: dict | None) -> str:
    """"+1.2 [-0.3, +2.8]": a difference and its interval; "+1.2": no interval; "—": no difference."""
    if not stat or stat.get("delta") is None:
        return "—"
    text = f"{stat['delta']:+.1f}"
    if stat.get("ci95"):
        text += f" [{stat['ci95'][0]:+.1f}, {stat['ci95'][1]:+.1f}]"
    return text + (" partial" if stat.get("label") else "")


def _fmt_p(stat: dict | None) -> str:
    if not stat or stat.get("p_value") is None:
        return "—"
    return f"{stat['p_value']:.3f}" if stat["p_value"] >= 0.001 else "<0.001"


def _compact(labels: list[str]) -> str:
    """"xnli/de/seed=1", ... -> "xnli: de en; panx: sw" (seeds named when there are several)."""
    parsed = [label.rsplit("/seed=", 1) for label in labels]
    several = len({seed for _, seed in parsed}) > 1
    by_task: dict[str, list[str]] = {}
    for cell, seed in parsed:
        task, lang = cell.split("/", 1)
        by_task.setdefault(task, []).append(f"{lang}/seed={seed}" if several else lang)
    return "; ".join(f"{task}: {' '.join(by_task[task])}" for task in sorted(by_task, key=_TASK_ORDER.get))


def _unavailable_lines(row: dict) -> list[str]:
    out = []
    for reason, labels in row["unavailable"].items():
        mine = [label for label in labels if not label.startswith("baseline ")]
        base = [label.removeprefix("baseline ") for label in labels if label.startswith("baseline ")]
        parts = ([_compact(mine)] if mine else []) + ([f"baseline: {_compact(base)}"] if base else [])
        out.append(f"- {row['intermediate_task']} @ {row['budget']}: {reason}: {'; '.join(parts)}")
    return out


GROUP_NAMES = {"low_resource": "low-res", "high_resource": "high-res", "overall": "overall"}


def _paired_markdown(summary: dict) -> list[str]:
    from xfer.report.figures import SCATTER_FILE, heatmap_file, heatmap_tasks

    paired = summary["paired"]
    rows = paired["rows"]
    lines = ["## Differences from the budget-0 baseline", ""]
    if paired["no_baseline"]:
        lines += [f"No budget-0 row to compare with: {', '.join(paired['no_baseline'])}.", ""]
    if not rows:
        return lines
    tasks = _task_columns(summary)
    keys = ("low_resource", "high_resource", "overall", *HEADLINES)
    header = ["intermediate task", "budget", *tasks, "low-res", "high-res", "overall", "avg over tasks",
              "avg over categories"]
    lines += [f"Each intermediate task and budget against its budget-0 row, in points: the difference [95% "
              f"interval]. Method: {paired['method']}. p-value: {paired['p_value']}. \"—\": a cell it needs "
              "is missing; a difference without an interval: see \"Intervals not computed\" below. \"partial\": "
              "a headline average over the tasks present (see the headline table above).", ""]
    lines += _markdown_table(header, [[r["intermediate_task"], str(r["budget"]),
                                       *(_fmt_delta(r["tasks"].get(t)) for t in tasks),
                                       *(_fmt_delta(r[k]) for k in keys)] for r in rows])
    lines += ["", "p-values:", ""]
    lines += _markdown_table(header, [[r["intermediate_task"], str(r["budget"]),
                                       *(_fmt_p(r["tasks"].get(t)) for t in tasks),
                                       *(_fmt_p(r[k]) for k in keys)] for r in rows])
    itasks = heatmap_tasks(summary)
    lines += ["", "Per language (the mean over the tasks evaluating it) and per cell: `summary.json`, "
              "`paired.rows[].languages` and `.cells`; with several seeds, each seed against the baseline's same "
              "seed: `.per_seed`."]
    if itasks:
        lines[-1] += (" Heatmaps (language x budget): " + ", ".join(f"[{heatmap_file(t)}]({heatmap_file(t)})"
                                                                  for t in itasks) +
                      f"; each language's difference at the best budget against its resource size: "
                      f"[{SCATTER_FILE}]({SCATTER_FILE}).")
    lines.append("")
    unavailable = [line for r in rows for line in _unavailable_lines(r)]
    if unavailable:
        lines += ["Intervals not computed (the difference is still given), and why:", "", *unavailable, ""]
    lines += ["## Dose-response", "",
              f"Per intermediate task and language group: the slope of the difference against the budget, in "
              f"{paired['slope_unit']}, its 95% interval and p-value from the same resamples; the budget with the "
              "best mean difference (budget 0 counting as 0) and the share of resamples in which it is best.", ""]
    body = []
    for entry in paired["dose_response"]:
        slope = {"delta": entry["slope"], "ci95": entry["slope_ci95"], "p_value": entry["slope_p_value"]}
        best = "—" if entry["best_budget"] is None else f"{entry['best_budget']} ({entry['best_delta']:+.1f})"
        share = "—" if entry["best_share"] is None else f"{entry['best_share']:.2f}"
        body.append([entry["intermediate_task"], GROUP_NAMES[entry["group"]],
                     ", ".join(map(str, entry["budgets"])), ", ".join(_fmt(d) if d is None else f"{d:+.1f}"
                                                                    for d in entry["deltas"]),
                     _fmt_delta(slope), _fmt_p(slope), best, share])
    lines += _markdown_table(["intermediate task", "group", "budgets", "differences", "slope [95% interval]", "p",
                              "best budget (difference)", "best in share of resamples"], body)
    notes = sorted({f"- {e['intermediate_task']} {GROUP_NAMES[e['group']]}: {e['reason']}"
                    for e in paired["dose_response"] if e.get("reason")})
    if notes:
        lines += ["", "Not computed, and why:", "", *notes]
    lines.append("")
    return lines


def render_markdown(summary: dict) -> str:
    lines = [f"# {summary.get('title', 'xfer sweep')}", "", _criterion_sentence(summary), "",
             "Zero-shot scores in percent, English-dev-selected checkpoints (the default model selection). Task "
             "score as in XTREME: the unweighted mean over the task's languages of the per-language score (QA: "
             "(EM + F1) / 2); overall: the mean of the task scores. \"—\": a cell it needs is missing; nothing is "
             "averaged over a subset.", ""]
    lines += _body_markdown(summary, "##")
    if summary.get("paired"):
        lines += _paired_markdown(summary)
    if summary.get("oracle_selection"):
        lines += [f"Oracle selection: {summary['oracle_selection']}", ""]
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
            lines += ["These keep the default (English-dev) selection:", "",
                      *(f"- {reason}: {', '.join(items)}" for reason, items in default_used.items()), ""]
        lines += _body_markdown(oracle, "###")
    bands = ("paired 95% intervals of the difference from budget 0 where there are per-example scores, else "
             "95% intervals over seeds" if summary.get("paired") else "95% intervals over seeds")
    lines += [f"Low- and high-resource averages against the step budget, with their {bands}: "
              "[plot.png](plot.png)", ""]
    return "\n".join(lines)

