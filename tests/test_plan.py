"""Plans: content-addressed job ids, the shared budget-0 baseline, stage lists for Argo."""

import json
from pathlib import Path

from xfer import cli
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
    # 7 trained target tasks and 2 retrieval tasks (Tatoeba, BUCC) per start
    assert kinds.count("target") == 7 * 7 and kinds.count("retrieval") == 7 * 2 and kinds.count("aggregate") == 1
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
    # the three budget-40 intermediate jobs, their 3x7 targets and 3x2 retrievals, and the aggregate
    assert sorted(j.kind for j in changed_new) == sorted(["intermediate"] * 3 + ["target"] * 21 +
                                                         ["retrieval"] * 6 + ["aggregate"])
    for job in changed_new:
        if job.kind == "intermediate":
            assert job.params["budget"] == 40
        elif job.kind in ("target", "retrieval"):
            assert job.params["from"].endswith("@40")
    kept = [j for j in before.jobs if j.id in new]
    assert all(j.kind == "aggregate" or j.params.get("budget") != 80 and not
               str(j.params.get("from", "")).endswith("@80") for j in kept)
    assert len(kept) == len(before.jobs) - 31


def test_target_setting_touches_only_that_task():
    before = plan_of(DEMO)
    after = plan_of(DEMO.replace("panx: {languages: [en, de, es, sw, yo, jv]}", "panx: {languages: [en, sw]}"))
    changed = [j for j in after.jobs if j.id not in before.by_id]
    assert {j.kind for j in changed} == {"target", "aggregate"}
    assert {j.params["task"] for j in changed if j.kind == "target"} == {"panx"}
    # intermediate training is untouched
    assert {j.id for j in before.stage("intermediate")} == {j.id for j in after.stage("intermediate")}


def test_stages_out_for_argo(tmp_path, capsys):
    config = Path(__file__).parents[1] / "configs" / "demo.yaml"
    assert cli.main(["plan", str(config), "--stages-out", str(tmp_path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    stages = {p.stem: json.loads(p.read_text()) for p in tmp_path.glob("*.json")}
    assert set(stages) == {"build", "intermediate", "evaluate", "aggregate"}
    assert sum(len(v) for v in stages.values()) == len(printed["jobs"])
    assert all(len(i) == 16 for v in stages.values() for i in v)
