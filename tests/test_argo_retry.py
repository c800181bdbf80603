"""The retry decision of every pod template, evaluated as Argo evaluates it, against what real failures look like.

Argo (workflow/controller/operator.go, processNodeRetries, v3.7 and v4) builds the scope
{retries, lastRetry: {exitCode, status, duration, message}} of the last attempt - exitCode a string, "-1" when
no container reported one; message the pod's status message when it has one (evictions, node shutdown,
deadlines), else "<container>: <reason> (exit code N)", or "pod deleted" - and evaluates `expression` with
expr-lang; tests/argo_expr.py is a faithful evaluator of the subset the templates use.

The messages below are the ones Kubernetes and Argo write: the kubelet's eviction manager
(pkg/kubelet/eviction/helpers.go), node shutdown manager, critical-pod preemption and activeDeadlineSeconds,
the node lifecycle controller, Argo's own ("pod deleted", inferFailedReason). Eviction-API drains end as a plain
"main: Error (exit code 143)" (SIGTERM before xfer's handler was installed) or exit 75 (after it).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from argo_expr import ExprError, eval_bool, evaluate, retry_scope

ROOT = Path(__file__).resolve().parent.parent
FILES = ("workflow-template.yaml", "workflow-template-large.yaml", "workflow-template-start.yaml")
RETRIED_TEMPLATES = [(doc["metadata"]["name"], t) for doc in (yaml.safe_load((ROOT / "argo" / f).read_text())
                                                              for f in FILES)
                     for t in doc["spec"]["templates"] if "container" in t]

PREEMPTIONS = [  # (exit code, node message): retried
    ("75", "main: Error (exit code 75)"),  # SIGTERM caught, checkpoint committed (or TemporaryFailure: store/Hub)
    ("143", "main: Error (exit code 143)"),  # drain via the Eviction API, SIGTERM before the handler was in place
    ("137", "main: Error (exit code 137)"),  # SIGKILL: the grace period ran out
    ("-1", "pod deleted"),  # deleted before Argo saw it finish: scheduler preemption, drain, kubectl delete
    ("75", "Pod was terminated in response to imminent node shutdown."),  # graceful node shutdown (spot)
    ("143", "Pod was terminated in response to imminent node shutdown."),
    ("-1", "Pod was rejected as the node is shutting down."),  # failed to start: node shutting down
    ("137", "The node was low on resource: memory. Threshold quantity: 100Mi, available: 85432Ki. Container main "
            "was using 31Gi, request is 24Gi, has larger consumption of memory. "),  # node-pressure eviction
    ("-1", "The node was low on resource: ephemeral-storage. Threshold quantity: 10Gi, available: 9Gi. "),
    ("-1", "The node had condition: [DiskPressure]. "),  # admission eviction under disk pressure
    ("-1", "Preempted in order to admit critical pod"),  # kubelet critical-pod preemption
    ("-1", "Node gke-gpu-pool-1-abcd which was running pod xfer-paper-x7k2p-gpu-job-123 is unresponsive"),  # lost
    ("-1", "pod failed: neither main nor wait container completed successfully"),  # node gone, pod failed by GC
    ("-1", "Pod failed before main container starts due to ContainerCreating: "),  # node died while starting
]
FAILURES = [  # (exit code, node message): not retried, and with no backoff, failed at once
    ("1", "main: Error (exit code 1)"),  # a bug or bad data
    ("2", "main: Error (exit code 2)"),  # a user mistake (one line, xfer: error: ...)
    ("137", "main: OOMKilled (exit code 137)"),  # the container's memory limit
    ("137", "OOMKilled (exit code 137)"),
    ("75", "Pod was active on the node longer than the specified deadline"),  # activeDeadlineSeconds: SIGTERM, 75
    ("143", "Pod was active on the node longer than the specified deadline"),
    ("-1", "Step exceeded its deadline"),  # the workflow's deadline
    ("137", "Pod ephemeral local storage usage exceeds the total limit of containers 101Gi. "),  # own disk limit
    ("137", 'Container main exceeded its local ephemeral storage limit "101Gi". '),
    ("137", 'Usage of EmptyDir volume "scratch" exceeds the limit "60Gi". '),
    ("64", "main: Error (exit code 64)"),  # Argo's emissary failed
    ("0", "wait: Error (exit code 1): failed to save outputs"),  # the job committed; the log upload failed
    ("-1", "task 'xfer-x.starts(0).evaluate(1)' errored: pods \"xfer-x\" is forbidden: violates PodSecurity"),
]


@pytest.mark.parametrize(("workflow", "template"), RETRIED_TEMPLATES, ids=lambda v: v if isinstance(v, str) else v["name"])
def test_every_template_retries_preemptions_and_fails_real_errors_at_once(workflow, template):
    strategy = template["retryStrategy"]
    assert strategy["retryPolicy"] == "Always" and int(strategy["limit"]) > 0
    # Argo waits out a backoff *before* it evaluates the expression (processNodeRetries), so a backoff would
    # delay every real failure too: none, the expression alone decides
    assert "backoff" not in strategy
    for exit_code, message in PREEMPTIONS:
        assert eval_bool(strategy["expression"], retry_scope(exit_code, message)), (exit_code, message)
    for exit_code, message in FAILURES:
        assert not eval_bool(strategy["expression"], retry_scope(exit_code, message, "Failed")), (exit_code, message)


def test_the_evaluator_follows_expr_lang():
    """The evaluator can fail: expr's precedence, types and errors, as the retry decision depends on them."""
    env = retry_scope("75", "OOMKilled")
    assert evaluate("asInt(lastRetry.exitCode) == 75", env) is True
    assert evaluate("lastRetry.exitCode == 75", env) is False  # a string is never equal to an int
    assert evaluate("asInt(lastRetry.exitCode) in [1, 75]", env) is True
    assert evaluate("true || false && false", env) is True  # && binds tighter than ||
    assert evaluate("!(lastRetry.message matches '(?i)oom')", env) is False
    with pytest.raises(ExprError):  # unary ! binds tighter than matches: (!message) is not a bool
        evaluate("!lastRetry.message matches 'x'", env)
    with pytest.raises(ExprError):
        evaluate("asInt(lastRetry.message) == 1", env)  # strconv.Atoi fails
    with pytest.raises(ExprError):
        evaluate("lastRetry.message matches '[a-z]+'", env)  # syntax RE2 and re might read differently
    with pytest.raises(ExprError):
        eval_bool("lastRetry.exitCode", env)  # not a bool
