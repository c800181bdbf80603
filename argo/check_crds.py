"""Validate xfer's rendered Argo resources against Argo's full CRD schemas, unknown fields rejected.

The tests check the resources against Argo's API types offline (Hera's models for v4, Argo's v3.7.18 SDK for
v3.7: tests/test_cluster_manifests.py). Argo's own CRD files are not kept in this repository; to check against
them too, take `manifests/base/crds/full/` of the Argo releases you run (e.g. v3.7.18 and v4.1.2) and run

    python argo/check_crds.py path/to/v3.7.18/crds/full path/to/v4.1.2/crds/full

Every overlay is rendered with `kubectl kustomize`; each WorkflowTemplate, CronWorkflow and the child Workflow
that xfer-sweep-large creates is validated with jsonschema against the CRD's openAPIV3Schema, in which every
object that lists its properties (and does not preserve unknown fields) gets additionalProperties: false, as
the API server's structural pruning would drop such a field. Exit 1 on any problem.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parent.parent
FILES = {"WorkflowTemplate": "argoproj.io_workflowtemplates.yaml", "CronWorkflow": "argoproj.io_cronworkflows.yaml",
         "Workflow": "argoproj.io_workflows.yaml"}


def strict(schema):
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if (schema.get("type") == "object" and "properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def resources() -> list[dict]:
    docs = []
    for overlay in ("k8s/overlays/kind", "k8s/overlays/cloud"):
        out = subprocess.run(["kubectl", "kustomize", str(ROOT / overlay)], capture_output=True, text=True, check=True)
        docs += [d for d in yaml.safe_load_all(out.stdout) if d and d["kind"] in FILES]
    for doc in list(docs):
        for template in doc["spec"].get("templates", []):
            if "resource" in template:
                docs.append(yaml.safe_load(re.sub(r"\{\{[^{}]+\}\}", "x", template["resource"]["manifest"])))
    return docs


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    problems = 0
    docs = resources()
    for folder in map(Path, argv):
        for kind, name in FILES.items():
            crd = yaml.safe_load((folder / name).read_text())
            validator = jsonschema.Draft7Validator(strict(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]))
            for doc in (d for d in docs if d["kind"] == kind):
                for error in validator.iter_errors(doc):
                    problems += 1
                    where = ".".join(map(str, error.absolute_path))
                    print(f"{folder}: {kind} {doc['metadata'].get('name') or doc['metadata'].get('generateName')}: "
                          f"{where}: {error.message}")
        print(f"{folder}: {len(docs)} resources checked")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
