"""Deterministic outputs per job id (xfer/determinism.py): the bytes a job commits do not depend on the
runner's workers or thread counts, or on what ran before it in the process."""

import hashlib
import json
import os
from pathlib import Path

import pytest

from xfer import cli, determinism
from xfer.store import LocalStore

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A tiny local encoder (as the demo's build job makes it, without pretraining)."""
    from xfer.config import TinyModel
    from xfer.preflight import _tiny_model

    return _tiny_model(TinyModel(vocab_size=600, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64),
                       tmp_path_factory.mktemp("model") / "tiny")


def config(tmp_path: Path, model: Path) -> Path:
    path = tmp_path / "det.yaml"
    path.write_text(f"""
name: det
model: {{name: {model}}}
data: bundled
intermediate:
  tasks: [mnli]
  budgets: [12]
  checkpoint_every: 100
  hparams: {{lr: 1.0e-3, batch_size: 16, max_length: 64}}
targets:
  tatoeba: {{languages: [de], layer: 1}}
""")
    return path


def committed(store_dir: Path) -> dict[str, str]:
    """{job id/file: sha256} of every committed output but the aggregate's report (it records times)."""
    store = LocalStore(store_dir)
    out = {}
    for job_id in {key.split("/")[1] for key in store.list("jobs/")}:
        if store.is_committed(f"jobs/{job_id}/output"):
            manifest = store.manifest(f"jobs/{job_id}/output")
            if manifest["meta"].get("kind") != "aggregate":
                out.update({f"{job_id}/{rel}": info["sha256"] for rel, info in manifest["files"].items()})
    return out


def test_workers_1_and_2_commit_identical_bytes(tmp_path, tiny_model, monkeypatch):
    cfg = config(tmp_path, tiny_model)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    results = {}
    for workers in (1, 2):
        store = tmp_path / f"store{workers}"
        assert cli.main(["run", str(cfg), "--workers", str(workers), "--store", str(store),
                         "--work", str(tmp_path / f"work{workers}"), "--out", str(tmp_path / f"r{workers}")]) == 0
        results[workers] = committed(store)
    assert any(key.endswith("/model.safetensors") for key in results[1])  # the intermediate model
    assert any(key.endswith("/results.json") for key in results[1])  # the retrieval scores
    assert results[1] == results[2]


def test_thread_count_changes_float_sums_so_each_job_fixes_it():
    import torch

    values = torch.randn(4_000_000, generator=torch.Generator().manual_seed(0))
    before = torch.get_num_threads()
    try:
        sums = set()
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            sums.add(hashlib.sha256(values.sum().numpy().tobytes()).hexdigest())
        assert len(sums) > 1  # why the runner's per-worker OMP_NUM_THREADS changed the bytes
    finally:
        torch.set_num_threads(before)


def test_configure_overrides_the_runner_s_thread_setting(monkeypatch):
    import torch

    monkeypatch.delenv(determinism.THREADS_ENV, raising=False)
    torch.set_num_threads(2)  # what a runner worker's OMP_NUM_THREADS would have given
    determinism.configure()
    recorded = determinism.environment()
    expected = max(1, min(len(os.sched_getaffinity(0)), determinism.MAX_DEFAULT_THREADS))
    torch.set_num_threads(1 if expected > 1 else 2)  # not what the job will run with
    determinism.configure()
    recorded = determinism.environment()
    assert torch.get_num_threads() == recorded["threads"] == determinism.default_threads() == expected
    assert recorded["deterministic_algorithms"] is True and recorded["deterministic_warn_only"] is True
    assert recorded["cudnn_benchmark"] is False and recorded["tf32_matmul"] is True
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == recorded["cublas_workspace_config"]
    assert {"device", "cuda", "cudnn", "torch", "transformers", "tf32_cudnn"} <= set(recorded)
    json.dumps(recorded)  # goes into a job's metadata as it is
    monkeypatch.setenv(determinism.THREADS_ENV, "2")
    determinism.configure()
    assert torch.get_num_threads() == 2
    monkeypatch.setenv(determinism.THREADS_ENV, "1")
    determinism.configure()


@pytest.mark.parametrize("name, value", [("XFER_THREADS", "0"), ("XFER_THREADS", "many"),
                                         ("XFER_DETERMINISTIC", "maybe")])
def test_bad_settings_are_one_line_errors(monkeypatch, name, value):
    from xfer.errors import XferError

    monkeypatch.setenv(name, value)
    with pytest.raises(XferError, match=f"{name}={value!r}"):
        determinism.configure()
