"""How big a sweep's Workflow objects get, and that the paper plan and a 10x plan fit the layout xfer submits them in.

The Workflow's status is modelled as the controller writes it: tests/argo_dag.py walks the rendered template over
the plan (every job pending, as on a first run; every pod succeeding, on one attempt) and records one NodeStatus
per node Argo creates (DAG, TaskGroup, Retry, Pod, Skipped; names, ids, phases, inputs, outputs, times, ...).
Argo keeps a Workflow under MAX_WORKFLOW_SIZE (1 MiB, etcd's object limit) by replacing status.nodes with
status.compressedNodes = base64(gzip(JSON of the nodes)) when the whole object is larger (workflow/packer);
past that the Workflow fails unless node status offloading (a database) is set up. Output parameters are
capped at 256 KiB: the plan's list of starts is the largest.

configs/paper.yaml needs CCGbank for `ccg`, so the paper plan here drops it (414 jobs); the 10x plan is the same
sweep with ten seeds (4,112 jobs). Both are planned with the real task registry and `data: hub`, offline: a
plan only fingerprints Hub coordinates.
"""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

import pytest
import yaml

from argo_dag import Walk, fake_workflow
from xfer import cluster, config as configs, schedule
from xfer.plan import build_plan
from xfer.store import LocalStore

ROOT = Path(__file__).resolve().parent.parent
MAX_WORKFLOW_SIZE = 1024 * 1024
MAX_OUTPUT_PARAMETER = 256 * 1024
TEMPLATES = {d["metadata"]["name"]: d for d in (yaml.safe_load((ROOT / "argo" / f).read_text()) for f in (
    "workflow-template.yaml", "workflow-template-large.yaml", "workflow-template-start.yaml"))}


def paper_config(tmp_path: Path, seeds: list[int]) -> Path:
    raw = yaml.safe_load((ROOT / "configs/paper.yaml").read_text())
    raw["intermediate"]["tasks"].remove("ccg")
    for mixture in raw["intermediate"]["mixtures"]:
        mixture["tasks"].remove("ccg")
    raw["intermediate"].pop("files")
    raw["seeds"] = seeds
    path = tmp_path / f"paper-{len(seeds)}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def plans(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sizes")
    out = {}
    for name, seeds in (("paper", [1]), ("10x", list(range(1, 11)))):
        cfg, sha = configs.load(str(paper_config(tmp, seeds)))
        plan = build_plan(cfg, sha)
        pending = schedule.pending(plan, LocalStore(tmp / "empty-store"))  # a first run: everything pending
        out[name] = (plan, pending)
    return out


def plan_outputs(pending: schedule.Schedule, tmp: Path) -> dict[str, str]:
    schedule.write(pending, tmp, stage=True)
    return {name: (tmp / f"{name}.json").read_text() for name in ("build", "starts", "stage", "summary")}


def walk(template: str, outputs: dict[str, str], name: str, arguments=None) -> tuple[Walk, list[Walk]]:
    """Walk a template with every pod succeeding; resource steps walk their child Workflow the same way."""
    children: list[Walk] = []

    def run_pod(t, scope):
        return 0, (outputs if t["name"] == "plan" else {})

    def create_child(manifest: str) -> str:
        child = yaml.safe_load(manifest)
        args = {p["name"]: p["value"] for p in child["spec"]["arguments"]["parameters"]}
        w = Walk(TEMPLATES[child["spec"]["workflowTemplateRef"]["name"]], args, run_pod,
                 name=f"{name}-start-{len(children):05d}"[:63])
        children.append(w)
        assert w.run() == "Succeeded"
        return "Succeeded"

    args = arguments or {"config": "s3://xfer-sweeps/xfer/configs/" + "0" * 64 + ".yaml", "store": "s3://xfer-sweeps/xfer"}
    w = Walk(TEMPLATES[template], args, run_pod, create_child, name=name)
    assert w.run() == "Succeeded"
    return w, children


