"""Plans: content-addressed job ids, the shared budget-0 baseline, target tasks trained once per group,
stage lists for Argo."""

import dataclasses
import json
from pathlib import Path

import pytest

from xfer import cli, tasks
from xfer.config import parse
from xfer.plan import build_plan

DEMO = (Path(__file__).parents[1] / "configs" / "demo.yaml").read_text()


def plan_of(text):
    return build_plan(parse(text, "demo.yaml"))


def ids(plan):
    return {job.label + "|" + json.dumps(job.params.get("from")): job.id for job in plan.jobs}


def test_shape_of_the_demo_plan():
    plan = plan_of(DEMO)
    kinds = [job.kind for job in plan.jobs]
    # 3 intermediate tasks x 2 non-zero budgets; targets from 6 checkpoints + 1 shared baseline
    assert kinds.count("build") == 1 and kinds.count("intermediate") == 6
    # 7 trained target tasks in 6 target jobs (XQuAD and MLQA train once together) and 2 retrieval tasks
    # (Tatoeba, BUCC) per start
    assert kinds.count("target") == 7 * 6 and kinds.count("retrieval") == 7 * 2 and kinds.count("aggregate") == 1
    assert len(plan.jobs) == 1 + 6 + 42 + 14 + 1
    assert not any(job.params.get("budget") == 0 for job in plan.jobs if job.kind == "intermediate")
    seen = set()
    for job in plan.jobs:  # every job comes after its dependencies
        assert set(job.deps) <= seen
        seen.add(job.id)
    cells = plan.stage("aggregate")[0].params["cells"]
    assert len(cells) == 3 * 3 * 9  # every (intermediate task, budget, seed, target task)
    baseline = {c["job"] for c in cells if c["budget"] == 0 and c["target_task"] == "xnli"}
    assert len(baseline) == 1  # budget 0 is one shared job for all intermediate tasks


def test_same_inputs_same_ids():
    assert [j.id for j in plan_of(DEMO).jobs] == [j.id for j in plan_of(DEMO).jobs]
    # comments and key order do not matter; only values do
    assert [j.id for j in plan_of("# a comment\n" + DEMO).jobs] == [j.id for j in plan_of(DEMO).jobs]


def test_changed_budget_changes_only_dependent_ids():
    before = plan_of(DEMO)
    after = plan_of(DEMO.replace("budgets: [0, 20, 80]", "budgets: [0, 20, 40]"))
    old, new = {j.id: j for j in before.jobs}, {j.id: j for j in after.jobs}
    changed_new = [j for j in after.jobs if j.id not in old]
    # the three budget-40 intermediate jobs, their 3x6 target jobs and 3x2 retrievals, and the aggregate
    assert sorted(j.kind for j in changed_new) == sorted(["intermediate"] * 3 + ["target"] * 18 +
                                                         ["retrieval"] * 6 + ["aggregate"])
    for job in changed_new:
        if job.kind == "intermediate":
            assert job.params["budget"] == 40
        elif job.kind in ("target", "retrieval"):
            assert job.params["from"].endswith("@40")
    kept = [j for j in before.jobs if j.id in new]
    assert all(j.kind == "aggregate" or j.params.get("budget") != 80 and not
               str(j.params.get("from", "")).endswith("@80") for j in kept)
    assert len(kept) == len(before.jobs) - 28


def test_target_setting_touches_only_that_task():
    before = plan_of(DEMO)
    after = plan_of(DEMO.replace("panx: {languages: [en, de, es, sw, yo, jv]}", "panx: {languages: [en, sw]}"))
    changed = [j for j in after.jobs if j.id not in before.by_id]
    assert {j.kind for j in changed} == {"target", "aggregate"}
    assert {j.tasks for j in changed if j.kind == "target"} == {("panx",)}
    # intermediate training is untouched
    assert {j.id for j in before.stage("intermediate")} == {j.id for j in after.stage("intermediate")}


def targets_of(plan, start):
    """{tasks of a target job: job} for the target jobs that start from `start` (e.g. "squad@80")."""
    return {job.tasks: job for job in plan.jobs if job.kind == "target" and job.params["from"] == start}


def test_xquad_and_mlqa_train_once_per_start_in_the_demo():
    plan = plan_of(DEMO)
    groups = targets_of(plan, "squad@80")
    assert set(groups) == {("xnli",), ("panx",), ("xquad", "mlqa"), ("pawsx",), ("udpos",), ("tydiqa",)}
    shared = groups[("xquad", "mlqa")]
    assert shared.label == "target xquad+mlqa from squad@80 seed=1"
    # each task keeps its languages and the test data it is scored on; the training data is SQuAD's, once
    assert {t: v["languages"] for t, v in shared.params["tasks"].items()} == {"xquad": ["en", "de", "es"],
                                                                             "mlqa": ["en", "de", "es"]}
    xquad, mlqa = shared.params["tasks"]["xquad"]["data"], shared.params["tasks"]["mlqa"]["data"]
    assert xquad["test"]["de"] != mlqa["test"]["de"]
    assert set(xquad["lang_dev"].values()) == {None} and None not in mlqa["lang_dev"].values()
    assert set(shared.params["data"]) == {"train", "dev"}
    # the report's cells are still one per target task, both pointing at the shared job
    cells = [c for c in plan.stage("aggregate")[0].params["cells"]
             if c["intermediate_task"] == "squad" and c["budget"] == 80]
    assert [c["target_task"] for c in cells] == ["xnli", "panx", "xquad", "tatoeba", "pawsx", "udpos", "mlqa",
                                                 "tydiqa", "bucc2018"]
    assert {c["target_task"] for c in cells if c["job"] == shared.id} == {"xquad", "mlqa"}


