"""The runner under leases and corruption: a job another runner holds is skipped as "running elsewhere" (or
waited for), its dependants wait for a later run (exit 75); a corrupt input is quarantined and recomputed in
the same run. First with stand-in job recipes (fast), then a real tiny sweep whose committed results.json
gets a byte flipped: the next run exits 0 with the full report."""

from __future__ import annotations

import csv
import json
import threading
import time
from pathlib import Path

import pytest

from xfer import cli, lease
from xfer.config import load as load_config
from xfer.plan import build_plan
from xfer.context import JobContext
from xfer.runner import run_job
from xfer.store import open_store

CONFIG = """
name: reliability-test
model:
  build: {vocab_size: 300, hidden_size: 16, num_layers: 1, num_heads: 2, intermediate_size: 32, seed: 0}
data: bundled
intermediate: {tasks: [mnli], budgets: [0]}
targets:
  xnli: {languages: [en, de], hparams: {max_steps: 2}}
target_hparams: {lr: 2.0e-3, batch_size: 8, max_length: 32, epochs: 1}
selection: {max_points: 1}
seeds: [1]
"""


@pytest.fixture
def sweep(tmp_path):
    config = tmp_path / "sweep.yaml"
    config.write_text(CONFIG)
    plan = build_plan(load_config(str(config))[0])
    args = ["run", str(config), "--store", f"file://{tmp_path / 'store'}", "--work", str(tmp_path / "work"),
            "--out", str(tmp_path / "report")]
    return plan, args, open_store(str(tmp_path / "store"))


@pytest.fixture
def fake_jobs(monkeypatch, tmp_path):
    """Stand-in recipes: each job reads its dependencies' committed outputs (verified; the aggregate those
    that exist) and commits its own."""
    import jobs

    ran = []

    def run(job, ctx):
        ran.append(job.kind)
        inputs = {dep: ctx.store.read_committed(ctx.plan.by_id[dep].output, "out.txt").decode() for dep in job.deps
                  if job.kind != "aggregate" or ctx.store.is_committed(ctx.plan.by_id[dep].output)}  # missing cells
        out = tmp_path / "fake" / job.id
        out.mkdir(parents=True, exist_ok=True)
        (out / "out.txt").write_text(json.dumps({"job": job.id, "inputs": inputs}))
        prefix = job.output if job.kind != "aggregate" else f"reports/{job.id}"
        if job.kind == "aggregate" and ctx.store.is_committed(prefix):
            ctx.store.uncommit(prefix)
        ctx.store.commit(prefix, out)

    monkeypatch.setattr(jobs, "run", run)
    return ran


def test_a_job_another_runner_holds_is_skipped_and_its_dependants_wait(sweep, fake_jobs, capsys):
    plan, args, store = sweep
    build = plan.stage("build")[0]
    with lease.hold(store, build.id, "other-host:123", ttl=60):
        code = cli.main(args)
    out = capsys.readouterr()
    assert code == 75  # run again later: not a failure, not done
    assert fake_jobs == ["aggregate"]  # nothing trained twice
    lines = [line for line in out.err.splitlines() if f"build  ({build.id})" in line]
    assert len(lines) == 1, out.err  # one line, no "started"
    line = lines[0]
    assert "skipped" in line and "running elsewhere (other-host:123 holds its lease" in " ".join(out.err.split())
    assert "1 skipped, 0 failed, 1 blocked (1 running elsewhere: run again to finish them)" in out.out
    assert "which is running elsewhere" in out.out
    assert not store.is_committed(build.output)
    # the other runner is gone (its lease released): the next run does the work
    assert cli.main(args) == 0
    assert fake_jobs == ["aggregate", "build", "target", "aggregate"]


def test_wait_mode_waits_for_the_other_runner_and_uses_its_output(sweep, fake_jobs, tmp_path, monkeypatch):
    plan, args, store = sweep
    build = plan.stage("build")[0]
    monkeypatch.setenv("XFER_IF_RUNNING", "wait")
    held = threading.Event()

    def other_runner():  # holds the build job for a second, commits its output, releases
        with lease.hold(store, build.id, "other-host:123", ttl=60):
            held.set()
            time.sleep(1.0)
            (tmp_path / "theirs").mkdir()
            (tmp_path / "theirs" / "out.txt").write_text("built elsewhere")
            store.commit(build.output, tmp_path / "theirs")

    thread = threading.Thread(target=other_runner)
    thread.start()
    held.wait(10)
    config = load_config(args[1])[0]
    outcome = run_job(build, JobContext(config, plan, store, tmp_path / "w"))
    thread.join()
    assert (outcome.status, outcome.reason) == ("skipped", "already committed")
    assert fake_jobs == []  # waited, then found it done
    assert store.read_committed(build.output, "out.txt") == b"built elsewhere"


def test_a_corrupt_input_is_recomputed_in_the_same_run(sweep, fake_jobs, caplog):
    plan, args, store = sweep
    assert cli.main(args) == 0
    target = plan.stage("evaluate")[0]
    path = store.root / target.output / "out.txt"
    path.write_bytes(path.read_bytes().replace(b"job", b"jab"))  # same size, different bytes
    fake_jobs.clear()
    with caplog.at_level("WARNING"):
        assert cli.main(args) == 0
    assert fake_jobs == ["aggregate", "target", "aggregate"]
    messages = [r.getMessage() for r in caplog.records]
    assert sum(m.startswith("quarantined ") and target.output in m for m in messages) == 1
    assert any(f"its input {target.output} was corrupt (quarantined): recomputing" in m for m in messages)
    assert store.list(f"quarantine/{target.output}")
    assert json.loads(store.read_committed(target.output, "out.txt"))["job"] == target.id


# --- a real sweep --------------------------------------------------------------------------------------


def _cells(report: Path) -> dict[tuple, str]:
    with open(report / "results.csv", newline="") as f:
        return {tuple(row[k] for k in ("target_task", "language", "metric")): row["value"] for row in csv.DictReader(f)}


def test_a_corrupted_committed_result_is_recomputed_and_the_run_succeeds(sweep, caplog, capsys):
    """A byte flipped in a committed results.json: the next run quarantines it, retrains that one job and
    exits 0 with the full report, equal to the first."""
    plan, args, store = sweep
    assert cli.main(args) == 0
    report = Path(args[args.index("--out") + 1])
    first = _cells(report)
    assert first and all(value for value in first.values())
    target = plan.stage("evaluate")[0]
    path = store.root / target.output / "results.json"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    capsys.readouterr()
    with caplog.at_level("WARNING"):
        code = cli.main(args)
    out = capsys.readouterr()
    assert code == 0, out.err[-2000:]
    assert "jobs: 1 done, 2 skipped, 0 failed, 0 blocked" in out.out  # the target job recomputed inside the aggregate's turn
    assert sum(r.getMessage().startswith("quarantined ") for r in caplog.records) == 1
    assert _cells(report) == first
    (moved,) = {key.split("/")[4] for key in store.list(f"quarantine/{target.output}")}
    assert store.get_bytes(f"quarantine/{target.output}/{moved}/results.json") == bytes(data)  # kept as found
    assert store.is_committed(target.output)
