"""What a run still has to do: the jobs of a plan whose outputs are not committed, grouped by start.

A *start* is a model the target and retrieval jobs fine-tune or evaluate: the pretrained model (the budget-0
baseline: no intermediate job) or the checkpoint of one intermediate job. The cluster runs each start as its
own chain - its intermediate job, then its evaluate jobs - so an evaluate job waits only for the checkpoint
it starts from, never for other intermediate jobs (no stage barrier). A committed job is left out before
anything is scheduled, so a rerun of a finished sweep creates no pod; its dependants still find its output
in the store, as they would after a run.

`xfer plan CONFIG --pending-out DIR` writes what `write` writes (argo/generate.py turns the files into the
workflow's output parameters); `xfer status` reads the summary back from the workflow.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from xfer.plan import Job, Plan
from xfer.store import Store

ALWAYS_RUN = ("aggregate",)  # never skipped: rewrites the report from whatever is in the store
PRETRAINED = "pretrained"
LOOKUPS_AT_ONCE = 16  # concurrent marker reads: ~800 of them for the paper plan on S3


@dataclass
class Start:
    """One start and its pending jobs: `intermediate` holds 0 or 1 ids, `evaluate` the target and retrieval
    jobs that start from it. `key` ("s000", "s001", ...: its place among all the plan's starts) names it
    for Kubernetes: the child Workflow of a large sweep is `<workflow>-<key>`."""

    label: str
    intermediate: list[str] = field(default_factory=list)
    evaluate: list[str] = field(default_factory=list)
    key: str = ""

    def item(self) -> dict[str, str]:
        """The start as an Argo withParam item: string values only (a list value would be rendered with
        Go's %v, not as JSON), the id lists as JSON text for the start's own withParam fan-outs."""
        return {"start": self.label, "key": self.key,
                "intermediate": json.dumps(self.intermediate, separators=(",", ":")),
                "evaluate": json.dumps(self.evaluate, separators=(",", ":"))}


@dataclass
class Schedule:
    build: list[str]
    starts: list[Start]
    jobs: int  # jobs of the plan, the always-run aggregate not counted
    done: int  # of them already committed

    @property
    def scheduled(self) -> int:
        return len(self.build) + sum(len(s.intermediate) + len(s.evaluate) for s in self.starts)

    def summary(self) -> dict[str, int]:
        return {"jobs": self.jobs, "done": self.done, "scheduled": self.scheduled, "starts": len(self.starts)}


def committed(plan: Plan, store: Store) -> set[str]:
    """Ids of the plan's jobs whose outputs are committed in the store (the aggregate never counts)."""
    jobs = [job for job in plan.jobs if job.kind not in ALWAYS_RUN]
    with ThreadPoolExecutor(LOOKUPS_AT_ONCE) as pool:
        flags = list(pool.map(lambda job: store.is_committed(job.output), jobs))
    return {job.id for job, done in zip(jobs, flags) if done}


def starts(plan: Plan) -> list[Start]:
    """Every start of the plan with all its jobs: the pretrained model first (its jobs need no intermediate
    job), then the intermediate checkpoints, largest step budget first (the longest chains start first, so
    the sweep's tail is short)."""
    intermediate = {job.id: job for job in plan.jobs if job.kind == "intermediate"}
    by_start: dict[str, list[Job]] = {}
    for job in plan.jobs:
        if job.kind in ("target", "retrieval"):
            parents = [dep for dep in job.deps if dep in intermediate]
            assert len(parents) <= 1, f"{job.label} starts from {len(parents)} intermediate jobs"
            by_start.setdefault(parents[0] if parents else PRETRAINED, []).append(job)
    out = [Start(PRETRAINED, [], [job.id for job in by_start.get(PRETRAINED, [])])] if PRETRAINED in by_start else []
    for job in sorted(intermediate.values(), key=lambda j: -j.params["budget"]):  # stable: plan order within
        p = job.params
        out.append(Start(f"{p['task']}@{p['budget']} seed={p['seed']}", [job.id],
                         [dep.id for dep in by_start.get(job.id, [])]))
    for index, start in enumerate(out):
        start.key = f"s{index:03d}"
    return out


def pending(plan: Plan, store: Store) -> Schedule:
    """The plan less what is committed: pending build jobs, and per start its pending jobs (a start with
    nothing pending is left out)."""
    done = committed(plan, store)
    left = []
    for start in starts(plan):
        start = Start(start.label, [i for i in start.intermediate if i not in done],
                      [i for i in start.evaluate if i not in done], start.key)
        if start.intermediate or start.evaluate:
            left.append(start)
    build = [job.id for job in plan.stage("build") if job.id not in done]
    return Schedule(build, left, sum(job.kind not in ALWAYS_RUN for job in plan.jobs), len(done))


def write(schedule: Schedule, out: Path, stage: bool) -> None:
    """The files the plan pod hands Argo: build.json (ids), starts.json (withParam items), stage.json
    ("true" when the stage job has something to put in the store), summary.json (counts)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "build.json").write_text(json.dumps(schedule.build))
    (out / "starts.json").write_text(json.dumps([s.item() for s in schedule.starts], separators=(",", ":")))
    (out / "stage.json").write_text("true" if stage else "false")
    (out / "summary.json").write_text(json.dumps(schedule.summary()))


def read_items(text: str) -> list[Start]:
    """starts.json back into Starts (the inverse of `Start.item`)."""
    return [Start(i["start"], json.loads(i["intermediate"]), json.loads(i["evaluate"]), i["key"])
            for i in json.loads(text)]


def as_dict(schedule: Schedule) -> dict:
    return {"build": schedule.build, "starts": [asdict(s) for s in schedule.starts], **schedule.summary()}
