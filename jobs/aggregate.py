"""Aggregate: read every cell's committed results from the store and write the sweep report
(results.csv, summary.md, summary.json, plot.png, the heatmaps and the scatter; results_oracle.csv for the
oracle selection). Cells whose job has no committed output, or whose results.json is unreadable (invalid JSON,
the wrong shape, a value that is not a percentage, or failing the store's verification), are reported as
missing with the reason, never averaged over. Run by the runner (`ctx.repair_inputs`), a results.json failing
verification is first recomputed: the store quarantines it, the runner reruns the job that wrote it and then
this one (a cell whose job cannot be recomputed is then reported missing). The report is committed to
`reports/<name>/<job id>/` and `reports/<name>/latest.json` points at it. Runs every time: it is cheap and its inputs may have filled in.

The default results are the English-dev-selected ones (`metrics` of a target job's results.json, under
`tasks.<task>`: a target job may hold several tasks trained once; a retrieval job's are at the top). The
oracle results take, per language, the checkpoint chosen on that language's dev set (`oracle`); a language
without one, a job that did not run the oracle pass (`selection.oracle_pass` false), and every retrieval task
(no target training, nothing to select) keep the default and are listed so. When no target job ran the oracle
pass there is no oracle section, and the summary says so in one line.

Beside `predictions/`, a job may hold each language's per-example test scores
(`examples/<task>/test-<lang>.safetensors`, `xfer.example_scores`); the report's paired bootstrap reads them,
and says per cell why there are none.
"""

from __future__ import annotations

import hashlib
import json
import math
from functools import lru_cache
from pathlib import Path

from xfer import example_scores, tasks
from xfer.errors import StoreError, XferError
from xfer.store import CorruptOutput
from xfer.languages import LOW_RESOURCE_PRESETS, LOW_RESOURCE_SOURCE
from xfer.report import EXPLICIT, ORACLE_FILE, TASK_METRICS, Bootstrap, Cell, LowResourceSet, write_report
from xfer.report.paired import NO_EXAMPLES

NO_LANG_DEV = "no target-language dev set"
NO_SELECTION = "no target training to select a checkpoint from (retrieval)"
NO_RECORD = "results without a model-selection record (written by an older xfer)"
ORACLE_NOT_RUN = "oracle pass not run"
NOT_COMMITTED = "no committed output (the job has not run, or failed)"
ORACLE_SKIPPED = ("not run: no target job of this sweep evaluated the target-language dev sets (set "
                  "`selection: {oracle: true}` in the config to get it)")


class Unreadable(Exception):
    """A committed results.json that cannot be used; str(e) says why."""


