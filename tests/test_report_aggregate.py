"""The aggregate job on a real local store holding hand-made job outputs (results.json and per-example
scores): paired intervals from the committed per-example files and the config's `report:` settings; jobs written
before per-example scores say so per cell; a corrupt results.json (invalid JSON, wrong shape, a NaN, a file
failing the store's verification) is a missing cell with its reason, not a crash; the oracle section exists only
when some target job ran the oracle pass."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest
from test_report_paired import synthetic

from xfer import cli
from xfer import example_scores as E
from xfer.config import load
from xfer.plan import build_plan
from xfer.report.paired import NO_EXAMPLES
from xfer.store import open_store

CONFIG = """
name: paired
model: {build: {vocab_size: 300, hidden_size: 16, num_layers: 1, num_heads: 2, intermediate_size: 32}}
data: bundled
intermediate: {tasks: [mnli, squad], budgets: [0, 10, 100]}
targets:
  xnli: {languages: [en, de, sw]}
  panx: {languages: [en, sw]}
  bucc2018: {languages: [de]}
seeds: [1]
report: {bootstrap_resamples: 1000, bootstrap_seed: 3}
"""
QUALITY = {0: 0.5, 10: 0.55, 100: 0.65}


@pytest.fixture
def no_figures(monkeypatch):
    """The data path only: figures are checked in test_report_figures.py, and rendering them takes seconds."""
    import xfer.report

    monkeypatch.setattr(xfer.report, "render_plot", lambda summary, path: path.write_bytes(b""))
    monkeypatch.setattr(xfer.report, "render_figures", lambda summary, folder: [])


def make_store(tmp_path, examples=True, oracle_pass=(lambda job: False)):
    """Commit a results.json (and per-example scores) for every target and retrieval job of the plan; returns
    (config path, store URI, plan, {job id: folder committed})."""
    config = tmp_path / "paired.yaml"
    config.write_text(CONFIG)
    uri = f"file://{tmp_path / 'store'}"
    store = open_store(uri)
    plan = build_plan(load(str(config))[0])
    cells = plan.stage("aggregate")[0].params["cells"]
    budget_of = {c["job"]: c["budget"] for c in cells}
    for job in plan.stage("evaluate"):
        folder = tmp_path / "out" / job.id
        rng = np.random.default_rng(zlib.crc32(job.id.encode()))
        per_task = {}
        for task in job.tasks:
            langs = job.params["tasks"][task]["languages"] if job.kind == "target" else job.params["languages"]
            metrics = {}
            for lang in langs:
                scores = synthetic(task, lang, rng, QUALITY[budget_of[job.id]])
                metrics[lang] = E.metrics(scores)
                if examples:
                    E.write(scores, folder / E.relpath(task, lang))
            ran = oracle_pass(job)
            per_task[task] = {"metrics": metrics, "dev": {}, "selection": {"oracle_pass": ran},
                              "oracle": {lang: m for lang, m in metrics.items()} if ran else {}}
        results = {"tasks": per_task} if job.kind == "target" else {"metrics": per_task[job.tasks[0]]["metrics"]}
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "results.json").write_text(json.dumps(results))
        store.commit(job.output, folder)
    return config, uri, plan


def aggregate(tmp_path, config, uri) -> tuple[dict, str]:
    out = tmp_path / "report"
    assert cli.main(["aggregate", str(config), "--store", uri, "--work", str(tmp_path / "work"),
                     "--out", str(out)]) == 0
    return json.loads((out / "summary.json").read_text()), (out / "summary.md").read_text()


def test_paired_intervals_from_committed_per_example_scores(tmp_path):
    config, uri, _ = make_store(tmp_path)
    summary, md = aggregate(tmp_path, config, uri)
    paired = summary["paired"]
    assert paired["resamples"] == 1000 and paired["rng_seed"] == 3  # the config's report: section
    assert [(r["intermediate_task"], r["budget"]) for r in paired["rows"]] == [
        ("mnli", 10), ("mnli", 100), ("squad", 10), ("squad", 100)]
    for row in paired["rows"]:
        assert row["unavailable"] == {}
        assert all(c["ci95"] is not None for c in row["cells"]) and len(row["cells"]) == 6
        assert row["low_resource"]["ci95"] is not None and row["overall"]["p_value"] is not None
    assert {e["group"] for e in paired["dose_response"]} == {"low_resource", "high_resource", "overall"}
    assert "1,000 resamples, RNG seed 3" in md
    assert all((tmp_path / "report" / f).is_file() for f in ("heatmap-mnli.png", "heatmap-squad.png", "scatter.png"))


def test_jobs_without_per_example_scores_say_so_per_cell(tmp_path, no_figures):
    config, uri, _ = make_store(tmp_path, examples=False)
    summary, md = aggregate(tmp_path, config, uri)
    for row in summary["paired"]["rows"]:
        assert all(c["ci95"] is None and c["reason"] == NO_EXAMPLES and c["delta"] is not None for c in row["cells"])
        assert row["unavailable"] == {NO_EXAMPLES: sorted(
            [f"{t}/{lang}/seed=1" for t, lang in (("xnli", "en"), ("xnli", "de"), ("xnli", "sw"), ("panx", "en"),
                                                  ("panx", "sw"), ("bucc2018", "de"))] +
            [f"baseline {t}/{lang}/seed=1" for t, lang in (("xnli", "en"), ("xnli", "de"), ("xnli", "sw"),
                                                           ("panx", "en"), ("panx", "sw"), ("bucc2018", "de"))])}
    assert (f"- mnli @ 10: {NO_EXAMPLES}: xnli: de en sw; panx: en sw; bucc2018: de; baseline: xnli: de en sw; "
            f"panx: en sw; bucc2018: de") in md


def _corrupt(tmp_path, plan, uri, how):
    store = open_store(uri)
    job = next(j for j in plan.stage("evaluate") if j.kind == "target" and j.tasks == ("xnli",)
               and j.params["from"] == "mnli@100")
    if how == "flip a byte":  # the committed file no longer matches its manifest
        path = tmp_path / "store" / job.output / "results.json"
        data = bytearray(path.read_bytes())
        data[5] ^= 0x01
        path.write_bytes(bytes(data))
        return job
    store.uncommit(job.output)
    folder = tmp_path / "bad" / job.id
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(how)
    store.commit(job.output, folder)
    return job


@pytest.mark.parametrize("how, reason", [
    ("{not json", "invalid JSON"),
    ("[1, 2]", "expected a JSON object, got list"),
    ('{"tasks": {"xnli": {"metrics": []}}}', "'metrics' is not an object"),
    ('{"tasks": {"xnli": {"metrics": {"de": {"accuracy": NaN}}}}}', "metrics.de.accuracy is nan, not a percentage"),
    ('{"tasks": {"panx": {}}}', "no object for 'xnli' under 'tasks'"),
    ("flip a byte", "corrupt file"),
])
def test_a_corrupt_results_json_is_a_missing_cell_with_its_reason(tmp_path, how, reason, no_figures):
    config, uri, plan = make_store(tmp_path)
    job = _corrupt(tmp_path, plan, uri, how)
    summary, md = aggregate(tmp_path, config, uri)
    row = next(r for r in summary["rows"] if (r["intermediate_task"], r["budget"]) == ("mnli", 100))
    assert row["missing"] == ["xnli/de/seed=1", "xnli/en/seed=1", "xnli/sw/seed=1"]
    assert row["tasks"]["xnli"] is None and row["tasks"]["panx"] is not None and row["overall"] is None
    for label in row["missing"]:
        assert row["missing_reasons"][label].startswith(f"results.json of job {job.id} unreadable: ")
        assert reason in row["missing_reasons"][label]
    assert f"- mnli @ 100: xnli/de/seed=1, xnli/en/seed=1, xnli/sw/seed=1: results.json of job {job.id}" in md
    others = [r for r in summary["rows"] if (r["intermediate_task"], r["budget"]) != ("mnli", 100)]
    assert all(r["missing"] == [] for r in others)
    paired = next(r for r in summary["paired"]["rows"] if (r["intermediate_task"], r["budget"]) == ("mnli", 100))
    assert paired["tasks"]["xnli"]["delta"] is None and paired["tasks"]["panx"]["ci95"] is not None


def test_no_oracle_pass_anywhere_means_no_oracle_section(tmp_path, no_figures):
    config, uri, _ = make_store(tmp_path)
    summary, md = aggregate(tmp_path, config, uri)
    assert "oracle" not in summary and not (tmp_path / "report" / "results_oracle.csv").exists()
    assert summary["oracle_selection"].startswith("not run")
    (line,) = [x for x in md.splitlines() if x.startswith("Oracle selection:")]
    assert "`selection: {oracle: true}`" in line and "## Oracle selection" not in md


def test_some_oracle_passes_keep_the_oracle_section(tmp_path, no_figures):
    config, uri, _ = make_store(tmp_path, oracle_pass=lambda job: job.tasks == ("xnli",))
    summary, md = aggregate(tmp_path, config, uri)
    assert (tmp_path / "report" / "results_oracle.csv").is_file() and "## Oracle selection" in md
    used = summary["oracle"]["default_selection_used"]
    assert used["oracle pass not run"] == ["panx/en", "panx/sw"]
    assert used["no target training to select a checkpoint from (retrieval)"] == ["bucc2018/de"]
    assert "oracle_selection" not in summary


def test_a_published_system_may_not_take_a_sweep_name(tmp_path, capsys):
    config, uri, _ = make_store(tmp_path, examples=False)
    table = tmp_path / "t.csv"
    table.write_text("intermediate_task,budget,seed,target_task,language,metric,value\nmnli,0,0,xnli,avg,accuracy,80\n")
    assert cli.main(["aggregate", str(config), "--store", uri, "--work", str(tmp_path / "w"), "--results",
                     str(table), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "intermediate_task 'mnli' is also an intermediate task of the sweep" in err and err.count("\n") == 1
