"""`xfer submit` and `xfer status`: run a sweep on Argo Workflows through the Argo Server API (Hera's client).

`submit` pushes the config to the store (`<store>/configs/<sha256>.yaml`) and creates a Workflow from the
`xfer-sweep` WorkflowTemplate (argo/workflow-template.yaml), or for a plan of more than LARGE_LAYOUT_JOBS jobs
from `xfer-sweep-large` (one child Workflow per start), with the config URI, the store URI and the grace period
as parameters; `--dry-run` prints that Workflow instead. Submitting a config again reruns only what is not
committed (the plan step skips the rest), which is how failed jobs are rerun. `status` shows a workflow's
progress, cell by cell (a large sweep's child Workflows included), and how many jobs were already done.
The server comes from the environment, as for the `argo` CLI: ARGO_SERVER (host:port or URL), ARGO_TOKEN,
ARGO_NAMESPACE (default xfer), ARGO_INSECURE_SKIP_VERIFY, ARGO_SECURE, ARGO_BASE_HREF. Every server
problem (unreachable, 401/403, template missing) becomes a one-line XferError.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from xfer.errors import TemporaryFailure, XferError

TEMPLATE_NAME = os.environ.get("XFER_WORKFLOW_TEMPLATE", "xfer-sweep")
LARGE_TEMPLATE_NAME = "xfer-sweep-large"  # one child Workflow per start (argo/generate.py)
# Plans of more jobs run as xfer-sweep-large: one Workflow stores ~2.2 KiB of node status per job, ~0.4 KiB
# compressed (tests/test_dag_size.py), against Argo's 1 MiB per Workflow object; this leaves 2x for retries.
LARGE_LAYOUT_JOBS = 1000
DEFAULT_NAMESPACE = "xfer"
SWEEP_LABEL = "xfer/sweep"
CONFIG_LABEL = "xfer/config"
PARENT_LABEL = "xfer/parent"  # on the child Workflows of xfer-sweep-large
TASK_ORDER = ("plan", "stage", "build", "intermediate", "evaluate", "aggregate")
LAYOUTS = ("auto", "single", "large")
DONE_PHASES = ("Succeeded", "Failed", "Error")
REQUEST_TIMEOUT_S = 30


def add_commands(subparsers) -> None:
    """Register `submit` and `status` on the `xfer` argument parser."""
    p = subparsers.add_parser("submit", help="run a sweep on Argo Workflows (see docs/cluster.md)")
    p.add_argument("config", help="sweep config: a YAML path or a store URI")
    p.add_argument("--store", help="store URI the cluster jobs use (overrides the config and $XFER_STORE)")
    p.add_argument("--watch", action="store_true", help="follow the workflow until it finishes")
    p.add_argument("--dry-run", action="store_true", help="print the Workflow instead of submitting it")
    p.add_argument("--layout", choices=LAYOUTS, default="auto",
                   help=f"single: one Workflow; large: a child Workflow per start; auto: large above "
                        f"{LARGE_LAYOUT_JOBS} jobs")
    p.add_argument("--grace-seconds", type=int, metavar="N",
                   help="SIGTERM to SIGKILL for every pod (default: the template's, sized for XLM-R Large)")
    p.set_defaults(func=cmd_submit)

    p = subparsers.add_parser("status", help="progress of a sweep on Argo Workflows, cell by cell")
    p.add_argument("workflow", nargs="?", help="workflow name (default: the newest xfer workflow)")
    p.set_defaults(func=cmd_status)


# --- the Workflow ----------------------------------------------------------------------------------


def _slug(text: str, limit: int = 40) -> str:
    """A Kubernetes name / label value fragment: lower-case letters, digits and dashes."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-")
    return slug or "sweep"


def workflow_for(name: str, config_sha256: str, config_uri: str, store_uri: str, namespace: str,
                 template: str = TEMPLATE_NAME, grace_seconds: int | None = None):
    """The Workflow that runs one sweep: a reference to the WorkflowTemplate plus its arguments and labels
    (all `templateReferencing: Strict` lets a submitted Workflow set)."""
    from hera.workflows import models as m

    params = [m.Parameter(name="config", value=config_uri), m.Parameter(name="store", value=store_uri)]
    if grace_seconds is not None:
        params.append(m.Parameter(name="grace-seconds", value=str(grace_seconds)))
    return m.Workflow(
        api_version="argoproj.io/v1alpha1",
        kind="Workflow",
        metadata=m.ObjectMeta(
            generate_name=f"xfer-{_slug(name)}-",
            namespace=namespace,
            labels={
                "app.kubernetes.io/name": "xfer",
                SWEEP_LABEL: _slug(name, 63),
                CONFIG_LABEL: config_sha256[:16],
            },
        ),
        spec=m.WorkflowSpec(workflow_template_ref=m.WorkflowTemplateRef(name=template),
                            arguments=m.Arguments(parameters=params)),
    )


