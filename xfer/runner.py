"""The local runner: every job of a plan on this machine, in dependency order.

A job whose output is committed is skipped; a failed job is logged with its reason and its dependants are
not run, but independent jobs go on and the aggregate always runs, listing what is missing. With
`workers > 1` jobs run in worker processes (spawned, each running one job at a time), as many at once as their
dependencies allow; a worker that dies (SIGKILL, out of memory) fails its one job, with one line, and a new
worker takes its place.

Stopping: SIGTERM or SIGINT stops the run. Running jobs are asked to stop as a preemption does (in-process
with one worker; forwarded as SIGTERM to the busy workers otherwise): they commit a checkpoint and end. A job
that raises `TemporaryFailure` (a store that stayed unavailable) stops the run the same way, without
signalling the others. No new job starts after that; the ones not finished are `stopped`; the aggregate still
runs, so the report shows what is committed, and `xfer run` exits 75 (run the same command again to finish).
Workers die with the runner (Linux: PR_SET_PDEATHSIG), so no orphan keeps training and committing.

Every job runs under its lease (xfer/lease.py): a job another live runner holds is reported "skipped:
running elsewhere" (or waited for, with $XFER_IF_RUNNING=wait) and its dependants are not run this time. A
job that finds one of its inputs corrupt (the store quarantines it) has that input's job recomputed first,
then runs again, in the same run.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import time
import traceback
from contextlib import nullcontext
from dataclasses import dataclass, replace
from multiprocessing import get_context
from multiprocessing.connection import wait
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
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
ELSEWHERE = "running elsewhere"
log = logging.getLogger("xfer")


@dataclass
class Outcome:
    job: Job
    status: str  # done | skipped | failed | blocked | stopped (temporary: preempted, store unavailable, not started)
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
    """jobs.run, recomputing first the job of any input that turns out corrupt (each at most once). The
    aggregate, which reports a missing cell rather than failing, is run once more without repairs when a
    recompute fails (that cell is then missing, with its reason)."""
    import jobs

    producers = {other.output: other for other in ctx.plan.jobs}
    recomputed: set[str] = set()
    repairing = replace(ctx, repair_inputs=True)
    while True:
        try:
            return jobs.run(job, repairing)
        except CorruptOutput as exc:
            producer = producers.get(exc.prefix)
            if producer is None or producer.id == job.id or producer.id in recomputed:
                raise
            recomputed.add(producer.id)
            log.warning("%s: its input %s was corrupt (quarantined): recomputing %s (%s), then this job",
                        job.label, exc.prefix, producer.label, producer.id)
            outcome = run_job(producer, ctx, if_running="wait")
            if outcome.status not in ("done", "skipped") or not ctx.store.is_committed(producer.output):
                if job.kind == "aggregate":
                    log.warning("%s: %s (%s) could not be recomputed (%s); its cells are reported missing",
                                job.label, producer.label, producer.id, outcome.reason)
                    return jobs.run(job, ctx)
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


def _stopped_reason(exc: TemporaryFailure) -> str:
    return f"{'preempted' if isinstance(exc, Preempted) else 'temporary failure'}: {exc}"


def _run_stopped_by(job: Job, reason: str) -> str:
    """Why jobs after `job` (stopped with `reason`) do not start."""
    if reason.startswith("preempted"):
        return "the run was preempted (SIGTERM)"
    return f"the run stopped on a temporary failure of {job.label}"


# ---- worker processes (workers > 1) -------------------------------------------------------------------------

def _die_with_parent() -> None:
    """Ask Linux to send this process SIGTERM when the runner dies (even by SIGKILL): a busy worker then
    checkpoints and ends instead of training on, unowned. Elsewhere, a no-op."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def _ignore(signum, frame) -> None:
    """Between jobs a worker ignores SIGTERM and SIGINT: the runner stops idle workers itself (a Python handler,
    not SIG_IGN, so programs a job starts get the default back)."""