def _results(store, prefix: str, repair: bool = False) -> dict | None:
    """The committed results.json of `prefix` (None: not committed); Unreadable when it is corrupt (or, with
    `repair`, the store's CorruptOutput, so that the runner recomputes the job that wrote it)."""
    if not store.is_committed(prefix):
        return None
    try:
        data = json.loads(store.read_committed(prefix, "results.json"))
    except StoreError as exc:
        if repair and isinstance(exc, CorruptOutput):
            raise
        raise Unreadable(str(exc)) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Unreadable(f"invalid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise Unreadable(f"expected a JSON object, got {type(data).__name__}")
    return data


def _task_results(results: dict, task: str) -> dict:
    """One task's part of a job's results.json (a target job: under `tasks`), checked for shape."""
    if "tasks" in results:
        if not isinstance(results["tasks"], dict) or not isinstance(results["tasks"].get(task), dict):
            raise Unreadable(f"no object for {task!r} under 'tasks'")
        results = results["tasks"][task]
    for key in ("metrics", "oracle"):
        if key in results and not isinstance(results[key], dict):
            raise Unreadable(f"{key!r} is not an object")
    if "metrics" not in results:
        raise Unreadable("no 'metrics'")
    if "selection" in results and not isinstance(results["selection"], dict):
        raise Unreadable("'selection' is not an object")
    return results


def _metrics(values, task: str, lang: str, where: str) -> dict[str, float]:
    """{metric: value} of one language, each a finite percentage; Unreadable otherwise."""
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise Unreadable(f"{where}.{lang} is not an object")
    out = {}
    for metric in TASK_METRICS[task]:
        value = values.get(metric)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not 0.0 <= value <= 100.0:
            raise Unreadable(f"{where}.{lang}.{metric} is {value!r}, not a percentage")
        out[metric] = float(value)
    return out


def collect(params: dict, store, repair: bool = False) -> dict:
    """Everything the report needs from the store: {"rows": default rows of every usable cell, "expected": every
    cell the plan expects, "oracle_rows", "default_used": {reason: {"task/lang", ...}} of the oracle rows that
    keep the default selection, "oracle_ran": whether any target job ran the oracle pass, "missing_reasons":
    {cell: why it has no result}, "examples": {cell: (job prefix, relpath) of its per-example scores, or why there
    are none}}."""
    out = {"rows": [], "expected": [], "oracle_rows": [], "default_used": {}, "oracle_ran": False,
           "missing_reasons": {}, "examples": {}}
    cache: dict[str, tuple] = {}
    for cell in params["cells"]:
        keys = {k: cell[k] for k in ("intermediate_task", "budget", "seed")}
        task = cell["target_task"]
        cells = [Cell(target_task=task, language=lang, **keys) for lang in cell["languages"]]
        out["expected"] += cells
        prefix = f"jobs/{cell['job']}/output"
        if prefix not in cache:
            try:
                results = _results(store, prefix, repair)
                files = set(store.manifest(prefix)["files"]) if results is not None else set()
                cache[prefix] = (results, files, None)
            except Unreadable as exc:
                cache[prefix] = (None, set(), f"results.json of job {cell['job']} unreadable: {exc}")
        results, files, problem = cache[prefix]
        if results is None:
            out["missing_reasons"].update({c: problem or NOT_COMMITTED for c in cells})
            out["examples"].update({c: problem or NOT_COMMITTED for c in cells})
            continue
        try:
            mine = _task_results(results, task)
            chosen = {lang: _metrics(mine["metrics"].get(lang), task, lang, "metrics") for lang in cell["languages"]}
            oracle = mine.get("oracle")
            best_of = {lang: _metrics((oracle or {}).get(lang), task, lang, "oracle") for lang in cell["languages"]}
        except Unreadable as exc:
            reason = f"results.json of job {cell['job']} unreadable: {exc}"
            out["missing_reasons"].update({c: reason for c in cells})
            out["examples"].update({c: reason for c in cells})
            continue
        selection = mine.get("selection")
        ran = selection is not None and selection.get("oracle_pass", True)  # older target jobs always ran it
        out["oracle_ran"] |= bool(ran)
        for c, lang in zip(cells, cell["languages"]):
            if oracle is not None and lang in oracle:
                best = best_of[lang]
            else:
                best = chosen[lang]
                if selection is None:
                    reason = NO_SELECTION if tasks.get(task).format == "retrieval" else NO_RECORD
                else:
                    reason = NO_LANG_DEV if ran else ORACLE_NOT_RUN
                out["default_used"].setdefault(reason, set()).add(f"{task}/{lang}")
            for metric in TASK_METRICS[task]:
                row = {**keys, "target_task": task, "language": lang, "metric": metric}
                if metric in chosen[lang]:
                    out["rows"].append({**row, "value": chosen[lang][metric]})
                if metric in best:
                    out["oracle_rows"].append({**row, "value": best[metric]})
            if not chosen[lang]:
                out["missing_reasons"][c] = f"results.json of job {cell['job']} has no metrics for {lang}"
            relpath = example_scores.relpath(task, lang)
            out["examples"][c] = (prefix, relpath) if relpath in files else NO_EXAMPLES
    return out


def scores_reader(store, examples: dict):
    """`scores_of(cell)` for the report: the cell's per-example scores, read from the store and verified, or
    the reason there are none."""
    @lru_cache(maxsize=32)  # the budget-0 baseline is one job shared by every intermediate task
    def read(prefix: str, relpath: str):
        try:
            return example_scores.from_bytes(store.read_committed(prefix, relpath), f"{prefix}/{relpath}")
        except XferError as exc:  # StoreError (corrupt, missing) or a malformed file
            return f"per-example scores unreadable: {exc}"

    def scores_of(cell: Cell):
        where = examples.get(cell, NO_EXAMPLES)
        return where if isinstance(where, str) else read(*where)

    return scores_of


def low_resource(params: dict) -> LowResourceSet:
    low = params["low_resource"]
    source = LOW_RESOURCE_SOURCE if low["name"] in LOW_RESOURCE_PRESETS else EXPLICIT
    return LowResourceSet(low["name"], frozenset(low["languages"]), low["criterion"], source)


def run(job, ctx, extra_rows: list[dict] = ()) -> dict:
    """`extra_rows` (e.g. published numbers read from a results.csv) are reported beside the sweep's, each
    `intermediate_task` its own system (its budget 0 is not the sweep's shared baseline); they have no oracle
    selection and no per-example scores."""
    p = job.params
    found = collect(p, ctx.store, ctx.repair_inputs)
    sweep_tasks = sorted({c["intermediate_task"] for c in p["cells"]})
    clash = sorted({r["intermediate_task"] for r in extra_rows} & set(sweep_tasks))
    if clash:
        raise XferError(f"--results: intermediate_task {clash[0]!r} is also an intermediate task of the sweep "
                        f"'{p['name']}'; give the published system another name")
    rows = found["rows"] + list(extra_rows)
    expected = found["expected"] + [Cell(r["intermediate_task"], int(r["budget"]), int(r["seed"]), r["target_task"],
                                         r["language"]) for r in extra_rows]
    settings = p.get("report", {})
    boot = Bootstrap(settings.get("bootstrap_resamples", Bootstrap.resamples),
                     settings.get("bootstrap_seed", Bootstrap.seed))
    out = Path(ctx.report_dir or ctx.work / job.id)
    oracle = found["oracle_ran"]
    summary = write_report(
        rows, expected, low_resource(p), out, title=f"xfer sweep '{p['name']}'",
        oracle_rows=found["oracle_rows"] if oracle else None, oracle_expected=found["expected"] if oracle else None,
        default_selection_used={k: sorted(v) for k, v in found["default_used"].items()},
        shared_baseline=sweep_tasks, missing_reasons=found["missing_reasons"],
        scores_of=scores_reader(ctx.store, found["examples"]), bootstrap=boot,
        oracle_not_run=None if oracle else ORACLE_SKIPPED)
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
