"""Aggregate: read every cell's committed results from the store and write the sweep report
(results.csv, summary.md, summary.json, plot.png; results_oracle.csv for the oracle selection). Cells whose job
has no committed output are reported as missing, never averaged over. The report is committed to
`reports/<name>/<job id>/` and `reports/<name>/latest.json` points at it. Runs every time: it is cheap and its
inputs may have filled in.

The default results are the English-dev-selected ones (`metrics` of a target job's results.json, under
`tasks.<task>`: a target job may hold several tasks trained once; a retrieval job's are at the top). The
oracle results take, per language, the checkpoint chosen on that language's dev set (`oracle`); a language
without one, and every retrieval task (no target training, nothing to select), keeps the default and is
listed so.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from xfer import tasks
from xfer.languages import LOW_RESOURCE_PRESETS, LOW_RESOURCE_SOURCE
from xfer.report import EXPLICIT, ORACLE_FILE, TASK_METRICS, Cell, LowResourceSet, write_report

NO_LANG_DEV = "no target-language dev set"
NO_SELECTION = "no target training to select a checkpoint from (retrieval)"
NO_RECORD = "results without a model-selection record (written by an older xfer)"


def collect(params: dict, store) -> tuple[list[dict], list[Cell], list[dict], dict[str, set[str]]]:
    """(default rows for every committed cell, every cell the plan expects, oracle rows, {reason: {"task/lang",
    ...}} of the oracle rows that keep the default selection)."""
    rows, expected, oracle_rows, default_used, cache = [], [], [], {}, {}
    for cell in params["cells"]:
        keys = {k: cell[k] for k in ("intermediate_task", "budget", "seed")}
        task = cell["target_task"]
        expected += [Cell(target_task=task, language=lang, **keys) for lang in cell["languages"]]
        prefix = f"jobs/{cell['job']}/output"
        if prefix not in cache:
            cache[prefix] = (json.loads(store.read_committed(prefix, "results.json"))
                             if store.is_committed(prefix) else None)
        results = cache[prefix]
        if results is None:
            continue
        if "tasks" in results:  # a target job: each task of its group under its own name
            results = results["tasks"][task]
        oracle = results.get("oracle")
        for lang in cell["languages"]:
            chosen = results["metrics"].get(lang, {})
            if oracle is not None and lang in oracle:
                best = oracle[lang]
            else:
                best = chosen
                reason = NO_LANG_DEV if "selection" in results else (
                    NO_SELECTION if tasks.get(task).format == "retrieval" else NO_RECORD)
                default_used.setdefault(reason, set()).add(f"{task}/{lang}")
            for metric in TASK_METRICS[task]:
                row = {**keys, "target_task": task, "language": lang, "metric": metric}
                if chosen.get(metric) is not None:
                    rows.append({**row, "value": float(chosen[metric])})
                if best.get(metric) is not None:
                    oracle_rows.append({**row, "value": float(best[metric])})
    return rows, expected, oracle_rows, default_used


def low_resource(params: dict) -> LowResourceSet:
    low = params["low_resource"]
    source = LOW_RESOURCE_SOURCE if low["name"] in LOW_RESOURCE_PRESETS else EXPLICIT
    return LowResourceSet(low["name"], frozenset(low["languages"]), low["criterion"], source)


def run(job, ctx, extra_rows: list[dict] = ()) -> dict:
    """`extra_rows` (e.g. published baselines read from a results.csv) are reported beside the sweep's; they
    have no oracle selection and appear in the default section only."""
    p = job.params
    rows, expected, oracle_rows, default_used = collect(p, ctx.store)
    sweep_expected = list(expected)
    rows += list(extra_rows)
    expected += [Cell(r["intermediate_task"], int(r["budget"]), int(r["seed"]), r["target_task"], r["language"])
                 for r in extra_rows]
    out = Path(ctx.report_dir or ctx.work / job.id)
    summary = write_report(rows, expected, low_resource(p), out, title=f"xfer sweep '{p['name']}'",
                           oracle_rows=oracle_rows, oracle_expected=sweep_expected,
                           default_selection_used={k: sorted(v) for k, v in default_used.items()})
    prefix = f"reports/{p['name']}/{job.id}"
    digest = hashlib.sha256()  # the results under both selections decide whether the committed report is stale
    for name in ("results.csv", ORACLE_FILE):
        if (out / name).is_file():
            digest.update((out / name).read_bytes())
    digest = digest.hexdigest()
    if ctx.store.is_committed(prefix) and ctx.store.manifest(prefix)["meta"].get("results_sha256") != digest:
        ctx.store.uncommit(prefix)  # earlier, partial results: replace them
    ctx.store.commit(prefix, out, meta={"job": job.id, "kind": job.kind, "results_sha256": digest})
    ctx.store.put_bytes(f"reports/{p['name']}/latest.json",
                        json.dumps({"aggregate": job.id, "prefix": prefix}).encode())
    return summary