def layout_for(plan) -> str:
    """The WorkflowTemplate a plan runs in: one Workflow, or one child Workflow per start when it is large."""
    return LARGE_TEMPLATE_NAME if len(plan.jobs) > LARGE_LAYOUT_JOBS else TEMPLATE_NAME


def _dump(model) -> dict:
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")


# --- the Argo server -------------------------------------------------------------------------------


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _namespace() -> str:
    return os.environ.get("ARGO_NAMESPACE") or DEFAULT_NAMESPACE


def server_url() -> str:
    """ARGO_SERVER as a URL: `host:port` gets https:// (http:// when ARGO_SECURE=false), plus ARGO_BASE_HREF."""
    server = (os.environ.get("ARGO_SERVER") or "").strip()
    if not server:
        raise XferError(
            "ARGO_SERVER is not set: point it at the Argo server, e.g. ARGO_SERVER=localhost:2746 after "
            "`kubectl -n argo port-forward svc/argo-server 2746:2746`"
        )
    if "://" not in server:
        secure = os.environ.get("ARGO_SECURE")
        server = ("http://" if secure is not None and not _truthy(secure) else "https://") + server
    if not server.startswith(("http://", "https://")):
        raise XferError(f"ARGO_SERVER={server!r}: expected host:port, http://... or https://...")
    base = (os.environ.get("ARGO_BASE_HREF") or "").strip("/")
    return server.rstrip("/") + "/" + (base + "/" if base else "")


def _service():
    import requests
    from hera.workflows.service import WorkflowsService

    class _Session(requests.Session):
        def request(self, method, url, **kwargs):  # a dead server must not hang the CLI
            kwargs.setdefault("timeout", REQUEST_TIMEOUT_S)
            return super().request(method, url, **kwargs)

    insecure = _truthy(os.environ.get("ARGO_INSECURE_SKIP_VERIFY"))
    if insecure:  # asked for: no warning per request
        import urllib3

        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    return WorkflowsService(
        host=server_url(),
        token=os.environ.get("ARGO_TOKEN") or None,
        verify_ssl=not insecure,
        namespace=_namespace(),
        session=_Session(),
    )


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _server_message(exc) -> str:
    """The server's own message from a Hera exception ("Server returned status code N with message: `...`")."""
    found = re.search(r"message: `(.*)`", str(exc), re.S)
    return _one_line(found.group(1) if found else str(exc))


@contextmanager
def _talking_to(host: str, action: str, not_found: str | None = None):
    """Turn whatever the server or the network says into one XferError line."""
    import requests
    from hera.exceptions import Forbidden, HeraException, NotFound, Unauthorized

    host = host.rstrip("/")
    try:
        yield
    except requests.exceptions.SSLError as exc:
        raise XferError(
            f"TLS error talking to the Argo server at {host}: {_one_line(exc, 150)}; for a self-signed certificate "
            "(kind, port-forward) set ARGO_INSECURE_SKIP_VERIFY=true"
        ) from None
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        reason = "timed out" if isinstance(exc, requests.exceptions.Timeout) else "connection refused or no route"
        raise XferError(
            f"cannot reach the Argo server at {host} ({reason}): check ARGO_SERVER and that the server is up "
            "(on kind: kubectl -n argo port-forward svc/argo-server 2746:2746)"
        ) from None
    except Unauthorized as exc:
        raise XferError(
            f"the Argo server at {host} answered 401 Unauthorized to {action} ({_server_message(exc)}): "
            "set ARGO_TOKEN to a valid token (`Bearer ...`, see docs/cluster.md)"
        ) from None
    except Forbidden as exc:
        raise XferError(
            f"the Argo server at {host} answered 403 Forbidden to {action} in namespace {_namespace()} "
            f"({_server_message(exc)}): the token's service account lacks that permission (k8s/base/rbac.yaml: "
            "xfer-submitter)"
        ) from None
    except NotFound as exc:
        raise XferError(not_found or f"{action}: not found on the Argo server at {host} ({_server_message(exc)})") from None
    except HeraException as exc:
        raise XferError(f"the Argo server at {host} refused to {action}: {_server_message(exc)}") from None
    except requests.exceptions.RequestException as exc:
        raise XferError(f"talking to the Argo server at {host} failed: {_one_line(exc)}") from None


# --- submit ----------------------------------------------------------------------------------------


