"""The sweep Workflows run as Argo would run them: every pod's command a real `xfer` CLI call against a real S3 server.

tests/argo_dag.py walks the rendered WorkflowTemplate (argo/*.yaml) in the controller's order; each container
runs in this process (`xfer.cli.main`: one import of torch serves every pod) with the container's env, working
directory and volumes (fresh local folders), against the S3 server of the `s3_server` fixture. The sweep is tiny
(a built model, MNLI with budgets 0 and 2, XNLI and Tatoeba) but reads `data: hub`: the "Hub" is the bundled
fixtures behind a stand-in for `datasets.load_dataset`, which refuses Hub reads from pods that run with
HF_HUB_OFFLINE=1, so every job pod must read the splits the stage pod put into the store.

Checked: a first run stages, builds and runs every job, each evaluate job after its own start only; a rerun of
the finished sweep creates no job pod (and no stage pod); after one output is dropped, a rerun schedules that one
job, and so does the child-Workflow layout (xfer-sweep-large + xfer-start).
"""

from __future__ import annotations

import io
import json
import uuid
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import yaml

from argo_dag import Walk, substitute
from xfer.cli import main
from xfer.data import BUNDLED

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = {d["metadata"]["name"]: d for d in (yaml.safe_load((ROOT / "argo" / f).read_text()) for f in (
    "workflow-template.yaml", "workflow-template-large.yaml", "workflow-template-start.yaml"))}
CONFIG = {
    "name": "harness",
    "model": {"build": {"vocab_size": 300, "hidden_size": 16, "num_layers": 1, "num_heads": 2,
                        "intermediate_size": 32, "pretrain_steps": 0, "seed": 0}},
    "data": "hub",
    "intermediate": {"tasks": ["mnli"], "budgets": [0, 2], "checkpoint_every": 1,
                     "hparams": {"lr": 1.0e-3, "batch_size": 4, "max_length": 32}},
    "targets": {"xnli": {"languages": ["en", "de"]}, "tatoeba": {"languages": ["de"], "layer": 1}},
    "target_hparams": {"lr": 1.0e-3, "batch_size": 4, "max_length": 32, "max_steps": 2, "eval_batch_size": 32},
    "selection": {"max_points": 1},
    "seeds": [1],
}


class FakeHub:
    """`datasets.load_dataset` for Hub names served from the bundled fixtures (a local mirror in the Hub
    layout); refuses when HF_HUB_OFFLINE=1, as datasets does offline. Builder names (json, parquet) pass."""

    def __init__(self, real):
        self.real, self.calls = real, []

    def __call__(self, path, name=None, *args, **kwargs):
        if path in ("json", "parquet", "csv", "arrow"):
            return self.real(path, name, *args, **kwargs)
        import os

        self.calls.append((path, name, kwargs.get("split"), os.environ.get("HF_HUB_OFFLINE")))
        if os.environ.get("HF_HUB_OFFLINE") == "1":
            raise ConnectionError(f"offline: the Hub is not reachable from this pod ({path} {name})")
        file = BUNDLED / path / name / f"{kwargs['split']}.jsonl"
        if not file.is_file():
            raise ValueError(f'Unknown split "{kwargs["split"]}" for {path} {name}')
        return self.real("json", data_files=str(file), split="train")


class Pods:
    """Runs container templates locally, like a pod: env, working directory, emptyDir volumes."""

    def __init__(self, root: Path, monkeypatch):
        self.root, self.monkeypatch, self.count = root, monkeypatch, 0

    def __call__(self, template: dict, scope: dict) -> tuple[int, dict]:
        self.count += 1
        pod_dir = self.root / f"pod-{self.count:03d}-{template['name']}"
        container = template["container"]
        volumes = {v["name"] for v in template.get("volumes", [])}
        mounts = {}
        for mount in container.get("volumeMounts", []):
            assert mount["name"] in volumes, f"{template['name']}: mount {mount['name']} has no volume"
            mounts[mount["mountPath"]] = pod_dir / mount["name"]
            mounts[mount["mountPath"]].mkdir(parents=True)

        def local(path: str) -> str:
            for mount, folder in sorted(mounts.items(), key=lambda kv: -len(kv[0])):
                if path == mount or path.startswith(mount + "/"):
                    return str(folder) + path[len(mount):]
            return path

        patch = json.loads(substitute(template["podSpecPatch"], scope))
        assert patch["terminationGracePeriodSeconds"] > 0
        assert container["command"] == ["xfer"]
        argv = [substitute(arg, scope) for arg in container["args"]]
        env = {e["name"]: local(substitute(e["value"], scope)) for e in container.get("env", []) if "value" in e}
        out = io.StringIO()
        with self.monkeypatch.context() as mp:
            mp.delenv("HF_HUB_OFFLINE", raising=False)
            for name, value in env.items():
                mp.setenv(name, value)
            mp.chdir(local(container["workingDir"]))
            with redirect_stdout(out):
                code = main(argv)
        outputs = {p["name"]: Path(local(p["valueFrom"]["path"])).read_text()
                   for p in template.get("outputs", {}).get("parameters", []) if code == 0}
        assert code == 0, f"xfer {' '.join(argv)} exited {code}:\n{out.getvalue()[-2000:]}"
        return code, outputs


