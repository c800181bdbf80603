"""Target jobs are preemption-safe: SIGTERM during training (a real signal to a real `xfer job run`), during an
evaluation point or during the final test pass ends the job with exit 75 after committing a checkpoint, and
the rerun resumes from it to exactly the results.json of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from xfer import cli, formats, preemption
from xfer.config import load
from xfer.plan import build_plan
from xfer.store import open_store

CONFIG = """
name: resume-test
model:
  build: {vocab_size: 400, hidden_size: 32, num_layers: 1, num_heads: 2, intermediate_size: 64, seed: 0}
data: bundled
intermediate: {tasks: [mnli], budgets: [0]}
targets:
  xnli: {languages: [en, de]}
target_hparams: {lr: 2.0e-3, batch_size: 16, max_length: 64, epochs: 3}
selection: {max_points: 3, oracle: true}
target_checkpoint_every: 5
"""


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run of the sweep; its target job's results.json is the reference."""
    base = tmp_path_factory.mktemp("resume")
    config = base / "sweep.yaml"
    config.write_text(CONFIG)
    store = f"file://{base / 'reference'}"
    assert cli.main(["run", str(config), "--store", store, "--work", str(base / "work-ref"),
                     "--out", str(base / "report")]) == 0
    plan = build_plan(load(str(config))[0])
    target = plan.stage("evaluate")[0]
    results = json.loads(open_store(store).read_committed(target.output, "results.json"))
    return {"base": base, "config": config, "plan": plan, "target": target, "results": results}


def _fresh_store(reference, name: str):
    """A store holding only the built model, the target job's input."""
    base, uri = reference["base"], f"file://{reference['base'] / name}"
    build = reference["plan"].stage("build")[0]
    assert cli.main(["job", "run", build.id, "--config", str(reference["config"]), "--store", uri,
                     "--work", str(base / f"work-{name}")]) == 0
    return uri, open_store(uri)


def _checkpoints(store, job) -> list[str]:
    return [k for k in store.list(f"jobs/{job.id}/checkpoints") if k.endswith("/_COMPLETE")]


def test_sigterm_during_training_exits_75_and_the_rerun_resumes_to_the_same_results(reference):
    uri, store = _fresh_store(reference, "signal")
    target = reference["target"]
    args = [sys.executable, "-m", "xfer.cli", "job", "run", target.id, "--config", str(reference["config"]),
            "--store", uri, "--work", str(reference["base"] / "work-signal")]
    proc = subprocess.Popen(args, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while not _checkpoints(store, target):
        assert proc.poll() is None, f"the job ended before its first checkpoint: {proc.stdout.read()[-2000:]}"
        assert time.time() < deadline, "no checkpoint in time"
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 75, output[-2000:]
    assert "preempted" in output and not store.is_committed(target.output)
    assert _checkpoints(store, target)  # what it had trained is kept

    result = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"{target.id}: resuming from committed checkpoint at step" in " ".join(result.stderr.split())
    assert json.loads(store.read_committed(target.output, "results.json")) == reference["results"]
    assert not _checkpoints(store, target)  # removed once the output is committed


@pytest.mark.parametrize("when", ["at an evaluation point", "in the test pass"])
def test_sigterm_during_evaluation_resumes_to_the_same_results(reference, when, capsys):
    """SIGTERM arriving while a dev set (the 2nd evaluation point) or a test set (after training) is predicted:
    `preemption.request()` is what the SIGTERM handler does; the prediction in flight stops at its next batch."""
    uri, store = _fresh_store(reference, when.replace(" ", "-"))
    target = reference["target"]
    fmt = formats.get("classification")
    calls, original = [], fmt.predict
    points = reference["results"]["tasks"]["xnli"]["selection"]["points"]
    # predictions per point: the English dev set (MNLI's), then XNLI's en and de dev sets; so call 4 is the
    # 2nd point's English dev set, and after every point's 3 the test pass begins
    per_point = 3
    stop_at = per_point + 1 if when == "at an evaluation point" else per_point * len(points) + 1

    def predict(*args, **kwargs):
        calls.append(1)
        if len(calls) == stop_at:
            preemption.request()
        return original(*args, **kwargs)

    argv = ["job", "run", target.id, "--config", str(reference["config"]), "--store", uri,
            "--work", str(reference["base"] / f"work-{when}")]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fmt, "predict", predict)
        assert cli.main(argv) == 75
    assert "preempted" in capsys.readouterr().err
    steps = sorted(int(k.split("/")[-2].split("-")[1]) for k in _checkpoints(store, target))
    expected = points[1] if when == "at an evaluation point" else points[-1]
    assert steps[-1] == expected  # the checkpoint of the point whose evaluation was interrupted
    assert cli.main(argv) == 0
    assert json.loads(store.read_committed(target.output, "results.json")) == reference["results"]
