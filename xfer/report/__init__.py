"""The sweep report: result rows (one metric, one language, one cell) -> results.csv, summary.md, summary.json
and the figures, scored XTREME style.

- `table`: the results.csv format, row validation, cells and the cells a report expects, the low-resource set;
- `summary`: per (intermediate task, budget) the task scores, low-/high-resource, overall and headline
  averages, seed statistics (`stats`) and missing cells with their reasons;
- `paired`: the differences from the budget-0 baseline with paired-bootstrap intervals over test examples, and
  the dose-response;
- `markdown`: summary.md and the terminal table; `figures`: plot.png, the heatmaps and the scatter.

The oracle model selection (target-language dev sets, an upper bound) is reported separately, with the same
averages, in `results_oracle.csv` and the summary's "oracle" section.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Mapping

from xfer.report.figures import HEATMAP_PREFIX, SCATTER_FILE, figure, render_figures, render_plot
from xfer.report.markdown import format_table, render_markdown
from xfer.report.paired import Bootstrap, ScoresOf, paired_section
from xfer.report.stats import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, seed_statistics
from xfer.report.summary import HEADLINES, ORACLE_LABEL, STATISTICS_NOTE, summarize
from xfer.report.table import (AVG, COLUMNS, ENGLISH, EXPLICIT, ORACLE_FILE, REPORT_FILES, TASK_METRICS, Cell,
                               LowResourceSet, _sort_key, cell_values, low_resource_set, read_results_csv,
                               table_cells, write_results_csv)

__all__ = ["AVG", "BOOTSTRAP_RESAMPLES", "BOOTSTRAP_SEED", "Bootstrap", "COLUMNS", "ENGLISH", "EXPLICIT", "HEADLINES",
           "ORACLE_FILE", "ORACLE_LABEL", "REPORT_FILES", "STATISTICS_NOTE", "TASK_METRICS", "Cell",
           "LowResourceSet", "_sort_key", "figure", "format_table", "low_resource_set", "read_results_csv",
           "render_markdown", "render_plot", "seed_statistics", "summarize", "table_cells", "write_report",
           "write_results_csv"]


def write_report(rows: Iterable[dict], expected: Iterable[Cell] | None, low_resource: LowResourceSet, out_dir,
                 title: str, oracle_rows: Iterable[dict] | None = None, oracle_expected: Iterable[Cell] | None = None,
                 default_selection_used: Mapping[str, list[str]] | None = None, *,
                 shared_baseline: Iterable[str] = (), missing_reasons: Mapping[Cell, str] | None = None,
                 scores_of: ScoresOf | None = None, bootstrap: Bootstrap = Bootstrap(),
                 oracle_not_run: str | None = None) -> dict:
    """Write results.csv, summary.md, summary.json and the figures into `out_dir`, all or none: every file is
    written in a temporary folder beside it first and moved in only once all exist. Returns the summary.

    `oracle_rows` (with their own `oracle_expected` cells): the same cells under the oracle selection, written
    to results_oracle.csv and summarized in the summary's "oracle" section; `default_selection_used`:
    {reason: ["task/lang", ...]} for the cells there that kept the default selection; `oracle_not_run`: instead,
    the one line saying why there is no oracle section. `shared_baseline`: the intermediate tasks whose budget-0
    rows are the sweep's one shared run; `missing_reasons`: why a cell is missing, where known. `scores_of(cell)`:
    the cell's per-example scores (or why there are none) for the paired bootstrap (`paired`), with `bootstrap`'s
    settings; None: rows from results tables, which have none."""
    rows = list(rows)
    summary = {"title": title, **summarize(rows, expected, low_resource, shared_baseline, missing_reasons)}
    paired = paired_section(summary, cell_values(rows, shared_baseline), scores_of, low_resource, bootstrap)
    if paired is not None:
        summary["paired"] = paired
    if oracle_rows is not None:
        oracle_rows = list(oracle_rows)
        oracle = summarize(oracle_rows, oracle_expected, low_resource, shared_baseline)
        summary["oracle"] = {"label": ORACLE_LABEL, "file": ORACLE_FILE,
                             "default_selection_used": dict(default_selection_used or {}), "rows": oracle["rows"]}
    elif oracle_not_run:
        summary["oracle_selection"] = oracle_not_run
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
        names += render_figures(summary, tmp)
        for name in names:
            os.replace(tmp / name, out / name)
        stale = [ORACLE_FILE] if oracle_rows is None else []  # from an earlier report: no longer matching
        stale += [p.name for p in [*out.glob(f"{HEATMAP_PREFIX}*.png"), out / SCATTER_FILE] if p.name not in names]
        for name in stale:
            (out / name).unlink(missing_ok=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary
