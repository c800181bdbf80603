"""`xfer submit` and `xfer status` against a tiny Argo server stand-in on 127.0.0.1.

Checks the Workflow that --dry-run prints (it must fit the WorkflowTemplate in argo/), the config upload,
and that unreachable servers, 401, 403 and a missing template each end in one `xfer: error:` line.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from hera.workflows import models as m

from xfer import cluster
from xfer.cli import main
from xfer.plan import build_plan

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "configs/demo.yaml"
DEMO_SHA = hashlib.sha256(DEMO.read_bytes()).hexdigest()
TEMPLATE = yaml.safe_load((ROOT / "argo/workflow-template.yaml").read_text())
# Hera's client still calls pydantic's deprecated .json(); not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:The `json` method is deprecated:DeprecationWarning")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    monkeypatch.chdir(ROOT)
    for name in ("ARGO_SERVER", "ARGO_TOKEN", "ARGO_NAMESPACE", "ARGO_SECURE", "ARGO_BASE_HREF",
                 "ARGO_INSECURE_SKIP_VERIFY", "XFER_STORE", "XFER_S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XFER_WATCH_INTERVAL", "0.01")


class FakeArgo:
    """Answers from a table: (method, path) -> (status, JSON body or a callable of the request body)."""

    def __init__(self, routes: dict, default=(404, {"code": 5, "message": "not found"})):
        self.routes, self.default, self.requests = routes, default, []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                path = self.path.split("?")[0]
                fake.requests.append({"method": self.command, "path": path, "body": body,
                                      "auth": self.headers.get("Authorization")})
                status, answer = fake.routes.get((self.command, path), fake.default)
                if callable(answer):
                    answer = answer(body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def argo(monkeypatch):
    servers = []

    def start(routes, **kw):
        fake = FakeArgo(routes, **kw)
        servers.append(fake)
        monkeypatch.setenv("ARGO_SERVER", fake.url)
        return fake

    yield start
    for fake in servers:
        fake.close()


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if not line.startswith("xfer: warning: ")]
    assert len(lines) == 1 and lines[0].startswith("xfer: error: "), err
    return lines[0]


TEMPLATE_PATH = "/api/v1/workflow-templates/xfer/xfer-sweep"


# --- dry run --------------------------------------------------------------------------------------


def test_dry_run_prints_a_workflow_that_fits_the_template(capsys, monkeypatch):
    monkeypatch.setenv("ARGO_NAMESPACE", "sweeps")
    code, out, err = run(capsys, "submit", str(DEMO), "--dry-run", "--store", "s3://bucket/prefix/")
    assert code == 0 and err == ""
    wf = yaml.safe_load(out)
    assert wf["kind"] == "Workflow" and wf["apiVersion"] == "argoproj.io/v1alpha1"
    assert wf["metadata"]["generateName"] == "xfer-demo-" and wf["metadata"]["namespace"] == "sweeps"
    assert wf["metadata"]["labels"]["xfer/sweep"] == "demo"
    assert wf["metadata"]["labels"]["xfer/config"] == DEMO_SHA[:16]
    assert wf["spec"]["workflowTemplateRef"] == {"name": TEMPLATE["metadata"]["name"]}
    params = {p["name"]: p["value"] for p in wf["spec"]["arguments"]["parameters"]}
    assert set(params) <= {p["name"] for p in TEMPLATE["spec"]["arguments"]["parameters"]}
    assert params == {"config": f"s3://bucket/prefix/configs/{DEMO_SHA}.yaml", "store": "s3://bucket/prefix"}
    kept = m.Workflow.model_validate(wf).model_dump(by_alias=True, exclude_none=True, mode="json")
    assert kept == wf  # every field is an Argo field
    # what templateReferencing: Strict lets a submitted Workflow set: a template reference and arguments
    assert set(wf["spec"]) == {"workflowTemplateRef", "arguments"}


def test_dry_run_layout_and_grace_period(capsys):
    code, out, _ = run(capsys, "submit", str(DEMO), "--dry-run", "--store", "s3://b", "--grace-seconds", "900",
                       "--layout", "large")
    wf = yaml.safe_load(out)
    assert code == 0 and wf["spec"]["workflowTemplateRef"] == {"name": "xfer-sweep-large"}
    assert {"name": "grace-seconds", "value": "900"} in wf["spec"]["arguments"]["parameters"]
    code, _, err = run(capsys, "submit", str(DEMO), "--dry-run", "--store", "s3://b", "--grace-seconds", "0")
    assert code == 2 and "--grace-seconds 0" in error_line(err)


def test_paper_dry_run_runs_each_target_job_after_its_own_start_only(capsys, tmp_path):
    """configs/paper.yaml (CCG from tests/data/ccg): one Workflow whose evaluate jobs wait for their own start."""
    from xfer import config as configs, schedule

    raw = yaml.safe_load((ROOT / "configs/paper.yaml").read_text())
    raw["intermediate"]["files"] = {"ccg": str(ROOT / "tests/data/ccg")}
    paper = tmp_path / "paper.yaml"
    paper.write_text(yaml.safe_dump(raw))
    code, out, _ = run(capsys, "submit", str(paper), "--dry-run", "--store", "s3://b")
    wf = yaml.safe_load(out)
    assert code == 0 and wf["spec"]["workflowTemplateRef"] == {"name": "xfer-sweep"}
    start_dag = {t["name"]: t for t in {t["name"]: t for t in TEMPLATE["spec"]["templates"]}["start"]["dag"]["tasks"]}
    assert start_dag["evaluate"]["depends"] == "intermediate"  # inside a start: its own intermediate job only
    plan = build_plan(*configs.load(str(paper)))
    kinds = {job.id: job.kind for job in plan.jobs}
    groups = schedule.starts(plan)
    assert len(groups) == 1 + len(plan.stage("intermediate"))  # the pretrained model + one per checkpoint
    for start in groups:
        for job_id in start.evaluate:
            intermediate = [d for d in plan.by_id[job_id].deps if kinds[d] == "intermediate"]
            assert intermediate == start.intermediate, plan.by_id[job_id].label
    assert sorted(i for s in groups for i in s.intermediate + s.evaluate) == sorted(
        j.id for j in plan.jobs if j.kind in ("intermediate", "target", "retrieval"))


def test_dry_run_store_comes_from_env_then_config(capsys, monkeypatch):
    monkeypatch.setenv("XFER_STORE", "s3://from-env")
    code, out, _ = run(capsys, "submit", str(DEMO), "--dry-run")
    params = {p["name"]: p["value"] for p in yaml.safe_load(out)["spec"]["arguments"]["parameters"]}
    assert code == 0 and params["store"] == "s3://from-env"

    monkeypatch.delenv("XFER_STORE")
    code, out, err = run(capsys, "submit", str(DEMO), "--dry-run")
    params = {p["name"]: p["value"] for p in yaml.safe_load(out)["spec"]["arguments"]["parameters"]}
    assert code == 0 and params["store"] == f"file://{ROOT}/.xfer/store"  # the demo's own store ...
    assert "warning" in err and "s3://" in err  # ... which pods cannot share: said so


def test_dry_run_rejects_a_bad_config_in_one_line(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nintermediate: [oops\n")
    code, out, err = run(capsys, "submit", str(bad), "--dry-run", "--store", "s3://b")
    assert code == 2 and out == "" and str(bad) in error_line(err)


def test_dry_run_rejects_a_bad_store_uri_in_one_line(capsys):
    code, out, err = run(capsys, "submit", str(DEMO), "--dry-run", "--store", "ftp://host/x")
    assert code == 2 and out == "" and "ftp://host/x" in error_line(err)


# --- server errors --------------------------------------------------------------------------------


def test_unreachable_server_is_one_line(capsys, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: nothing listens there
    monkeypatch.setenv("ARGO_SERVER", f"http://127.0.0.1:{port}")
    code, out, err = run(capsys, "submit", str(DEMO), "--store", "s3://b")
    line = error_line(err)
    assert code == 2 and f"cannot reach the Argo server at http://127.0.0.1:{port}" in line


def test_missing_argo_server_setting_is_one_line(capsys):
    code, _, err = run(capsys, "submit", str(DEMO), "--store", "s3://b")
    assert code == 2 and "ARGO_SERVER is not set" in error_line(err)


def test_401_is_one_line_and_the_token_was_sent(capsys, monkeypatch, argo):
    fake = argo({}, default=(401, {"code": 16, "message": "token not valid.\nsee the docs"}))
    monkeypatch.setenv("ARGO_TOKEN", "abc123")
    code, _, err = run(capsys, "submit", str(DEMO), "--store", "s3://b")
    line = error_line(err)
    assert code == 2 and "401 Unauthorized" in line and "ARGO_TOKEN" in line and "token not valid" in line
    assert fake.requests[0]["auth"] == "Bearer abc123"


def test_403_is_one_line(capsys, argo):
    argo({}, default=(403, {"code": 7, "message": "workflowtemplates.argoproj.io is forbidden"}))
    code, _, err = run(capsys, "submit", str(DEMO), "--store", "s3://b")
    line = error_line(err)
    assert code == 2 and "403 Forbidden" in line and "namespace xfer" in line


def test_missing_template_is_one_line_and_nothing_is_uploaded(capsys, argo, tmp_path):
    argo({}, default=(404, {"code": 5, "message": 'workflowtemplates.argoproj.io "xfer-sweep" not found'}))
    store = tmp_path / "store"
    code, _, err = run(capsys, "submit", str(DEMO), "--store", f"file://{store}")
    line = error_line(err)
    assert code == 2 and "WorkflowTemplate xfer-sweep not found in namespace xfer" in line
    assert not (store / "configs").exists()


# --- a successful submit, watch and status --------------------------------------------------------


def created(body: dict) -> dict:
    workflow = body["workflow"]
    workflow["metadata"]["name"] = workflow["metadata"]["generateName"] + "abcde"
    return workflow


def finished_workflow(name: str, config_ref: str, phase: str, jobs: list[tuple[str, str, str, int]]) -> dict:
    """A Workflow as the server returns it: one Retry node per job, with its pod attempts as children."""
    nodes = {name: {"id": name, "name": name, "displayName": name, "type": "DAG", "phase": phase}}
    for i, (task, job_id, node_phase, tries) in enumerate(jobs):
        retry = f"{name}-{i}"
        pods = [f"{retry}-pod{k}" for k in range(tries)]
        nodes[retry] = {"id": retry, "name": f"{name}.{task}({i}:{job_id})", "displayName": f"{task}({i}:{job_id})",
                        "type": "Retry", "phase": node_phase, "children": pods,
                        "inputs": {"parameters": [{"name": "job-id", "value": job_id}]},
                        "message": "Error (exit code 1)" if node_phase == "Failed" else None}
        for k, pod in enumerate(pods):
            last = k == tries - 1
            nodes[pod] = {"id": pod, "name": f"{name}.{task}({i}:{job_id})({k})", "displayName": f"{task}({k})",
                          "type": "Pod", "phase": node_phase if last else "Failed"}
    return {"metadata": {"name": name, "namespace": "xfer", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"workflowTemplateRef": {"name": "xfer-sweep"},
                     "arguments": {"parameters": [{"name": "config", "value": config_ref}]}},
            "status": {"phase": phase, "nodes": nodes}}


def test_submit_uploads_the_config_creates_the_workflow_and_watches_it(capsys, argo, tmp_path):
    plan = build_plan(*__import__("xfer.config", fromlist=["load"]).load(str(DEMO)))
    build, inter = plan.stage("build")[0].id, plan.stage("intermediate")[0].id
    name = "xfer-demo-abcde"
    polls = [finished_workflow(name, str(DEMO), "Running", [("plan", "", "Succeeded", 1), ("build", build, "Running", 1)]),
             finished_workflow(name, str(DEMO), "Succeeded", [("plan", "", "Succeeded", 1), ("build", build, "Succeeded", 1),
                                                              ("intermediate", inter, "Succeeded", 2)])]
    fake = argo({("GET", TEMPLATE_PATH): (200, TEMPLATE),
                 ("POST", "/api/v1/workflows/xfer"): (200, created),
                 ("GET", f"/api/v1/workflows/xfer/{name}"): (200, lambda _: polls.pop(0) if len(polls) > 1 else polls[0])})
    store = tmp_path / "store"
    code, out, err = run(capsys, "submit", str(DEMO), "--store", f"file://{store}", "--watch")
    assert code == 0, err
    assert (store / "configs" / f"{DEMO_SHA}.yaml").read_bytes() == DEMO.read_bytes()
    posted = [r for r in fake.requests if r["method"] == "POST"][0]["body"]["workflow"]
    params = {p["name"]: p["value"] for p in posted["spec"]["arguments"]["parameters"]}
    assert params["config"].endswith(f"/configs/{DEMO_SHA}.yaml") and params["store"] == f"file://{store}"
    assert posted["spec"]["workflowTemplateRef"]["name"] == "xfer-sweep"
    assert f"submitted {name}" in out
    assert "Running: plan 1/1 ok, build 0/1 ok" in out and "Succeeded: plan 1/1 ok, build 1/1 ok, intermediate 1/1 ok" in out
    assert inter in out and plan.by_id[inter].label in out  # the final table names the cells


def test_status_lists_cells_and_fails_when_a_cell_failed(capsys, argo):
    plan = build_plan(*__import__("xfer.config", fromlist=["load"]).load(str(DEMO)))
    inter = [job.id for job in plan.stage("intermediate")]
    name = "xfer-demo-zzzzz"
    wf = finished_workflow(name, str(DEMO), "Failed", [("intermediate", inter[0], "Succeeded", 1),
                                                        ("intermediate", inter[1], "Failed", 3)])
    argo({("GET", f"/api/v1/workflows/xfer/{name}"): (200, wf),
          ("GET", "/api/v1/workflows/xfer"): (200, {"metadata": {}, "items": [wf]})})
    code, out, _ = run(capsys, "status", name)
    assert code == 1
    assert "Failed: intermediate 1/2 ok 1 failed" in out
    row = next(line for line in out.splitlines() if inter[1] in line)
    assert "Failed" in row and " 3 " in row and "exit code 1" in row
    # without a name: the newest xfer workflow of the namespace
    code, out, _ = run(capsys, "status")
    assert code == 1 and f"workflow {name}" in out


def test_status_counts_done_jobs_and_reads_a_large_sweeps_child_workflows(capsys, argo):
    plan = build_plan(*__import__("xfer.config", fromlist=["load"]).load(str(DEMO)))
    inter = [job.id for job in plan.stage("intermediate")]
    name = "xfer-demo-large"
    parent = finished_workflow(name, str(DEMO), "Failed", [("plan", "", "Succeeded", 1)])
    parent["spec"]["workflowTemplateRef"] = {"name": "xfer-sweep-large"}
    plan_node = next(n for n in parent["status"]["nodes"].values() if n["type"] == "Retry")
    plan_node["templateName"] = "plan"
    plan_node["outputs"] = {"parameters": [{"name": "summary", "value": json.dumps(
        {"jobs": 63, "done": 61, "scheduled": 2, "starts": 2})}]}
    start_node = {"id": "s1", "name": f"{name}.starts(0:x)", "displayName": "starts(0:x)", "type": "Pod",
                  "templateName": "start-workflow", "phase": "Failed"}
    parent["status"]["nodes"]["s1"] = start_node
    child = finished_workflow(f"{name}-start-a", str(DEMO), "Failed", [("intermediate", inter[0], "Succeeded", 1),
                                                                   ("evaluate", inter[1], "Failed", 2)])
    fake = argo({("GET", f"/api/v1/workflows/xfer/{name}"): (200, parent),
                 ("GET", "/api/v1/workflows/xfer"): (200, {"metadata": {}, "items": [child]})})
    code, out, _ = run(capsys, "status", name)
    assert code == 1
    assert "intermediate 1/1 ok, evaluate 0/1 ok 1 failed" in out and "starts" not in out.split("\n")[0]
    assert "61 of 63 jobs were already done, 2 scheduled" in out
    listed = [r for r in fake.requests if r["path"] == "/api/v1/workflows/xfer"]
    assert listed  # the children were looked up (label selector xfer/parent=<name>)


def test_workflow_template_name_matches_argo_dir():
    assert cluster.TEMPLATE_NAME == TEMPLATE["metadata"]["name"]


@pytest.mark.parametrize(
    ("env", "url"),
    [
        ({"ARGO_SERVER": "localhost:2746"}, "https://localhost:2746/"),  # the argo CLI's default: TLS
        ({"ARGO_SERVER": "localhost:2746", "ARGO_SECURE": "false"}, "http://localhost:2746/"),
        ({"ARGO_SERVER": "https://argo.example.com/", "ARGO_BASE_HREF": "/argo/"}, "https://argo.example.com/argo/"),
    ],
)
def test_server_url_follows_the_argo_cli_conventions(monkeypatch, env, url):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert cluster.server_url() == url