def _worker_main(conn, plan: Plan, config: SweepConfig, store_uri: str, work: str, report_dir: str | None,
                 parent_pid: int) -> None:
    """Run the jobs the runner sends (job ids; None: exit), one at a time, answering each with
    (job id, status, seconds, reason). After a temporary failure the worker exits."""
    _die_with_parent()
    for signum in STOP_SIGNALS:
        signal.signal(signum, _ignore)  # `run_job` handles SIGTERM itself while a job runs
    logging.basicConfig(level=logging.WARNING)
    ctx = JobContext(config, plan, open_store(store_uri), Path(work), Path(report_dir) if report_dir else None)
    while True:
        try:
            job_id = conn.recv()
        except (EOFError, OSError):  # the runner is gone
            return
        if job_id is None or os.getppid() != parent_pid:  # done, or the runner died (a job it sent is unowned)
            return
        start = time.perf_counter()
        try:
            outcome = run_job(plan.by_id[job_id], ctx)
            answer = (job_id, outcome.status, outcome.seconds, outcome.reason)
        except TemporaryFailure as exc:
            answer = (job_id, "stopped", time.perf_counter() - start, _stopped_reason(exc))
        try:
            conn.send(answer)
        except OSError:
            return
        if answer[1] == "stopped":
            return


class _Worker:
    def __init__(self, mp, runner: LocalRunner):
        self.conn, child = mp.Pipe()
        self.process = mp.Process(target=_worker_main, name="xfer-worker", args=(
            child, runner.plan, runner.config, runner.store.uri, str(runner.work), str(runner.report_dir),
            os.getpid()))
        self.process.start()
        child.close()
        self.job: Job | None = None
        self.started = 0.0
        self.signalled = False  # the runner forwarded SIGTERM to it

    def death(self) -> str:
        """Why the process ended without answering (one line)."""
        self.process.join(5)
        code = self.process.exitcode
        if code is not None and code < 0:
            return f"worker process {self.process.pid} was killed by {signal.Signals(-code).name}"
        return f"worker process {self.process.pid} exited with code {code} without reporting"


class _SignalLog:
    """Which signals arrived while it was open, whichever Python handler took them (`signal.set_wakeup_fd`):
    the sequential runner sees a SIGTERM that the job's own handler (xfer.preemption) received."""

    def __init__(self):
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        try:
            self._previous = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        except ValueError:  # not the main thread: no signal handling, nothing to log
            self._previous = None

    def take(self) -> set[int]:
        seen = set()
        while True:
            try:
                data = os.read(self._read, 512)
            except BlockingIOError:
                return seen
            if not data:
                return seen
            seen.update(data)

    def close(self) -> None:
        if self._previous is not None:
            signal.set_wakeup_fd(self._previous)
        os.close(self._read)
        os.close(self._write)


