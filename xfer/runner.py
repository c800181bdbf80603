"""The local runner: every job of a plan on this machine, in dependency order.

A job whose output is committed is skipped; a failed job is logged with its reason and its dependants are
not run, but independent jobs go on and the aggregate always runs, listing what is missing. With
`workers > 1` jobs run in separate processes, as many at once as their dependencies allow.

Every job runs under its lease (xfer/lease.py): a job another live runner holds is reported "skipped:
running elsewhere" (or waited for, with $XFER_IF_RUNNING=wait) and its dependants are not run this time. A
job that finds one of its inputs corrupt (the store quarantines it) has that input's job recomputed first,
then runs again, in the same run.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from contextlib import nullcontext
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from xfer.config import SweepConfig
from xfer.context import JobContext
from xfer import lease, preemption
from xfer.errors import Preempted, TemporaryFailure, XferError
from xfer.plan import Job, Plan
from xfer.store import CorruptOutput, Store, open_store

ALWAYS_RUN = ("aggregate",)
ELSEWHERE = "running elsewhere"
log = logging.getLogger("xfer")


@dataclass
class Outcome:
    job: Job
    status: str  # done | skipped | failed | blocked | preempted
    seconds: float = 0.0
    reason: str = ""

    @property
    def elsewhere(self) -> bool:
        """Skipped because another runner holds it, or blocked by such a job: to be finished by a later run."""
        return (self.status == "skipped" and self.reason.startswith(ELSEWHERE)) or \
            (self.status == "blocked" and self.reason.endswith(f"which is {ELSEWHERE}"))


def is_done(job: Job, store: Store) -> bool:
    return job.kind not in ALWAYS_RUN and store.is_committed(job.output)


def _run_repairing(job: Job, ctx: JobContext) -> None:
    """jobs.run, recomputing first the job of any input that turns out corrupt (each at most once)."""
    import jobs

    producers = {other.output: other for other in ctx.plan.jobs}
    recomputed: set[str] = set()
    while True:
        try:
            return jobs.run(job, ctx)
        except CorruptOutput as exc:
            producer = producers.get(exc.prefix)
            if producer is None or producer.id == job.id or producer.id in recomputed:
                raise
            recomputed.add(producer.id)
            log.warning("%s: its input %s was corrupt (quarantined): recomputing %s (%s), then this job",
                        job.label, exc.prefix, producer.label, producer.id)
            outcome = run_job(producer, ctx, if_running="wait")
            if outcome.status not in ("done", "skipped") or not ctx.store.is_committed(producer.output):
                raise XferError(f"needs {producer.label} ({producer.id}), whose output was corrupt and could "
                                f"not be recomputed: {outcome.reason}") from None


def run_job(job: Job, ctx: JobContext, *, if_running: str | None = None, on_start=None) -> Outcome:
    """Run one job unless its output is committed; failures become an Outcome, never an exception
    (but a temporary failure - a preemption, an unavailable store - is re-raised, so the caller can stop and
    exit 75 for a retry). SIGTERM during the job ends it as `xfer.preemption` says.

    The job runs under its lease: when another live runner holds it, `if_running` ("skip", the default
    unless $XFER_IF_RUNNING says otherwise, or "wait") decides; a skipped job's Outcome says "running
    elsewhere". `on_start()` is called once the job is about to run here."""
    if is_done(job, ctx.store):
        return Outcome(job, "skipped", 0.0, "already committed")
    mode = if_running or lease.if_running_mode("skip")
    start = time.perf_counter()
    try:
        with preemption.handling_sigterm():
            held = nullcontext() if job.kind in ALWAYS_RUN else lease.hold(ctx.store, job.id, wait=mode == "wait")
            with held:
                if is_done(job, ctx.store):  # finished by the runner that held it while we waited
                    return Outcome(job, "skipped", 0.0, "already committed")
                if on_start is not None:
                    on_start()
                _run_repairing(job, ctx)
    except lease.RunningElsewhere as exc:
        return Outcome(job, "skipped", 0.0, str(exc))
    except TemporaryFailure:
        raise
    except XferError as exc:
        return Outcome(job, "failed", time.perf_counter() - start, str(exc))
    except Exception as exc:  # a bug or bad data: keep the traceback in the job's log file
        log_file = ctx.work / "logs" / f"{job.id}.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        log_file.write_text(traceback.format_exc())
        first = str(exc).splitlines()[0] if str(exc) else ""
        return Outcome(job, "failed", time.perf_counter() - start,
                       f"{type(exc).__name__}: {first} (traceback: {log_file})")
    return Outcome(job, "done", time.perf_counter() - start)


