"""Walk a rendered Argo Workflow the way the workflow controller does, without a cluster.

`Walk(templates, arguments, run_pod, create_child)` executes the entrypoint of a WorkflowTemplate:

- DAG tasks run once every task their `depends` names has finished (in template order among the ready
  ones); `depends` is evaluated with Argo's semantics (tests/argo_expr.py: a bare name is Succeeded, Skipped or
  Daemoned); false -> the task is Omitted; `when` false -> Skipped; a `withParam` of an empty list -> Skipped,
  otherwise a TaskGroup with one child per item (`name(i:desc)`, maps described as sorted `key:value` pairs);
- `{{...}}` placeholders are substituted from the scope Argo has at that point (workflow parameters and name,
  inputs, `item` / `item.key`, outputs of finished tasks); an unknown placeholder is an error;
- a container template becomes `run_pod(template, scope) -> (exit code, outputs)`, a Pod node (inside a Retry
  node when the template has a retryStrategy); a resource template `create`s a child Workflow through
  `create_child(manifest) -> phase`;
- phases: a TaskGroup fails if a child failed; a DAG fails if one of its `target` tasks failed.

Every node is recorded as Argo records it in `status.nodes` (id, name, displayName, type, templateName, phase,
boundaryID, children, inputs, outputs, ...), which is what tests/test_dag_size.py sizes.
"""

from __future__ import annotations

import hashlib
import json
import re

from argo_expr import depends_true, when_true

PLACEHOLDER = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
DONE = ("Succeeded", "Failed", "Error", "Skipped", "Omitted")


def substitute(text: str, scope: dict[str, str]) -> str:
    def value(match):
        name = match.group(1)
        assert name in scope, f"{{{{{name}}}}} has no value here (known: {sorted(scope)})"
        return scope[name]

    return PLACEHOLDER.sub(value, text)


def substitute_all(value, scope):
    """Substitute inside every string of a JSON-like structure."""
    if isinstance(value, str):
        return substitute(value, scope)
    if isinstance(value, list):
        return [substitute_all(v, scope) for v in value]
    if isinstance(value, dict):
        return {k: substitute_all(v, scope) for k, v in value.items()}
    return value


def item_desc(item) -> str:
    """How Argo names an expanded item (operator.go processItem / generateNodeName)."""
    if isinstance(item, dict):
        text = ",".join(sorted(f"{k}:{v}" for k, v in item.items()))
    else:
        text = str(item)
    return text.replace("(", "").replace(")", "")