def test_different_hparams_keep_xquad_and_mlqa_apart():
    before = plan_of(DEMO)
    after = plan_of(DEMO.replace("mlqa: {languages: [en, de, es]}",
                                 "mlqa: {languages: [en, de, es], hparams: {lr: 2.0e-3}}"))
    kinds = [job.kind for job in after.jobs]
    assert kinds.count("target") == 7 * 7 and len(after.jobs) == len(before.jobs) + 7
    groups = targets_of(after, "mnli@20")
    assert ("xquad", "mlqa") not in groups and {("xquad",), ("mlqa",)} <= set(groups)
    assert groups[("mlqa",)].params["hparams"]["lr"] == 2.0e-3
    assert groups[("xquad",)].params["hparams"] == targets_of(before, "mnli@20")[("xquad", "mlqa")].params["hparams"]
    assert groups[("xquad",)].label == "target xquad from mnli@20 seed=1"
    # only the split group's jobs and the aggregate are new; every other job keeps its id
    new = [j for j in after.jobs if j.id not in before.by_id]
    assert sorted((j.kind, j.tasks) for j in new) == sorted([("target", ("xquad",))] * 7 + [("target", ("mlqa",))] * 7
                                                            + [("aggregate", ())])
    gone = [j for j in before.jobs if j.id not in after.by_id]
    assert sorted((j.kind, j.tasks) for j in gone) == sorted([("target", ("xquad", "mlqa"))] * 7 + [("aggregate", ())])


def test_grouping_compares_resolved_hparams():
    # the sweep's target_hparams already set lr 1e-3: repeating it for mlqa changes nothing
    same = DEMO.replace("mlqa: {languages: [en, de, es]}", "mlqa: {languages: [en, de, es], hparams: {lr: 1.0e-3}}")
    assert [j.id for j in plan_of(same).jobs] == [j.id for j in plan_of(DEMO).jobs]
    # the same override for both keeps them together
    both = DEMO.replace("xquad: {languages: [en, de, es]}", "xquad: {languages: [en, de, es], hparams: {epochs: 3}}")
    both = both.replace("mlqa: {languages: [en, de, es]}", "mlqa: {languages: [en, de, es], hparams: {epochs: 3}}")
    (shared,) = [j for j in plan_of(both).jobs if j.kind == "target" and "mlqa" in j.tasks
                 and j.params["from"] == "pretrained"]
    assert shared.tasks == ("xquad", "mlqa") and shared.params["hparams"]["epochs"] == 3


def test_a_group_s_language_change_touches_only_the_group():
    before = plan_of(DEMO)
    after = plan_of(DEMO.replace("mlqa: {languages: [en, de, es]}", "mlqa: {languages: [en, de]}"))
    new = [j for j in after.jobs if j.id not in before.by_id]
    assert sorted((j.kind, j.tasks) for j in new) == sorted([("target", ("xquad", "mlqa"))] * 7 + [("aggregate", ())])
    assert all(j.params["tasks"]["xquad"]["languages"] == ["en", "de", "es"] for j in new if j.kind == "target")


@pytest.mark.parametrize("change", [
    {"dev": None},  # no English dev set: another model selection
    {"train": dataclasses.replace(tasks.get("mlqa").train, columns={**tasks.get("mlqa").train.columns,
                                                                    "question": "title"})},  # other input
    {"labels": ("x",)},
])
def test_grouping_follows_the_task_declarations(monkeypatch, change):
    monkeypatch.setitem(tasks.TASKS, "mlqa", dataclasses.replace(tasks.get("mlqa"), **change))
    groups = targets_of(plan_of(DEMO), "pretrained")
    assert ("xquad", "mlqa") not in groups and {("xquad",), ("mlqa",)} <= set(groups)


def test_stages_out_for_argo(tmp_path, capsys):
    config = Path(__file__).parents[1] / "configs" / "demo.yaml"
    assert cli.main(["plan", str(config), "--stages-out", str(tmp_path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    stages = {p.stem: json.loads(p.read_text()) for p in tmp_path.glob("*.json")}
    assert set(stages) == {"build", "intermediate", "evaluate", "aggregate"}
    assert sum(len(v) for v in stages.values()) == len(printed["jobs"])
    assert all(len(i) == 16 for v in stages.values() for i in v)