def _in_child(job_id: str, plan: Plan, config: SweepConfig, store_uri: str, work: str,
              report_dir: str | None) -> tuple[str, float, str]:
    logging.basicConfig(level=logging.WARNING)
    ctx = JobContext(config, plan, open_store(store_uri), Path(work), Path(report_dir) if report_dir else None)
    try:
        outcome = run_job(plan.by_id[job_id], ctx)
    except TemporaryFailure as exc:
        return "preempted", 0.0, str(exc)
    return outcome.status, outcome.seconds, outcome.reason


class LocalRunner:
    def __init__(self, plan: Plan, config: SweepConfig, store: Store, work: Path, report_dir: Path,
                 workers: int = 1, console: Console | None = None):
        self.plan, self.config, self.store = plan, config, store
        self.work, self.report_dir, self.workers = work, report_dir, max(1, workers)
        self.console = console or Console(stderr=True)
        self.outcomes: dict[str, Outcome] = {}

    def _log(self, outcome: Outcome) -> None:
        n = len(self.outcomes)
        colour = {"done": "green", "skipped": "cyan", "failed": "red", "blocked": "yellow"}.get(outcome.status, "")
        line = f"[{n:>3}/{len(self.plan.jobs)}] [{colour}]{outcome.status:<8}[/] {outcome.job.label}  " \
               f"[dim]({outcome.job.id}"
        line += f", {outcome.seconds:.1f} s)[/]" if outcome.status == "done" else ")[/]"
        if outcome.reason and (outcome.status != "skipped" or outcome.elsewhere):
            line += f"  {outcome.reason}"
        self.console.print(line, highlight=False)

    def _blocked_by(self, job: Job) -> str | None:
        if job.kind in ALWAYS_RUN:
            return None
        for dep in job.deps:
            if self.outcomes[dep].elsewhere:
                return f"not run: needs {self.plan.by_id[dep].label} ({dep}), which is {ELSEWHERE}"
            if self.outcomes[dep].status in ("failed", "blocked"):
                return f"not run: needs {self.plan.by_id[dep].label} ({dep}), which {self.outcomes[dep].status}"
        return None

    def run(self) -> list[Outcome]:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=self.console, transient=True) as progress:
            overall = progress.add_task("sweep", total=len(self.plan.jobs))
            steps = progress.add_task("", total=None, visible=False)

            def on_progress(done: int, total: int) -> None:
                progress.update(steps, completed=done, total=total, visible=True)

            def finish(outcome: Outcome) -> None:
                self.outcomes[outcome.job.id] = outcome
                progress.update(overall, advance=1)
                progress.update(steps, visible=False)
                self._log(outcome)

            if self.workers == 1:
                ctx = JobContext(self.config, self.plan, self.store, self.work, self.report_dir, on_progress)
                for job in self.plan.jobs:  # the plan lists every job after its dependencies
                    reason = self._blocked_by(job)
                    if reason:
                        finish(Outcome(job, "blocked", reason=reason))
                        continue
                    def started(job=job) -> None:
                        progress.update(steps, description=f"  {job.label}", completed=0, total=None)
                        self.console.print(f"          [bold]started[/] {job.label}  [dim]({job.id})[/]",
                                           highlight=False)

                    finish(run_job(job, ctx, on_start=started))
            else:
                self._run_parallel(finish)
        return [self.outcomes[job.id] for job in self.plan.jobs]

    def _run_parallel(self, finish) -> None:
        pending = list(self.plan.jobs)
        running: dict[Future, Job] = {}
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
        with ProcessPoolExecutor(self.workers, mp_context=get_context("spawn")) as pool:
            while pending or running:
                for job in list(pending):
                    if not all(dep in self.outcomes for dep in job.deps):
                        continue
                    pending.remove(job)
                    reason = self._blocked_by(job)
                    if reason:
                        finish(Outcome(job, "blocked", reason=reason))
                        continue
                    if is_done(job, self.store):
                        finish(Outcome(job, "skipped", reason="already committed"))
                        continue
                    self.console.print(f"          [bold]started[/] {job.label}  [dim]({job.id})[/]",
                                       highlight=False)
                    running[pool.submit(_in_child, job.id, self.plan, self.config, self.store.uri,
                                        str(self.work), str(self.report_dir))] = job
                if not running:
                    continue
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    job = running.pop(future)
                    status, seconds, reason = future.result()
                    if status == "preempted":
                        raise Preempted(reason)
                    finish(Outcome(job, status, seconds, reason))


def summary_line(outcomes: list[Outcome]) -> str:
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed", "blocked")}
    line = ", ".join(f"{n} {s}" for s, n in counts.items())
    elsewhere = sum(o.status == "skipped" and o.elsewhere for o in outcomes)
    return line + (f" ({elsewhere} {ELSEWHERE}: run again to finish them)" if elsewhere else "")