class LocalRunner:
    def __init__(self, plan: Plan, config: SweepConfig, store: Store, work: Path, report_dir: Path,
                 workers: int = 1, console: Console | None = None):
        self.plan, self.config, self.store = plan, config, store
        self.work, self.report_dir, self.workers = work, report_dir, max(1, workers)
        self.console = console or Console(stderr=True)
        self.outcomes: dict[str, Outcome] = {}
        self.stop_reason: str | None = None  # set once the run stops: no new job starts
        self._busy: list[_Worker] = []

    def _log(self, outcome: Outcome) -> None:
        n = len(self.outcomes)
        colour = {"done": "green", "skipped": "cyan", "failed": "red", "blocked": "yellow",
                  "stopped": "magenta"}.get(outcome.status, "")
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

    def _not_started(self, job: Job) -> Outcome | None:
        """The outcome of a job that is not to run (blocked, or the run is stopping), else None."""
        reason = self._blocked_by(job)
        if reason:
            return Outcome(job, "blocked", reason=reason)
        if self.stop_reason and job.kind not in ALWAYS_RUN:
            return Outcome(job, "stopped", reason=f"not started: {self.stop_reason}")
        return None

    def _committed(self, job: Job) -> bool | Outcome:
        """Whether the job's output is committed; a store that stays unavailable stops the run."""
        try:
            return is_done(job, self.store)
        except TemporaryFailure as exc:
            self.stop_reason = self.stop_reason or f"the store is unavailable ({exc})"
            return Outcome(job, "stopped", reason=_stopped_reason(exc))

    # ---- signals ----
    def _on_signal(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.stop_reason is None:
            self.stop_reason = f"the run was stopped by {name}"
            self.console.print(f"          [bold]{name}[/]: stopping; running jobs commit a checkpoint and end",
                               highlight=False)
        for worker in list(self._busy):
            worker.signalled = True
            try:
                os.kill(worker.process.pid, signal.SIGTERM)
            except (ProcessLookupError, TypeError):
                pass
        if self.workers == 1 and not self._busy and signum != signal.SIGTERM:
            os.kill(os.getpid(), signal.SIGTERM)  # a job running in this process handles SIGTERM (xfer.preemption)

    def _handling_signals(self):
        previous = {}
        for signum in STOP_SIGNALS:
            try:
                previous[signum] = signal.signal(signum, self._on_signal)
            except ValueError:  # not the main thread: no signal handling
                pass
        return previous

    def run(self) -> list[Outcome]:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        previous = self._handling_signals()
        try:
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
                    self._run_sequential(finish, progress, steps, on_progress)
                else:
                    self._run_parallel(finish)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return [self.outcomes[job.id] for job in self.plan.jobs]

    def _run_sequential(self, finish, progress, steps, on_progress) -> None:
        ctx = JobContext(self.config, self.plan, self.store, self.work, self.report_dir, on_progress)
        signals, interrupted = _SignalLog(), False
        try:
            for job in self.plan.jobs:  # the plan lists every job after its dependencies
                outcome = self._not_started(job)
                if outcome is None:
                    committed = self._committed(job)
                    if isinstance(committed, Outcome):
                        finish(committed)
                        continue
                    def started(job=job) -> None:  # once it holds its lease and is about to run here
                        progress.update(steps, description=f"  {job.label}", completed=0, total=None)
                        self.console.print(f"          [bold]started[/] {job.label}  [dim]({job.id})[/]",
                                           highlight=False)

                    if interrupted:  # a signal cut a job short here: imports may be half done, start afresh
                        if not committed:
                            started()
                        outcome = self._run_in_a_new_process(job)
                    else:
                        outcome = self._run_here(job, ctx, signals, started)
                        interrupted = outcome.status == "stopped" and outcome.reason.startswith("preempted")
                finish(outcome)
        finally:
            signals.close()

    def _run_here(self, job: Job, ctx: JobContext, signals: _SignalLog, on_start=None) -> Outcome:
        signals.take()
        start = time.perf_counter()
        try:
            outcome = run_job(job, ctx, on_start=on_start)
        except TemporaryFailure as exc:
            outcome = Outcome(job, "stopped", time.perf_counter() - start, _stopped_reason(exc))
        if outcome.status == "failed" and signals.take() & set(STOP_SIGNALS):
            # SIGTERM, then a failure: a library turned the Preempted it raised into an error of its own
            outcome = Outcome(job, "stopped", outcome.seconds, f"preempted (it failed while stopping: {outcome.reason})")
        if outcome.status == "stopped":
            self.stop_reason = self.stop_reason or _run_stopped_by(job, outcome.reason)
        return outcome

    def _run_in_a_new_process(self, job: Job) -> Outcome:
        worker = _Worker(get_context("spawn"), self)
        self._busy.append(worker)
        try:
            worker.conn.send(job.id)
            worker.started = time.perf_counter()
            wait([worker.conn, worker.process.sentinel])
            try:
                answer = worker.conn.recv() if worker.conn.poll() else None
            except (EOFError, OSError):
                answer = None
        finally:
            self._busy.remove(worker)
        if answer is None:
            return self._lost(job, time.perf_counter() - worker.started, worker.death())
        self._retire(worker)
        return Outcome(job, *answer[1:])

    def _run_parallel(self, finish) -> None:
        mp = get_context("spawn")
        # A worker killed while holding a semaphore (tqdm's lock) leaves it to multiprocessing's resource tracker,
        # which frees it and warns at exit; the job's failure line already says what happened.
        quiet = "ignore:resource_tracker:UserWarning"
        if quiet not in sys.warnoptions:
            sys.warnoptions.append(quiet)  # passed to the tracker's command line when it starts
        pending = list(self.plan.jobs)
        idle: list[_Worker] = []
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
        try:
            while pending or self._busy:
                for job in list(pending):
                    if len(self._busy) >= self.workers:
                        break
                    if not all(dep in self.outcomes for dep in job.deps):
                        continue
                    pending.remove(job)
                    outcome = self._not_started(job)
                    committed = self._committed(job) if outcome is None else False
                    if isinstance(committed, Outcome):
                        outcome = committed
                    elif committed:
                        outcome = Outcome(job, "skipped", reason="already committed")
                    if outcome is not None:
                        finish(outcome)
                        continue
                    worker = idle.pop() if idle else _Worker(mp, self)
                    try:
                        worker.conn.send(job.id)
                    except OSError:  # it died while idle: another one takes the job
                        pending.insert(0, job)
                        continue
                    worker.job, worker.started = job, time.perf_counter()
                    self._busy.append(worker)
                    self.console.print(f"          [bold]started[/] {job.label}  "
                                       f"[dim]({job.id}, worker pid {worker.process.pid})[/]", highlight=False)
                if not self._busy:
                    continue
                ready = set(wait([w.conn for w in self._busy] + [w.process.sentinel for w in self._busy], 1.0))
                for worker in [w for w in self._busy if w.conn in ready or w.process.sentinel in ready]:
                    self._busy.remove(worker)
                    job, seconds = worker.job, time.perf_counter() - worker.started
                    try:
                        answer = worker.conn.recv() if worker.conn.poll() else None
                    except (EOFError, OSError):
                        answer = None
                    if answer is not None:
                        _, status, seconds, reason = answer
                        if status == "failed" and worker.signalled:  # e.g. a library turned Preempted into its own error
                            status, reason = "stopped", f"preempted (it failed while stopping: {reason})"
                        outcome = Outcome(job, status, seconds, reason)
                        if status in ("done", "skipped") and not worker.signalled:
                            worker.job = None
                            idle.append(worker)
                        else:  # interrupted or failed: its interpreter may hold half-imported modules
                            self._retire(worker)
                    else:
                        outcome = self._lost(job, seconds, worker.death())
                    if outcome.status == "stopped":
                        self.stop_reason = self.stop_reason or _run_stopped_by(job, outcome.reason)
                    finish(outcome)
        finally:
            for worker in self._busy:  # only after an error in the runner itself: stop what still runs
                if worker.process.is_alive():
                    os.kill(worker.process.pid, signal.SIGTERM)
            for worker in idle:
                try:
                    worker.conn.send(None)
                except OSError:
                    pass
            for worker in idle + self._busy:
                worker.process.join()
                worker.conn.close()
            self._busy = []

    @staticmethod
    def _retire(worker: _Worker) -> None:
        try:
            worker.conn.send(None)
        except OSError:
            pass
        worker.process.join(10)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()
        worker.conn.close()

    def _lost(self, job: Job, seconds: float, death: str) -> Outcome:
        """The outcome of a job whose worker ended without answering: SIGTERM (a preemption that came before
        the job could handle it) is temporary; anything else (SIGKILL, out of memory) fails the job."""
        if "SIGTERM" in death:
            return Outcome(job, "stopped", seconds, f"preempted: {death}")
        return Outcome(job, "failed", seconds, f"{death} while running the job")


def summary_line(outcomes: list[Outcome]) -> str:
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed", "blocked")}
    stopped = sum(o.status == "stopped" for o in outcomes)
    elsewhere = sum(o.status == "skipped" and o.elsewhere for o in outcomes)
    return (", ".join(f"{n} {s}" for s, n in counts.items()) + (f", {stopped} stopped" if stopped else "")
            + (f" ({elsewhere} {ELSEWHERE}: run again to finish them)" if elsewhere else ""))