class Walk:
    def __init__(self, doc: dict, arguments: dict[str, str], run_pod, create_child=None,
                 name: str = "wf-abcde", started="2026-01-01T00:00:00Z", finished="2026-01-01T01:00:00Z"):
        self.spec = doc["spec"]
        self.templates = {t["name"]: t for t in self.spec["templates"]}
        self.run_pod, self.create_child = run_pod, create_child
        self.name = name
        self.nodes: dict[str, dict] = {}
        self.pods: list[tuple[str, dict]] = []  # (template name, scope) in the order they ran
        self.times = (started, finished)
        params = {p["name"]: p.get("value") for p in self.spec.get("arguments", {}).get("parameters", [])}
        params.update(arguments)
        missing = [k for k, v in params.items() if v is None]
        assert not missing, f"workflow parameters without a value: {missing}"
        self.scope = {f"workflow.parameters.{k}": v for k, v in params.items()}
        self.scope["workflow.name"] = name

    # nodes ----------------------------------------------------------------------------------------

    def _id(self, node_name: str) -> str:
        """Argo's node ids: the workflow name and a 32-bit FNV hash of the node name (10 digits at most)."""
        h = 0x811C9DC5
        for byte in node_name.encode():
            h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
        return f"{self.name}-{h}"

    def node(self, name: str, display: str, kind: str, template: str | None, boundary: str | None,
             phase: str = "Running", message: str | None = None, **extra) -> dict:
        node_id = self.name if name == self.name else self._id(name)
        node = {"id": node_id, "name": name, "displayName": display, "type": kind, "phase": phase}
        if template:
            node["templateName"] = template
            node["templateScope"] = "local/"
        if boundary:
            node["boundaryID"] = boundary
        if message:
            node["message"] = message
        node["startedAt"] = self.times[0]
        node.update(extra)
        self.nodes[node_id] = node
        return node

    def finish(self, node: dict, phase: str, message: str | None = None) -> dict:
        node["phase"] = phase
        node["finishedAt"] = self.times[1]
        node["progress"] = "1/1"
        if message:
            node["message"] = message
        return node

    @staticmethod
    def link(parent: dict, child: dict) -> None:
        parent.setdefault("children", []).append(child["id"])

    # execution ------------------------------------------------------------------------------------

    def run(self) -> str:
        """Run the entrypoint; returns the workflow's phase."""
        entry = self.spec["entrypoint"]
        scope = dict(self.scope)
        template = self.templates[entry]
        for p in template.get("inputs", {}).get("parameters", []):  # the entrypoint's inputs: workflow arguments
            scope[f"inputs.parameters.{p['name']}"] = self.scope[f"workflow.parameters.{p['name']}"]
        root = self.execute(template, scope, self.name, self.name, None)
        return root["phase"]

    def execute(self, template: dict, scope: dict, node_name: str, display: str, boundary: str | None) -> dict:
        inputs = [{"name": p["name"], "value": scope[f"inputs.parameters.{p['name']}"]}
                  for p in template.get("inputs", {}).get("parameters", [])]
        extra = {"inputs": {"parameters": inputs}} if inputs else {}
        if "dag" in template:
            node = self.node(node_name, display, "DAG", template["name"], boundary, **extra)
            return self.dag(template, scope, node)
        if "resource" in template:  # a pod that applies the manifest and waits for its success condition
            outer = None
            if "retryStrategy" in template:
                outer = self.node(node_name, display, "Retry", template["name"], boundary, **extra)
                node_name, display = f"{node_name}(0)", f"{display}(0)"
            node = self.node(node_name, display, "Pod", template["name"], boundary, **extra)
            assert template["resource"]["action"] in ("create", "apply")
            phase = self.create_child(substitute(template["resource"]["manifest"], scope))
            self.finish(node, phase)
            if outer is None:
                return node
            self.link(outer, node)
            return self.finish(outer, phase)
        assert "container" in template, f"template {template['name']}: only dag, resource and container here"
        retried = "retryStrategy" in template
        outer = None
        if retried:
            outer = self.node(node_name, display, "Retry", template["name"], boundary, **extra)
        pod = self.node(f"{node_name}(0)" if retried else node_name, f"{display}(0)" if retried else display,
                        "Pod", template["name"], boundary, hostNodeName="gpu-node-pool-1-a1b2c3d4-x9k2",
                        **({"nodeFlag": {"retried": True}} if retried else {}), **extra)
        if outer is not None:
            self.link(outer, pod)
        self.pods.append((template["name"], scope))
        code, outputs = self.run_pod(template, scope)
        results = {"exitCode": str(code)}
        if outputs:
            results["parameters"] = [{"name": k, "value": v} for k, v in outputs.items()]
        pod["outputs"] = results
        pod["resourcesDuration"] = {"cpu": 3600, "memory": 86400, "nvidia.com/gpu": 900}
        phase = "Succeeded" if code == 0 else "Failed"
        self.finish(pod, phase, None if code == 0 else f"main: Error (exit code {code})")
        if outer is not None:
            outer["outputs"] = results
            self.finish(outer, phase, pod.get("message"))
            return outer
        return pod

    def dag(self, template: dict, scope: dict, node: dict) -> dict:
        tasks = template["dag"]["tasks"]
        names = [t["name"] for t in tasks]
        done: dict[str, dict] = {}
        local = dict(scope)
        while len(done) < len(tasks):
            ready = [t for t in tasks if t["name"] not in done and all(
                d in done for d in self._deps(t, names))]
            assert ready, f"DAG {template['name']}: a dependency cycle among {set(names) - set(done)}"
            task = ready[0]
            done[task["name"]] = self.task(task, local, node, {d: done[d]["phase"] for d in self._deps(task, names)})
            child = done[task["name"]]
            for out in child.get("outputs", {}).get("parameters", []):
                local[f"tasks.{task['name']}.outputs.parameters.{out['name']}"] = out["value"]
        targets = template["dag"].get("target", " ".join(names)).split()
        failed = any(done[t]["phase"] in ("Failed", "Error") for t in targets)
        return self.finish(node, "Failed" if failed else "Succeeded")

    @staticmethod
    def _deps(task: dict, names: list[str]) -> list[str]:
        text = task.get("depends", "")
        return [n for n in names if re.search(rf"\b{re.escape(n)}\b", text)]

    def task(self, task: dict, scope: dict, dag_node: dict, dep_phases: dict[str, str]) -> dict:
        name = f"{dag_node['name']}.{task['name']}"
        boundary = dag_node["id"]
        template = self.templates[task["template"]]
        if task.get("depends") and not depends_true(task["depends"], dep_phases):
            node = self.finish(self.node(name, task["name"], "Skipped", None, boundary, "Omitted",
                                         "omitted: depends condition not met"), "Omitted")
            self.link(dag_node, node)
            return node
        if "withParam" in task:
            items = json.loads(substitute(task["withParam"], scope))
            if not items:
                node = self.finish(self.node(name, task["name"], "Skipped", None, boundary, "Skipped",
                                             "Skipped, empty params"), "Skipped")
                self.link(dag_node, node)
                return node
            group = self.node(name, task["name"], "TaskGroup", None, boundary)
            self.link(dag_node, group)
            phases = []
            for i, item in enumerate(items):
                item_scope = dict(scope, item=json.dumps(item) if isinstance(item, dict) else str(item))
                if isinstance(item, dict):
                    item_scope.update({f"item.{k}": str(v) for k, v in item.items()})
                label = f"{task['name']}({i}:{item_desc(item)})"
                child = self.call(task, template, item_scope, f"{dag_node['name']}.{label}", label, boundary)
                self.link(group, child)
                phases.append(child["phase"])
            failed = any(p in ("Failed", "Error") for p in phases)
            return self.finish(group, "Failed" if failed else "Succeeded")
        if "when" in task and not when_true(substitute(task["when"], scope)):
            node = self.finish(self.node(name, task["name"], "Skipped", None, boundary, "Skipped",
                                         f"when '{task['when']}' evaluated false"), "Skipped")
            self.link(dag_node, node)
            return node
        node = self.call(task, template, scope, name, task["name"], boundary)
        self.link(dag_node, node)
        return node

    def call(self, task, template, scope, name, display, boundary) -> dict:
        inner = {k: v for k, v in scope.items() if k.startswith("workflow.")}
        for p in task.get("arguments", {}).get("parameters", []):
            inner[f"inputs.parameters.{p['name']}"] = substitute(p["value"], scope)
        declared = {p["name"] for p in template.get("inputs", {}).get("parameters", [])}
        passed = {k.split(".")[-1] for k in inner if k.startswith("inputs.parameters.")}
        assert declared == passed, f"{template['name']}: inputs {sorted(declared)}, arguments {sorted(passed)}"
        return self.execute(template, inner, name, display, boundary)

    # results --------------------------------------------------------------------------------------

    def pod_args(self) -> list[list[str]]:
        """The args of every pod that ran, substituted."""
        return [[substitute(a, scope) for a in self.templates[t]["container"]["args"]] for t, scope in self.pods]