def sizes(w: Walk, template: str) -> dict[str, int]:
    """The Workflow object's size with plain nodes, with compressed nodes, and as Argo stores it (plain while
    it fits, else compressed)."""
    params = {k.split(".")[-1]: v for k, v in w.scope.items() if k.startswith("workflow.parameters.")}
    doc = fake_workflow(w.name, template, params, TEMPLATES[template]["spec"], w.nodes)
    plain = len(json.dumps(doc, separators=(",", ":"), sort_keys=True))
    nodes = json.dumps(doc["status"].pop("nodes"), separators=(",", ":"), sort_keys=True).encode()
    doc["status"]["compressedNodes"] = base64.b64encode(gzip.compress(nodes, 6)).decode()
    compressed = len(json.dumps(doc, separators=(",", ":"), sort_keys=True))
    return {"nodes": len(w.nodes), "plain": plain, "compressed": compressed,
            "stored": plain if plain <= MAX_WORKFLOW_SIZE else compressed}


def test_paper_plan_fits_one_workflow_and_a_10x_plan_fits_child_workflows(plans, tmp_path):
    paper_plan, paper = plans["paper"]
    big_plan, big = plans["10x"]
    assert len(paper_plan.jobs) == 414 and len(big_plan.jobs) > 9 * len(paper_plan.jobs)
    assert cluster.layout_for(paper_plan) == "xfer-sweep" and cluster.layout_for(big_plan) == "xfer-sweep-large"
    report = {}

    # the paper plan, one Workflow: ~0.9 MiB of plain status, compressed by Argo once retries push it over 1 MiB
    outputs = plan_outputs(paper, tmp_path / "paper")
    w, _ = walk("xfer-sweep", outputs, "xfer-paper-steps-x7k2p")
    assert sum(n["type"] == "Pod" for n in w.nodes.values()) == paper.scheduled + 3  # + plan, stage, aggregate
    report["paper"] = size = sizes(w, "xfer-sweep")
    assert size["stored"] <= MAX_WORKFLOW_SIZE and size["compressed"] <= MAX_WORKFLOW_SIZE / 4, size
    assert max(len(v) for v in outputs.values()) <= MAX_OUTPUT_PARAMETER
    # xfer submit's automatic choice keeps one Workflow well inside the limit (2x headroom for retries, messages)
    per_job = size["compressed"] / len(paper_plan.jobs)
    assert cluster.LARGE_LAYOUT_JOBS * per_job * 2 <= MAX_WORKFLOW_SIZE

    # the 10x plan as one Workflow would not fit, even compressed: hence xfer-sweep-large
    outputs = plan_outputs(big, tmp_path / "10x")
    single, _ = walk("xfer-sweep", outputs, "xfer-paper-steps-q9w4z")
    report["10x single"] = size = sizes(single, "xfer-sweep")
    assert size["compressed"] > MAX_WORKFLOW_SIZE, size

    # ... where the parent holds a step per start (room for 2x more, compressed), each child one start's jobs:
    # small, uncompressed
    parent, children = walk("xfer-sweep-large", outputs, "xfer-paper-steps-q9w4z")
    assert len(children) == len(big.starts)
    assert sum(len(c.pods) for c in children) == big.scheduled - len(big.build)
    size = sizes(parent, "xfer-sweep-large")
    assert size["stored"] <= MAX_WORKFLOW_SIZE and size["compressed"] <= MAX_WORKFLOW_SIZE / 2, size
    biggest = max(sizes(c, "xfer-start")["plain"] for c in children)
    assert biggest <= MAX_WORKFLOW_SIZE / 8
    assert max(len(v) for v in outputs.values()) <= MAX_OUTPUT_PARAMETER
    report["10x large"] = {"parent": size, "children": len(children), "largest child plain": biggest,
                           "starts parameter": len(outputs["starts"])}
    print(json.dumps(report))
