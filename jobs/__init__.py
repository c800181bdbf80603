"""Job recipes: one module per job kind, each exposing `run(job, ctx)`.

A recipe reads its inputs from the store, writes its outputs to a local folder and commits that folder to
`job.output` in the store. The same recipe runs under the local runner and in a cluster pod
(`xfer job run ID --config URI`). Callers skip a job whose output is already committed.
"""

from __future__ import annotations

from importlib import import_module

KINDS = ("build", "intermediate", "target", "retrieval", "aggregate")


def run(job, ctx) -> None:
    import_module(f"jobs.{job.kind}").run(job, ctx)
