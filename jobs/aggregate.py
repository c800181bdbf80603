"""Aggregate: read every cell's committed results from the store and write the sweep report
(results.csv, summary.md, summary.json, plot.png). Cells whose job has no committed output are reported as
missing, never averaged over. The report is committed to `reports/<name>/<job id>/` and
`reports/<name>/latest.json` points at it. Runs every time: it is cheap and its inputs may have filled in."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from xfer.report import TASK_METRICS, Cell, LowResourceSet, write_report


def collect(params: dict, store) -> tuple[list[dict], list[Cell]]:
    """Result rows for every committed cell, and every cell the plan expects."""
    rows, expected, cache = [], [], {}
    for cell in params["cells"]:
        keys = {k: cell[k] for k in ("intermediate_task", "budget", "seed")}
        expected += [Cell(target_task=cell["target_task"], language=lang, **keys) for lang in cell["languages"]]
        prefix = f"jobs/{cell['job']}/output"
        if prefix not in cache:
            cache[prefix] = (json.loads(store.read_committed(prefix, "results.json"))
                             if store.is_committed(prefix) else None)
        results = cache[prefix]
        if results is None:
            continue
        for lang in cell["languages"]:
            for metric in TASK_METRICS[cell["target_task"]]:
                value = results["metrics"].get(lang, {}).get(metric)
                if value is not None:
                    rows.append({**keys, "target_task": cell["target_task"], "language": lang,
                                 "metric": metric, "value": float(value)})
    return rows, expected


def run(job, ctx, extra_rows: list[dict] = ()) -> dict:
    """`extra_rows` (e.g. published baselines read from a results.csv) are reported beside the sweep's."""
    p = job.params
    rows, expected = collect(p, ctx.store)
    rows += list(extra_rows)
    expected += [Cell(r["intermediate_task"], int(r["budget"]), int(r["seed"]), r["target_task"], r["language"])
                 for r in extra_rows]
    low = p["low_resource"]
    out = Path(ctx.report_dir or ctx.work / job.id)
    summary = write_report(rows, expected, LowResourceSet(low["name"], frozenset(low["languages"]),
                                                          low["criterion"]),
                           out, title=f"xfer sweep '{p['name']}'")
    prefix = f"reports/{p['name']}/{job.id}"
    digest = hashlib.sha256((out / "results.csv").read_bytes()).hexdigest()
    if ctx.store.is_committed(prefix) and ctx.store.manifest(prefix)["meta"].get("results_sha256") != digest:
        ctx.store.uncommit(prefix)  # earlier, partial results: replace them
    ctx.store.commit(prefix, out, meta={"job": job.id, "kind": job.kind, "results_sha256": digest})
    ctx.store.put_bytes(f"reports/{p['name']}/latest.json",
                        json.dumps({"aggregate": job.id, "prefix": prefix}).encode())
    return summary