def fake_workflow(name: str, template_ref: str, arguments: dict, stored_spec: dict, nodes: dict) -> dict:
    """A finished Workflow object as the controller stores it (what etcd's 1 MiB limit applies to)."""
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
        "metadata": {"name": name, "namespace": "xfer", "uid": hashlib.md5(name.encode()).hexdigest(),
                     "labels": {"workflows.argoproj.io/completed": "true", "workflows.argoproj.io/phase": "Failed",
                                "xfer/sweep": "paper-steps", "xfer/config": "0123456789abcdef"}},
        "spec": {"workflowTemplateRef": {"name": template_ref},
                 "arguments": {"parameters": [{"name": k, "value": v} for k, v in arguments.items()]}},
        "status": {"phase": "Failed", "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-03T00:00:00Z",
                   "progress": f"{len(nodes)}/{len(nodes)}", "nodes": nodes,
                   "storedWorkflowTemplateSpec": stored_spec,
                   "conditions": [{"type": "PodRunning", "status": "False"}, {"type": "Completed", "status": "True"}],
                   "artifactRepositoryRef": {"configMap": "artifact-repositories", "key": "xfer-logs",
                                             "namespace": "xfer", "artifactRepository": {"archiveLogs": True}},
                   "resourcesDuration": {"cpu": 123456, "memory": 654321, "nvidia.com/gpu": 12345},
                   "taskResultsCompletionStatus": {node_id: True for node_id, n in nodes.items() if n["type"] == "Pod"}},
    }
