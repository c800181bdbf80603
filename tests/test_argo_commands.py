"""The commands in argo/ really work: each pod of the sweep WorkflowTemplate, run here as Argo would run it.

The WorkflowTemplate is walked in DAG order with the parameters Argo would substitute: the config URI
that `xfer config push` returns for configs/demo.yaml, a local store (file://), the stage lists that the
plan pod writes (read back through its output parameter paths) and, for each fan-out, job ids from
those lists. Each container's command and args are then executed as an invocation of the xfer CLI
(`xfer.cli.main`, in this process: one import of torch serves every pod) with the container's env and
working directory, its volumes mapped to fresh local folders. Every invocation must exit 0.

To stay fast, the fan-outs run a chain of items rather than all 64 jobs of the demo: every build job,
the cheapest intermediate job, and one target and one retrieval job that start from it; the aggregate
then reports the cells that were not run (which is not an error).
"""

from __future__ import annotations

import io
import json
import re
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import yaml

from xfer.cli import main

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = yaml.safe_load((ROOT / "argo/workflow-template.yaml").read_text())
PLACEHOLDER = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")


def substitute(text: str, scope: dict[str, str]) -> str:
    def value(match):
        name = match.group(1)
        assert name in scope, f"{{{{{name}}}}} has no value here (known: {sorted(scope)})"
        return scope[name]

    return PLACEHOLDER.sub(value, text)


class Pod:
    """Runs one container template of the WorkflowTemplate locally, like a pod would."""

    def __init__(self, root: Path, monkeypatch):
        self.root, self.monkeypatch, self.count = root, monkeypatch, 0

    def run(self, template: dict, scope: dict[str, str]) -> tuple[str, dict[str, str]]:
        self.count += 1
        pod_dir = self.root / f"pod-{self.count:02d}-{template['name']}"
        container = template["container"]
        # each volume of the pod is a fresh local folder (emptyDir semantics)
        mounts = {v["mountPath"]: pod_dir / v["name"] for v in container.get("volumeMounts", [])}
        for path in mounts.values():
            path.mkdir(parents=True)

        def local(path: str) -> str:
            for mount, folder in sorted(mounts.items(), key=lambda kv: -len(kv[0])):
                if path == mount or path.startswith(mount + "/"):
                    return str(folder) + path[len(mount):]
            return path

        assert container["command"] == ["xfer"], "every pod runs the xfer entry point"
        argv = [substitute(arg, scope) for arg in container["args"]]
        env = {e["name"]: local(substitute(e["value"], scope)) for e in container.get("env", [])}
        out = io.StringIO()
        with self.monkeypatch.context() as mp:
            for name, value in env.items():
                mp.setenv(name, value)
            mp.chdir(local(container["workingDir"]))
            with redirect_stdout(out):
                code = main(argv)
        assert code == 0, f"xfer {' '.join(argv)} exited {code}:\n{out.getvalue()[-2000:]}"
        outputs = {
            p["name"]: Path(local(p["valueFrom"]["path"])).read_text()
            for p in template.get("outputs", {}).get("parameters", [])
        }
        return out.getvalue(), outputs


def test_every_pod_command_of_the_template_runs_against_a_local_store(tmp_path, monkeypatch):
    monkeypatch.delenv("XFER_STORE", raising=False)
    store = f"file://{tmp_path / 'store'}"
    pushed = io.StringIO()
    with redirect_stdout(pushed):
        assert main(["config", "push", str(ROOT / "configs/demo.yaml"), "--store", store]) == 0
    config_uri = pushed.getvalue().strip().splitlines()[-1]
    assert config_uri.startswith("file://") and config_uri.endswith(".yaml")

    declared = [p["name"] for p in TEMPLATE["spec"]["arguments"]["parameters"]]
    scope = {f"workflow.parameters.{name}": value for name, value in (("config", config_uri), ("store", store))}
    assert sorted(declared) == sorted(name.split(".")[-1] for name in scope)

    templates = {t["name"]: t for t in TEMPLATE["spec"]["templates"]}
    dag = templates[TEMPLATE["spec"]["entrypoint"]]["dag"]["tasks"]
    pod = Pod(tmp_path / "pods", monkeypatch)
    plan = None
    ran: dict[str, list[str]] = {}
    for task in dag:  # the tasks are listed in dependency order
        template = templates[task["template"]]
        if "withParam" not in task:
            stdout, outputs = pod.run(template, scope)
            for name, value in outputs.items():
                scope[f"tasks.{task['name']}.outputs.parameters.{name}"] = value
            if task["name"] == "plan":
                plan = json.loads(stdout)
            ran[task["name"]] = [""]
            continue
        items = json.loads(substitute(task["withParam"], scope))
        assert items and all(re.fullmatch(r"[0-9a-f]{16}", i) for i in items), f"{task['name']}: {items}"
        for item in choose(task["name"], items, plan, ran):
            inputs = {f"inputs.parameters.{p['name']}": substitute(p["value"], {**scope, "item": item})
                      for p in task["arguments"]["parameters"]}
            pod.run(template, {**scope, **inputs})
            ran.setdefault(task["name"], []).append(item)

    assert list(ran) == ["plan", "build", "intermediate", "evaluate", "aggregate"]
    jobs = {job["id"]: job for job in plan["jobs"]}
    for task in ("build", "intermediate", "evaluate"):
        for job_id in ran[task]:
            assert (tmp_path / "store" / "jobs" / job_id / "output").is_dir(), f"{task} {job_id} committed nothing"
    assert {jobs[i]["kind"] for i in ran["evaluate"]} == {"target", "retrieval"}
    reports = tmp_path / "store" / "reports" / plan["name"]
    assert any(reports.rglob("summary.json")), "the aggregate pod committed no report to the store"


def choose(stage: str, items: list[str], plan: dict, ran: dict[str, list[str]]) -> list[str]:
    """The items of a fan-out this test runs: a chain whose dependencies have all run before it."""
    jobs = {job["id"]: job for job in plan["jobs"]}
    order = {job["id"]: n for n, job in enumerate(plan["jobs"])}
    assert all(i in jobs and jobs[i]["stage"] == stage for i in items)
    done = {i for ids in ran.values() for i in ids}
    ready = [i for i in items if set(jobs[i]["deps"]) <= done]
    if stage == "build":
        return items
    if stage == "intermediate":
        return [min(ready, key=lambda i: (jobs[i]["params"]["budget"], order[i]))]
    chosen = []
    for kind in ("target", "retrieval"):
        mine = [i for i in ready if jobs[i]["kind"] == kind and set(jobs[i]["deps"]) & set(ran["intermediate"])]
        assert mine, f"no {kind} job of the plan starts from intermediate job {ran['intermediate']}"
        chosen.append(mine[0])
    return chosen


@pytest.mark.parametrize("text", ["{{workflow.parameters.nope}}", "x {{ item }}"])
def test_substitute_refuses_unknown_placeholders(text):
    with pytest.raises(AssertionError):
        substitute(text, {"workflow.parameters.config": "c"})
