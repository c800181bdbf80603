"""Job recipes: one module per job kind, each exposing `run(job, ctx)`.

A recipe reads its inputs from the store, writes its outputs to a local folder and commits that folder to
`job.output` in the store. The same recipe runs under the local runner and in a cluster pod
(`xfer job run ID --config URI`). Callers skip a job whose output is already committed.

Before a recipe runs, `run` puts the process in the deterministic state every job runs in
(`xfer.determinism.configure`: fixed thread count, deterministic kernels, reseeded global RNGs), so a job's
output does not depend on the runner, its workers or the jobs run before it; and it points the job's data
source at the Hub commits its plan resolved (`xfer.revisions`), so the job reads exactly the data its id names.
"""

from __future__ import annotations

from importlib import import_module

from xfer import determinism

KINDS = ("build", "intermediate", "target", "retrieval", "aggregate")


def run(job, ctx) -> None:
    determinism.configure()
    if ctx.config.data == "hub":  # read at the plan's commits
        ctx.data.pin(ctx.plan.dataset_revisions())
    import_module(f"jobs.{job.kind}").run(job, ctx)