def cmd_submit(args) -> int:
    from xfer import config as configs

    from xfer.store import open_store

    config, sha = configs.load(args.config)
    if args.grace_seconds is not None and args.grace_seconds < 1:
        raise XferError(f"--grace-seconds {args.grace_seconds}: give a positive number of seconds")
    store = open_store(args.store or os.environ.get("XFER_STORE") or config.store)  # checks the URI, no I/O
    store_uri = store.uri
    namespace = _namespace()
    pushed = None
    if "://" in args.config:
        config_uri = args.config  # already in a store: the pods read it from there
    else:  # what `xfer config push` puts there: Hub refs pinned, so that the pods plan offline (xfer/pin.py)
        from xfer.pin import push_key

        config_key, pushed = push_key(args.config, config)
        sha = config_key.removeprefix("configs/").removesuffix(".yaml")
        config_uri = f"{store_uri.rstrip('/')}/{config_key}"
    if not store_uri.startswith("s3://"):
        print(
            f"xfer: warning: store {store_uri} is not s3://: every pod must see it at the same path "
            "(a shared volume); use --store s3://... for a cluster",
            file=sys.stderr,
        )

    template = _layout(args.layout, config, sha)
    if args.dry_run:
        import yaml

        workflow = workflow_for(config.name, sha, config_uri, store_uri, namespace, template, args.grace_seconds)
        sys.stdout.write(yaml.safe_dump(_dump(workflow), sort_keys=False))
        return 0

    service = _service()
    host = service.host.rstrip("/")
    with _talking_to(
        host,
        f"read WorkflowTemplate {template}",
        not_found=f"WorkflowTemplate {template} not found in namespace {namespace} on the Argo server at {host}: "
        "apply it first (kubectl apply --server-side -k k8s/overlays/<kind|cloud>)",
    ):
        service.get_workflow_template(template, namespace=namespace)

    if pushed is not None:
        store.put_bytes(config_key, pushed)

    from hera.workflows import models as m

    workflow = workflow_for(config.name, sha, config_uri, store_uri, namespace, template, args.grace_seconds)
    with _talking_to(host, f"create a Workflow in namespace {namespace}"):
        created = service.create_workflow(m.WorkflowCreateRequest(workflow=workflow), namespace=namespace)
    name = created.metadata.name
    print(f"submitted {name} in namespace {namespace} ({template}): sweep {config.name}, config {config_uri}, "
          f"store {store_uri}")
    print(f"follow it with: xfer status {name}")
    if args.watch:
        return _watch(service, name, namespace)
    return 0


def _layout(choice: str, config, sha: str) -> str:
    if choice == "single":
        return TEMPLATE_NAME
    if choice == "large":
        return LARGE_TEMPLATE_NAME
    from xfer.plan import build_plan

    return layout_for(build_plan(config, sha))


# --- status ----------------------------------------------------------------------------------------


def cells(workflow, children=()) -> list[dict]:
    """One row per job of the sweep (and per plan/stage/aggregate step): task, job id, phase, attempts, message;
    the jobs of a large sweep's child Workflows (`children`) included.

    With a retryStrategy each job is a Retry node whose children are its pod attempts; without one
    it is a single Pod node. The start-workflow steps of a large sweep are not rows: their jobs are.
    """
    rows = [row for child in children for row in cells(child)]
    nodes = (workflow.status.nodes or {}) if workflow.status else {}
    retried = {child for node in nodes.values() if node.type == "Retry" for child in (node.children or [])}
    for node_id, node in nodes.items():
        if node.type not in ("Retry", "Pod") or node_id in retried or node.template_name == "start-workflow":
            continue
        task = re.sub(r"\(.*\)$", "", node.display_name or node.name or "")
        params = {p.name: p.value for p in ((node.inputs.parameters or []) if node.inputs else [])}
        attempts = len(node.children or []) if node.type == "Retry" else 1
        rows.append(
            {
                "task": task,
                "job": params.get("job-id", ""),
                "phase": node.phase or "Pending",
                "attempts": attempts,
                "message": _one_line(node.message or "", 80),
            }
        )
    order = {task: i for i, task in enumerate(TASK_ORDER)}
    return sorted(rows, key=lambda r: (order.get(r["task"], len(order)), r["job"]))


def plan_summary(workflow) -> dict | None:
    """What the plan step found (xfer/schedule.py): {"jobs", "done", "scheduled", "starts"}, once it has run."""
    for node in ((workflow.status.nodes or {}) if workflow.status else {}).values():
        if node.template_name == "plan" and node.outputs and node.outputs.parameters:
            for param in node.outputs.parameters:
                if param.name == "summary" and param.value:
                    return json.loads(param.value)
    return None


def progress_line(workflow, rows: list[dict]) -> str:
    """`Running: plan 1/1 ok, build 1/1 ok, intermediate 3/6 ok 1 failed, ...; 370 of 413 jobs already done`"""
    parts = []
    for task in TASK_ORDER:
        mine = [r for r in rows if r["task"] == task]
        if not mine:
            continue
        ok = sum(r["phase"] == "Succeeded" for r in mine)
        bad = sum(r["phase"] in ("Failed", "Error") for r in mine)
        parts.append(f"{task} {ok}/{len(mine)} ok" + (f" {bad} failed" if bad else ""))
    phase = (workflow.status.phase if workflow.status else None) or "Pending"
    line = f"{phase}: " + (", ".join(parts) if parts else "no job started yet")
    summary = plan_summary(workflow)
    if summary:
        line += f"; {summary['done']} of {summary['jobs']} jobs were already done, {summary['scheduled']} scheduled"
    return line


