"""The whole demo sweep, end to end, in this process: every job kind, the report's content, idempotent
reruns, failures that do not stop independent jobs, and a kill in the middle of training that resumes."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xfer import cli
from xfer.config import load
from xfer.plan import build_plan
from xfer.store import open_store

ROOT = Path(__file__).parents[1]
DEMO = ROOT / "configs" / "demo.yaml"


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """Run `xfer run configs/demo.yaml` once into a fresh store; many tests read its outputs."""
    base = tmp_path_factory.mktemp("demo")
    store, report = base / "store", base / "report"
    args = ["run", str(DEMO), "--store", f"file://{store}", "--work", str(base / "work"), "--out", str(report)]
    start = time.perf_counter()
    code = cli.main(args)
    return {"code": code, "seconds": time.perf_counter() - start, "store": store, "report": report,
            "args": args, "base": base}


def test_demo_sweep_succeeds_and_writes_the_four_report_files(demo_run):
    assert demo_run["code"] == 0
    assert {p.name for p in demo_run["report"].iterdir()} >= {"results.csv", "summary.md", "summary.json",
                                                               "plot.png"}
    assert (demo_run["report"] / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_results_csv_covers_every_cell(demo_run):
    with open(demo_run["report"] / "results.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["intermediate_task", "budget", "seed", "target_task", "language",
                                     "metric", "value"]
        rows = list(reader)
    config, _ = load(str(DEMO))
    expected = set()
    for itask in config.intermediate.tasks:
        for budget in config.intermediate.budgets:
            for target in config.targets:
                metrics = {"xnli": ["accuracy"], "pawsx": ["accuracy"], "udpos": ["f1"], "panx": ["f1"],
                           "xquad": ["exact_match", "f1"], "mlqa": ["exact_match", "f1"],
                           "tydiqa": ["exact_match", "f1"], "bucc2018": ["f1"], "tatoeba": ["accuracy"]}[target]
                for lang in config.languages(target):
                    expected |= {(itask, str(budget), "1", target, lang, m) for m in metrics}
    got = {(r["intermediate_task"], r["budget"], r["seed"], r["target_task"], r["language"], r["metric"])
           for r in rows}
    assert got == expected and len(rows) == len(expected)
    assert all(0.0 <= float(r["value"]) <= 100.0 for r in rows)
    # the budget-0 baseline is one shared set of jobs: identical values for every intermediate task
    base = {}
    for r in rows:
        if r["budget"] == "0":
            base.setdefault(r["target_task"] + r["language"] + r["metric"], set()).add(r["value"])
    assert all(len(v) == 1 for v in base.values())


def test_summary_answers_the_question(demo_run):
    summary = json.loads((demo_run["report"] / "summary.json").read_text())
    rows = summary["rows"]
    assert [(r["intermediate_task"], r["budget"]) for r in rows] == [
        (t, b) for t in ("hellaswag", "mnli", "squad") for b in (0, 20, 80)]
    for row in rows:
        assert row["missing"] == []
        assert set(row["tasks"]) == {"xnli", "pawsx", "udpos", "panx", "xquad", "mlqa", "tydiqa", "bucc2018",
                                     "tatoeba"}
        assert all(v is not None for v in row["tasks"].values())
        assert row["low_resource"] is not None and row["high_resource"] is not None
        assert row["overall"] == pytest.approx(sum(row["tasks"].values()) / 9)
        # all nine XTREME tasks are present: the headline averages are complete, not partial
        assert row["avg_over_tasks"] == pytest.approx(row["overall"]) and row["avg_over_categories"] is not None
    assert set(summary["low_resource"]["languages"]) == {"jv", "kk", "my", "sw", "te", "yo"}
    md = (demo_run["report"] / "summary.md").read_text()
    assert "1,000 sentences" in md and "plot.png" in md
    # the report is committed to the store as well
    store = open_store(f"file://{demo_run['store']}")
    latest = json.loads(store.get_bytes("reports/demo/latest.json"))
    assert store.is_committed(latest["prefix"])


# the metrics that make each task's score (XTREME's rule; QA: the mean of EM and F1)
SCORE_METRICS = {"xnli": ["accuracy"], "pawsx": ["accuracy"], "udpos": ["f1"], "panx": ["f1"],
                 "xquad": ["exact_match", "f1"], "mlqa": ["exact_match", "f1"], "tydiqa": ["exact_match", "f1"],
                 "bucc2018": ["f1"], "tatoeba": ["accuracy"]}


def test_xtreme_score_of_the_baseline_agrees_with_its_jobs(demo_run, tmp_path, capsys):
    """The budget-0 baseline's committed predictions, scored by `xtreme-score` against the labels that
    `xtreme-labels` exports, give exactly the metrics its target and retrieval jobs recorded."""
    labels, pred = tmp_path / "labels", tmp_path / "predictions"
    assert cli.main(["xtreme-labels", str(DEMO), "--out", str(labels)]) == 0
    config = load(str(DEMO))[0]
    store = open_store(f"file://{demo_run['store']}")
    recorded = {}  # task -> {lang: {metric: value}} from the jobs' results.json
    for job in build_plan(config).jobs:
        if job.kind not in ("target", "retrieval") or job.params["from"] != "pretrained":
            continue
        results = json.loads(store.read_committed(job.output, "results.json"))
        for task in job.tasks:
            recorded[task] = results["tasks"][task]["metrics"] if job.kind == "target" else results["metrics"]
            (pred / task).mkdir(parents=True)
            for lang in recorded[task]:
                name = f"test-{lang}.{'json' if task in ('xquad', 'mlqa', 'tydiqa') else 'tsv'}"
                (pred / task / name).write_bytes(store.read_committed(job.output, f"predictions/{task}/{name}"))
    assert set(recorded) == set(SCORE_METRICS)
    assert all(set(recorded[t]) == set(config.languages(t)) for t in recorded)

    capsys.readouterr()
    assert cli.main(["xtreme-score", "--predictions", str(pred), "--labels", str(labels), "--languages", "labels",
                     "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    task_scores = {}
    for task, per_lang in recorded.items():
        for lang, metrics in per_lang.items():
            for metric, value in metrics.items():
                assert scored["tasks"][task][metric][lang] == pytest.approx(value, abs=1e-9), (task, lang, metric)
        means = [sum(per_lang[lang][m] for lang in per_lang) / len(per_lang) for m in SCORE_METRICS[task]]
        task_scores[task] = sum(means) / len(means)
        assert scored["tasks"][task]["avg_metric"] == pytest.approx(task_scores[task], abs=1e-9), task
    overall = scored["overall"]
    assert overall["languages"] == "subset"  # the demo evaluates a few languages per task
    assert overall["avg_over_tasks"] == pytest.approx(sum(task_scores.values()) / 9, abs=1e-9)
    # and the report's budget-0 rows say the same
    summary = json.loads((demo_run["report"] / "summary.json").read_text())
    for row in (r for r in summary["rows"] if r["budget"] == 0):
        assert row["tasks"] == pytest.approx(task_scores, abs=1e-9)
        assert row["avg_over_tasks"] == pytest.approx(overall["avg_over_tasks"], abs=1e-9)


def test_learning_happens(demo_run):
    """Intermediate training moves English dev accuracy above chance on the (learnable) fixtures."""
    store = open_store(f"file://{demo_run['store']}")
    plan = build_plan(load(str(DEMO))[0])
    for job in plan.stage("intermediate"):
        info = json.loads(store.read_committed(job.output, "xfer.json"))
        assert info["budget"] == job.params["budget"] and info["resumed_from"] == 0
        if job.params["task"] == "mnli" and job.params["budget"] == 80:
            assert info["dev"]["accuracy"] > 40.0  # 3 balanced classes: chance is 33.3


def test_the_sweep_computes_little_padding(demo_run):
    """Summed over every job of the demo sweep, counted at the encoder's forward: real token positions are at
    least 85% of those computed in training and 90% in inference (length-grouped batches, sorted inference)."""
    store = open_store(f"file://{demo_run['store']}")
    totals = {"train": [0, 0], "inference": [0, 0]}
    kinds = set()
    for job in build_plan(load(str(DEMO))[0]).jobs:
        if job.kind == "aggregate":
            continue
        name = "xfer.json" if job.kind in ("build", "intermediate") else "results.json"
        counted = json.loads(store.read_committed(job.output, name))["tokens"]
        kinds.add(job.kind)
        for part, entry in counted.items():
            assert 0 <= entry["real"] <= entry["computed"]
            totals[part][0] += entry["real"]
            totals[part][1] += entry["computed"]
    assert kinds == {"build", "intermediate", "target", "retrieval"}
    assert totals["train"][1] > 1e6 and totals["inference"][1] > 1e5  # the whole sweep's work was counted
    assert totals["train"][0] / totals["train"][1] >= 0.85
    assert totals["inference"][0] / totals["inference"][1] >= 0.90


def test_the_report_gives_paired_differences_dose_response_and_figures(demo_run):
    """One seed: every cell and every average of every intermediate task and budget has its difference from
    the budget-0 baseline with a paired-bootstrap 95% interval and p-value, from the per-example test scores
    the target and retrieval jobs committed; a dose-response line per task and group; heatmaps and scatter."""
    summary = json.loads((demo_run["report"] / "summary.json").read_text())
    paired = summary["paired"]
    assert paired["method"].startswith("paired bootstrap over test examples")
    config = load(str(DEMO))[0]
    rows = {(r["intermediate_task"], r["budget"]): r for r in paired["rows"]}
    assert set(rows) == {(t, b) for t in config.intermediate.tasks for b in config.intermediate.budgets if b}
    n_cells = sum(len(config.languages(t)) for t in config.targets)
    for row in rows.values():
        assert row["unavailable"] == {} and len(row["cells"]) == n_cells
        entries = row["cells"] + list(row["tasks"].values()) + [row[k] for k in (
            "low_resource", "high_resource", "overall", "avg_over_tasks", "avg_over_categories")]
        for entry in entries:
            low, high = entry["ci95"]
            assert low <= entry["delta"] <= high and 0 < entry["p_value"] <= 1
    groups = {(d["intermediate_task"], d["group"]) for d in paired["dose_response"]}
    assert groups == {(t, g) for t in config.intermediate.tasks for g in ("low_resource", "high_resource", "overall")}
    files = {p.name for p in demo_run["report"].iterdir()}
    assert {f"heatmap-{t}.png" for t in config.intermediate.tasks} | {"scatter.png"} <= files


def test_every_job_committed_with_checksums(demo_run):
    store = open_store(f"file://{demo_run['store']}")
    plan = build_plan(load(str(DEMO))[0])
    for job in plan.jobs:
        if job.kind == "aggregate":
            continue
        manifest = store.manifest(job.output)
        for relpath, entry in manifest["files"].items():
            data = (demo_run["store"] / job.output / relpath).read_bytes()
            assert len(data) == entry["size"] and hashlib.sha256(data).hexdigest() == entry["sha256"]
        if job.kind == "intermediate":  # checkpoints are removed once the output is committed
            assert not store.list(f"jobs/{job.id}/checkpoints/")
        if job.kind in ("target", "retrieval"):
            for task in job.tasks:  # a target job may train once for several tasks (xquad+mlqa)
                langs = job.params["tasks"][task]["languages"] if job.kind == "target" else job.params["languages"]
                for lang in langs:
                    suffix = "json" if task in ("xquad", "mlqa", "tydiqa") else "tsv"
                    assert f"predictions/{task}/test-{lang}.{suffix}" in manifest["files"]


def test_second_run_trains_nothing(demo_run, capsys):
    start = time.perf_counter()
    assert cli.main(demo_run["args"]) == 0
    seconds = time.perf_counter() - start
    out = capsys.readouterr()
    assert "63 skipped" in out.out and "0 done" not in out.out.replace("0 done,", "")
    assert seconds < demo_run["seconds"] / 5


def test_a_failed_job_does_not_stop_independent_jobs(demo_run, tmp_path, capsys):
    """Break PAN-X's Swahili test data: its target jobs fail, everything else runs, the aggregate lists
    the missing cells and the run exits 1."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(ROOT / "xfer" / "fixtures" / "hub", data)
    (data / "google/xtreme/PAN-X.sw/test.jsonl").write_text('{"tokens": ["a"], "ner_tags": [9], "langs": ["sw"]}\n')
    text = DEMO.read_text().replace("data: bundled", f"data: {data}").replace("budgets: [0, 20, 80]",
                                                                              "budgets: [0, 20]")
    text = text.replace("tasks: [mnli, squad, hellaswag]", "tasks: [mnli]")
    config = tmp_path / "broken.yaml"
    config.write_text(text)
    report = tmp_path / "report"
    code = cli.main(["run", str(config), "--store", f"file://{demo_run['store']}", "--work", str(tmp_path / "w"),
                     "--out", str(report)])
    out = capsys.readouterr()
    assert code == 1
    assert "2 failed" in out.out and "out of range" in out.out
    summary = json.loads((report / "summary.json").read_text())
    for row in summary["rows"]:
        assert row["tasks"]["panx"] is None and row["low_resource"] is None
        assert row["tasks"]["xnli"] is not None and row["high_resource"] is None
        assert "panx/sw/seed=1" in row["missing"]
    assert "panx/sw/seed=1" in (report / "summary.md").read_text()


