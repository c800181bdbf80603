"""The sweep report: result rows (one metric, one language, one cell) -> results.csv, summary.md, summary.json
and plot.png, scored XTREME style.

- `table`: the results.csv format, row validation, cells and the cells a report expects, the low-resource set;
- `summary`: per (intermediate task, budget) the task scores, low-/high-resource, overall and headline
  averages, seed statistics (`stats`) and missing cells;
- `markdown`: summary.md and the terminal table; `figures`: plot.png.

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

from xfer.report.figures import figure, render_plot
from xfer.report.markdown import format_table, render_markdown
from xfer.report.stats import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, seed_statistics
from xfer.report.summary import HEADLINES, ORACLE_LABEL, STATISTICS_NOTE, summarize
from xfer.report.table import (AVG, COLUMNS, ENGLISH, EXPLICIT, ORACLE_FILE, REPORT_FILES, TASK_METRICS, Cell,
                               LowResourceSet, _sort_key, low_resource_set, read_results_csv, table_cells,
                               write_results_csv)

__all__ = ["AVG", "BOOTSTRAP_RESAMPLES", "BOOTSTRAP_SEED", "COLUMNS", "ENGLISH", "EXPLICIT", "HEADLINES",
           "ORACLE_FILE", "ORACLE_LABEL", "REPORT_FILES", "STATISTICS_NOTE", "TASK_METRICS", "Cell",
           "LowResourceSet", "_sort_key", "figure", "format_table", "low_resource_set", "read_results_csv",
           "render_markdown", "render_plot", "seed_statistics", "summarize", "table_cells", "write_report",
           "write_results_csv"]


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
