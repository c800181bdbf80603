"""The local runner under signals and dying workers, with real processes: `xfer run` as a subprocess on a tiny
sweep (one build, two target jobs, the aggregate). SIGTERM/SIGINT stop the run with exit 75 after the running
jobs ended and the report was written, and leave no worker behind; a worker killed by SIGKILL fails its one job
and the run goes on; a job's temporary failure stops the run with exit 75 and a report."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from xfer import cli
from xfer.config import load as load_config
from xfer.errors import TemporaryFailure
from xfer.plan import build_plan
from xfer.store import open_store

ROOT = Path(__file__).parents[1]
XFER = [sys.executable, "-c", "import sys; from xfer.cli import main; sys.exit(main())"]

# xnli trains for many epochs (long enough to be interrupted); pawsx for one (a few seconds). Each test has its
# own seed, so its target jobs are its own while the build job (no seed) is shared through one store.
CONFIG = """
name: signals
model:
  build: {{vocab_size: 400, hidden_size: 32, num_layers: 1, num_heads: 2, intermediate_size: 64, seed: 0}}
data: bundled
intermediate: {{tasks: [mnli], budgets: [0]}}
targets:
  xnli: {{languages: [en, de], hparams: {{epochs: 400}}}}
  pawsx: {{languages: [en, de]}}