def _labels(workflow) -> dict[str, str]:
    """Job id -> readable label, from the plan of the workflow's config (best effort: needs store access)."""
    params = {p.name: p.value for p in (workflow.spec.arguments.parameters or [])} if workflow.spec.arguments else {}
    uri = params.get("config")
    if not uri:
        return {}
    try:
        from xfer import config as configs
        from xfer.plan import build_plan

        config, sha = configs.load(uri)
        return {job.id: job.label for job in build_plan(config, sha).jobs}
    except (XferError, TemporaryFailure) as exc:
        print(f"xfer: note: job labels unavailable ({_one_line(exc, 120)})", file=sys.stderr)
        return {}


def print_status(workflow, labels: dict[str, str] | None = None, children=()) -> None:
    from rich.console import Console
    from rich.table import Table

    rows = cells(workflow, children)
    labels = labels or {}
    meta, status = workflow.metadata, workflow.status
    print(f"workflow {meta.name} (namespace {meta.namespace})  {progress_line(workflow, rows)}")
    if status and status.message:
        print(f"message: {_one_line(status.message)}")
    order = {task: i for i, task in enumerate(TASK_ORDER)}
    rows.sort(key=lambda r: (order.get(r["task"], len(order)), labels.get(r["job"], ""), r["job"]))
    table = Table(show_edge=False, pad_edge=False)
    for column in ("task", "job", "phase", "tries", "message"):
        table.add_column(column)
    for row in rows:
        job = row["job"] + (f"  {labels[row['job']]}" if row["job"] in labels else "")
        table.add_row(row["task"], job, row["phase"], str(row["attempts"]), row["message"])
    Console(width=max(120, Console().width)).print(table)


def _get(service, name: str, namespace: str):
    host = service.host.rstrip("/")
    with _talking_to(
        host,
        f"read workflow {name}",
        not_found=f"workflow {name} not found in namespace {namespace} on the Argo server at {host}",
    ):
        return service.get_workflow(name, namespace=namespace)


def _children(service, workflow, namespace: str) -> list:
    """The child Workflows of an xfer-sweep-large sweep (none for xfer-sweep)."""
    ref = workflow.spec.workflow_template_ref if workflow.spec else None
    if not ref or ref.name != LARGE_TEMPLATE_NAME:
        return []
    name = workflow.metadata.name
    with _talking_to(service.host, f"list the child workflows of {name}"):
        found = service.list_workflows(namespace=namespace, label_selector=f"{PARENT_LABEL}={name}")
    return list(found.items or [])


def _newest(service, namespace: str) -> str:
    with _talking_to(service.host, f"list workflows in namespace {namespace}"):
        found = service.list_workflows(namespace=namespace, label_selector=SWEEP_LABEL)
    items = found.items or []
    if not items:
        raise XferError(f"no xfer workflows in namespace {namespace} (submit one with `xfer submit CONFIG`)")
    newest = max(items, key=lambda wf: wf.metadata.creation_timestamp.root.isoformat()
                 if wf.metadata.creation_timestamp else "")
    return newest.metadata.name


def cmd_status(args) -> int:
    service = _service()
    namespace = _namespace()
    name = args.workflow or _newest(service, namespace)
    workflow = _get(service, name, namespace)
    children = _children(service, workflow, namespace)
    print_status(workflow, _labels(workflow), children)
    return _exit_code(workflow, children)


def _exit_code(workflow, children=()) -> int:
    """0 when the workflow succeeded with every job, 1 when it ended otherwise or a job failed; 0 while running."""
    phase = workflow.status.phase if workflow.status else None
    failed = any(r["phase"] in ("Failed", "Error") for r in cells(workflow, children))
    if phase in DONE_PHASES:
        return 0 if phase == "Succeeded" and not failed else 1
    return 0


def _watch(service, name: str, namespace: str) -> int:
    interval = float(os.environ.get("XFER_WATCH_INTERVAL", "10"))
    last = None
    while True:
        workflow = _get(service, name, namespace)
        children = _children(service, workflow, namespace)
        line = progress_line(workflow, cells(workflow, children))
        if line != last:
            print(line, flush=True)
            last = line
        if workflow.status and workflow.status.phase in DONE_PHASES:
            break
        time.sleep(interval)
    print_status(workflow, _labels(workflow), children)
    return _exit_code(workflow, children)