@pytest.fixture(scope="module")
def harness(s3_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("harness")
    store = f"s3://{s3_server.bucket}/harness-{uuid.uuid4().hex[:8]}"
    config = tmp / "harness.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    with pytest.MonkeyPatch.context() as mp:
        import datasets

        hub = FakeHub(datasets.load_dataset)
        mp.setattr(datasets, "load_dataset", hub)
        mp.delenv("XFER_STORE", raising=False)
        pushed = io.StringIO()
        with redirect_stdout(pushed):
            assert main(["config", "push", str(config), "--store", store]) == 0
        uri = pushed.getvalue().strip().splitlines()[-1]
        plan_out = io.StringIO()
        with redirect_stdout(plan_out):
            assert main(["plan", str(config)]) == 0
        yield {"store": store, "config": uri, "plan": json.loads(plan_out.getvalue()), "hub": hub, "mp": mp,
               "tmp": tmp}


def run(harness, template: str, label: str) -> Walk:
    pods = Pods(harness["tmp"] / label, harness["mp"])
    children = []

    def create_child(manifest: str) -> str:
        child = yaml.safe_load(manifest)
        assert child["kind"] == "Workflow" and set(child["spec"]) == {"workflowTemplateRef", "arguments"}
        args = {p["name"]: p["value"] for p in child["spec"]["arguments"]["parameters"]}
        walk = Walk(TEMPLATES[child["spec"]["workflowTemplateRef"]["name"]], args, pods, name=f"child{len(children)}")
        children.append(walk)
        return walk.run()

    walk = Walk(TEMPLATES[template], {"config": harness["config"], "store": harness["store"]}, pods, create_child)
    assert walk.run() == "Succeeded"
    walk.children = children
    return walk


def job_pods(walk: Walk) -> list[str]:
    """Job ids of the `xfer job run` pods of a walk and its children, in the order they ran."""
    walks = [walk, *getattr(walk, "children", [])]
    return [args[2] for w in walks for args in w.pod_args() if args[:2] == ["job", "run"]]


def test_first_run_stages_then_runs_each_start_as_its_own_chain(harness):
    hub_before = len(harness["hub"].calls)
    walk = run(harness, "xfer-sweep", "first")
    jobs = {j["id"]: j for j in harness["plan"]["jobs"]}
    ran = job_pods(walk)
    assert sorted(ran) == sorted(i for i, j in jobs.items() if j["kind"] != "aggregate")  # every job, once
    assert [t for t, _ in walk.pods][:2] == ["plan", "stage"] and [t for t, _ in walk.pods][-1] == "aggregate"
    # every job ran after the jobs it depends on; an evaluate job depends on its own start only
    for position, job_id in enumerate(ran):
        assert set(jobs[job_id]["deps"]) <= set(ran[:position])
        if jobs[job_id]["kind"] in ("target", "retrieval"):
            starts = [d for d in jobs[job_id]["deps"] if jobs[d]["kind"] == "intermediate"]
            assert len(starts) <= 1
    # the stage pod was the only one to read the Hub; job pods read the store (HF_HUB_OFFLINE=1)
    calls = harness["hub"].calls[hub_before:]
    assert calls and all(offline is None for *_, offline in calls)
    plan_node = next(n for n in walk.nodes.values() if n["displayName"] == "plan")
    summary = json.loads(next(p["value"] for p in plan_node["outputs"]["parameters"] if p["name"] == "summary"))
    assert summary == {"jobs": len(ran), "done": 0, "scheduled": len(ran), "starts": 2}


def test_rerun_of_a_finished_sweep_creates_no_job_pod(harness):
    walk = run(harness, "xfer-sweep", "rerun")
    assert [t for t, _ in walk.pods] == ["plan", "aggregate"]  # no stage, build or job pod
    phases = {n["displayName"]: n["phase"] for n in walk.nodes.values()}
    assert phases["stage"] == phases["build"] == phases["starts"] == "Skipped"


@pytest.mark.parametrize("template", ["xfer-sweep", "xfer-sweep-large"])
def test_rerun_after_a_lost_output_schedules_that_job_only(harness, template):
    from xfer.store import open_store

    target = next(j for j in harness["plan"]["jobs"] if j["kind"] == "target" and j["deps"]
                  and any(harness_job(harness, d)["kind"] == "intermediate" for d in j["deps"]))
    open_store(harness["store"]).uncommit(f"jobs/{target['id']}/output")
    walk = run(harness, template, f"lost-{template}")
    assert job_pods(walk) == [target["id"]]
    if template == "xfer-sweep-large":
        assert len(walk.children) == 1  # one child Workflow for the one start with work left
        assert [t for t, _ in walk.pods] == ["plan", "aggregate"]


def harness_job(harness, job_id):
    return next(j for j in harness["plan"]["jobs"] if j["id"] == job_id)