target_hparams: {{lr: 2.0e-3, batch_size: 16, max_length: 64, epochs: 1}}
selection: {{max_points: 1}}
seeds: [{seed}]
"""


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tmp_path_factory.mktemp("signals")


def config_for(base: Path, seed: int) -> Path:
    path = base / f"seed{seed}.yaml"
    path.write_text(CONFIG.format(seed=seed))
    return path


class Run:
    """`xfer run` in a subprocess, its stderr read line by line."""

    def __init__(self, base: Path, seed: int, *extra: str):
        self.config, self.report = config_for(base, seed), base / f"report{seed}"
        env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="400", PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            XFER + ["run", str(self.config), "--store", str(base / "store"), "--work", str(base / "work"),
                    "--out", str(self.report), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=base)
        self.lines: list[str] = []

    def wait_for(self, pattern: str, timeout: float = 120) -> re.Match:
        deadline = time.monotonic() + timeout
        for line in self.proc.stderr:
            self.lines.append(line)
            found = re.search(pattern, line)
            if found:
                return found
            assert time.monotonic() < deadline, f"no {pattern!r} in {timeout} s:\n{''.join(self.lines)}"
        pytest.fail(f"xfer run ended without {pattern!r}:\n{''.join(self.lines)}")

    def finish(self, timeout: float = 120) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, "".join(self.lines) + err

    def committed(self, seed: int) -> dict[str, bool]:
        plan = build_plan(load_config(str(self.config))[0])
        store = open_store(str(self.config.parent / "store"))
        return {job.tasks[0]: store.is_committed(job.output) for job in plan.stage("evaluate")}


def outcome_lines(err: str, status: str) -> list[str]:
    return [line for line in err.splitlines() if re.match(rf"\[\s*\d+/4\] {status}\s", line)]


def test_sigterm_stops_a_parallel_run_workers_included(base):
    run = Run(base, 1, "--workers", "2")
    run.wait_for(r"started target xnli .*worker pid \d+")
    workers = psutil.Process(run.proc.pid).children(recursive=True)
    assert len(workers) >= 2  # the two workers (and multiprocessing's resource tracker)
    time.sleep(1)
    run.proc.send_signal(signal.SIGTERM)
    code, out, err = run.finish()
    assert code == 75, err
    assert "Traceback" not in err + out
    stopped = outcome_lines(err, "stopped")
    assert any("target xnli" in line and "preempted" in line for line in stopped), err
    assert re.search(r"\[\s*4/4\] done\s+aggregate", err), err  # the report was still written
    assert json.loads((run.report / "summary.json").read_text())
    assert re.search(r"jobs: 2 done, 0 skipped, 0 failed, 0 blocked, 2 stopped|"
                     r"jobs: 3 done, 0 skipped, 0 failed, 0 blocked, 1 stopped", out), out
    assert "  stopped: target xnli from pretrained seed=1" in out
    gone, alive = psutil.wait_procs(workers, timeout=5)
    assert not alive, f"workers still running after the runner exited: {alive}"
    assert run.committed(1)["xnli"] is False


def test_a_worker_killed_by_sigkill_fails_one_job_and_the_run_goes_on(base):
    run = Run(base, 2, "--workers", "2")
    pid = int(run.wait_for(r"started target xnli .*worker pid (\d+)").group(1))
    run.wait_for(r"started target pawsx")
    os.kill(pid, signal.SIGKILL)
    code, out, err = run.finish()
    assert code == 1, err
    assert "Traceback" not in err + out and "BrokenProcessPool" not in err
    failed = outcome_lines(err, "failed")
    assert failed == [line for line in err.splitlines() if "killed by SIGKILL" in line and line.startswith("[")]
    assert len(failed) == 1 and "target xnli" in failed[0] and f"worker process {pid} was killed by SIGKILL" in failed[0]
    assert re.search(r"\[\s*\d/4\] done\s+target pawsx", err), err  # the other job went on
    assert re.search(r"\[\s*4/4\] done\s+aggregate", err), err
    assert (run.report / "results.csv").is_file()
    assert run.committed(2) == {"xnli": False, "pawsx": True}


def test_workers_end_when_the_runner_is_killed(base):
    """SIGKILL of the runner itself: its workers get SIGTERM from the kernel (PR_SET_PDEATHSIG) and end, instead
    of training on and committing unowned."""
    run = Run(base, 3, "--workers", "2")
    run.wait_for(r"started target xnli .*worker pid \d+")
    workers = [p for p in psutil.Process(run.proc.pid).children() if "resource_tracker" not in " ".join(p.cmdline())]
    run.proc.kill()
    run.finish()
    gone, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive, f"workers outlived the runner: {alive}"
    time.sleep(0.5)
    assert run.committed(3)["xnli"] is False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_a_sequential_run_after_the_running_job(base, signum):
    seed = 10 + signum
    run = Run(base, seed)
    run.wait_for(r"started target xnli")
    time.sleep(1)
    run.proc.send_signal(signum)
    code, out, err = run.finish()
    assert code == 75, err
    assert "Traceback" not in err + out
    assert any("target xnli" in line and "preempted" in line for line in outcome_lines(err, "stopped")), err
    assert any("target pawsx" in line and "not started" in line for line in outcome_lines(err, "stopped")), err
    assert re.search(r"\[\s*4/4\] done\s+aggregate", err), err
    assert (run.report / "summary.json").is_file()
    assert "2 stopped" in out and "run the same command again" in err


def test_a_temporary_failure_stops_the_run_with_a_report(base, monkeypatch, capsys):
    """A job that raises TemporaryFailure (a store unavailable after its retries): no further job starts, the
    aggregate writes the report from what is committed, `xfer run` lists the unfinished jobs and exits 75."""
    import jobs

    real = jobs.run

    def flaky(job, ctx):
        if job.kind == "target":
            raise TemporaryFailure("store s3://bucket unavailable after 5 attempts")
        return real(job, ctx)

    monkeypatch.setattr(jobs, "run", flaky)
    config = config_for(base, 30)
    code = cli.main(["run", str(config), "--store", str(base / "store"), "--work", str(base / "work"),
                     "--out", str(base / "report30")])
    out, err = capsys.readouterr()
    assert code == 75
    assert "temporary failure: store s3://bucket unavailable after 5 attempts" in out
    assert "not started: the run stopped on a temporary failure of target" in out
    assert "jobs: 2 done, 0 skipped, 0 failed, 0 blocked, 2 stopped" in out or \
           "jobs: 1 done, 1 skipped, 0 failed, 0 blocked, 2 stopped" in out
    assert (base / "report30" / "summary.json").is_file()