def test_kill_during_intermediate_training_resumes(demo_run, tmp_path):
    """SIGKILL `xfer run` once an intermediate checkpoint is committed; the rerun resumes from it, keeps
    every finished job, and produces the very model an uninterrupted run produced."""
    store_dir = tmp_path / "store"
    text = DEMO.read_text().replace("tasks: [mnli, squad, hellaswag]", "tasks: [mnli]")
    text = text.replace("budgets: [0, 20, 80]", "budgets: [0, 80]")
    text = text[:text.index("  xnli:")] + "  tatoeba: {languages: [de, sw], layer: 2}\n" + text[text.index("target_hparams"):]
    config = tmp_path / "small.yaml"
    config.write_text(text)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    args = [sys.executable, "-m", "xfer.cli", "run", str(config), "--store", f"file://{store_dir}",
            "--work", str(tmp_path / "work"), "--out", str(tmp_path / "report")]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    plan = build_plan(load(str(config))[0])
    victim = plan.stage("intermediate")[0]
    # the same work as the demo's mnli@80 job, so the demo run holds the uninterrupted reference
    assert victim.id in build_plan(load(str(DEMO))[0]).by_id
    deadline = time.time() + 300
    try:
        while time.time() < deadline:
            if list((store_dir / "jobs" / victim.id / "checkpoints").glob("step-*/_COMPLETE")):
                break
            assert proc.poll() is None, "xfer run ended before the checkpoint appeared"
            time.sleep(0.05)
        else:
            pytest.fail("no checkpoint was committed in time")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    store = open_store(f"file://{store_dir}")
    done_before = {j.id for j in plan.jobs if store.is_committed(j.output)}
    assert plan.stage("build")[0].id in done_before and victim.id not in done_before

    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"{victim.id}: resuming from committed checkpoint at step" in " ".join(result.stderr.split())
    info = json.loads(store.read_committed(victim.output, "xfer.json"))
    assert info["resumed_from"] in (20, 40, 60)
    for job_id in done_before:
        assert any("skipped" in line and job_id in line for line in result.stderr.splitlines())
    # bit-identical to the uninterrupted run of the same job in demo_run's store
    reference = open_store(f"file://{demo_run['store']}").manifest(victim.output)["files"]["model.safetensors"]
    assert store.manifest(victim.output)["files"]["model.safetensors"]["sha256"] == reference["sha256"]


def test_parallel_workers_run_new_jobs_in_child_processes(demo_run, tmp_path, capsys):
    """--workers 2 over the demo's store: the build is skipped; the new intermediate job, the two retrieval
    jobs (new languages) and the aggregate run, the first three in worker processes, in dependency order."""
    text = DEMO.read_text().replace("tasks: [mnli, squad, hellaswag]", "tasks: [mnli]")
    text = text.replace("budgets: [0, 20, 80]", "budgets: [0, 5]")
    text = text[:text.index("  xnli:")] + "  tatoeba: {languages: [de, sw], layer: 2}\n" + \
        text[text.index("target_hparams"):]
    config = tmp_path / "parallel.yaml"
    config.write_text(text)
    code = cli.main(["run", str(config), "--workers", "2", "--store", f"file://{demo_run['store']}",
                     "--work", str(tmp_path / "w"), "--out", str(tmp_path / "report")])
    out = capsys.readouterr()
    assert code == 0, out.err[-2000:]
    assert "jobs: 4 done, 1 skipped, 0 failed, 0 blocked" in out.out
    plan = build_plan(load(str(config))[0])
    store = open_store(f"file://{demo_run['store']}")
    assert all(store.is_committed(j.output) for j in plan.jobs if j.kind != "aggregate")
