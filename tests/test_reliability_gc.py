"""`xfer gc`: removes what no given plan references (unknown jobs, finished jobs' checkpoints, commit
leftovers, expired leases, older reports), lists it first with --dry-run, keeps quarantine and live work."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from xfer import cli
from xfer.config import load as load_config
from xfer.plan import build_plan
from xfer.store import LocalStore, open_store

CONFIG = """
name: gc-test
model:
  build: {vocab_size: 300, hidden_size: 16, num_layers: 1, num_heads: 2, intermediate_size: 32, seed: 0}
data: bundled
intermediate: {tasks: [mnli], budgets: [0]}
targets:
  xnli: {languages: [en, de], hparams: {max_steps: 2}}
seeds: [1]
"""


def folder(tmp_path: Path, name: str, files: dict[str, bytes]) -> Path:
    root = tmp_path / "src" / name
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def test_gc_removes_what_no_plan_references(store, tmp_path, capsys):
    config = tmp_path / "gc.yaml"
    config.write_text(CONFIG)
    plan = build_plan(load_config(str(config))[0])
    build, target = plan.stage("build")[0], plan.stage("evaluate")[0]
    aggregate = plan.stage("aggregate")[0]
    expired = json.dumps({"owner": "dead", "token": "d" * 32, "ttl_seconds": 1}).encode()
    store.put_bytes(f"leases/{'e' * 16}.json", expired)
    store.put_bytes(f"leases/{target.id}.json", expired)
    started = time.monotonic()

    for job in (build, target):
        store.commit(job.output, folder(tmp_path, job.id, {"model.bin": job.id.encode()}))
    store.commit(f"jobs/{build.id}/checkpoints/step-00000010", folder(tmp_path, "ck", {"opt.bin": b"o"}))
    unknown = "0123456789abcdef"
    store.commit(f"jobs/{unknown}/output", folder(tmp_path, "unknown", {"model.bin": b"old sweep"}))
    running = "fedcba9876543210"  # not in the plan, but a live lease says it runs right now
    store.put_bytes(f"jobs/{running}/checkpoints/step-00000001/x.bin", b"in progress")
    store.put_bytes(f"leases/{running}.json", json.dumps({"owner": "alive", "token": "a" * 32,
                                                         "ttl_seconds": 600}).encode())
    store.commit(f"reports/gc-test/{aggregate.id}", folder(tmp_path, "rep", {"results.csv": b"new"}))
    store.commit("reports/gc-test/0000000000000000", folder(tmp_path, "oldrep", {"results.csv": b"old"}))
    store.commit("reports/other-sweep/1111111111111111", folder(tmp_path, "other", {"results.csv": b"x"}))
    store.commit("jobs/quarantined/output", folder(tmp_path, "q", {"a": b"a"}))  # an unknown id, then moved
    moved = store.quarantine("jobs/quarantined/output", "a test")
    expect = {f"jobs/{unknown}/", f"jobs/{build.id}/checkpoints/", "reports/gc-test/0000000000000000/",
              f"leases/{'e' * 16}.json", f"leases/{target.id}.json"}
    if isinstance(store, LocalStore):  # what a killed writer leaves: a staging folder and a temporary file
        staged = store.root / "jobs" / target.id / ".xfer-tmp-0123-output"
        (staged / "sub").mkdir(parents=True)
        (staged / "sub" / "x").write_bytes(b"x")
        temp = store.root / "configs" / ".xfer-tmp-abc-c.yaml"
        temp.parent.mkdir(parents=True)
        temp.write_bytes(b"partial")
        for path in (staged, temp):
            os.utime(path, (time.time() - 7200, time.time() - 7200))
        expect |= {f"jobs/{target.id}/.xfer-tmp-0123-output", "configs/.xfer-tmp-abc-c.yaml"}
    else:  # an attempt and a candidate of a writer that lost or died
        store.put_bytes(f"{target.output}/_attempts/{'b' * 32}/model.bin", b"orphan")
        store.put_bytes(f"{target.output}/_candidates/{'b' * 32}", b"")
        expect |= {f"{target.output}/_attempts/{'b' * 32}/", f"{target.output}/_candidates/{'b' * 32}"}
    time.sleep(max(0.0, started + 2.2 - time.monotonic()))  # the 1 s leases expire (S3 dates: whole seconds)

    before = store.list("")
    args = ["gc", str(config), "--store", store.uri, "--grace", "0"]
    assert cli.main(args + ["--dry-run"]) == 0
    listed = capsys.readouterr().out
    assert store.list("") == before  # a dry run removes nothing
    assert {line.split(": ", 1)[1].split("  (")[0] for line in listed.splitlines() if line.startswith("would remove")} == expect
    assert f"would remove: jobs/{unknown}/  (not in any given plan" in listed
    assert f"gc: {len(expect)} item(s) would remove from {store.uri} (dry run)" in listed
    assert "kept 1 quarantined output(s)" in listed

    assert cli.main(args) == 0
    assert f"removed: jobs/{unknown}/" in capsys.readouterr().out
    left = store.list("")
    for job in (build, target):
        assert store.read_committed(job.output, "model.bin") == job.id.encode()
    assert store.is_committed(f"reports/gc-test/{aggregate.id}") and store.is_committed("reports/other-sweep/1111111111111111")
    assert not any(k.startswith((f"jobs/{unknown}/", f"jobs/{build.id}/checkpoints/", "reports/gc-test/0000")) for k in left)
    assert f"jobs/{running}/checkpoints/step-00000001/x.bin" in left and f"leases/{running}.json" in left
    assert any(k.startswith(moved) for k in left)  # quarantine is never removed
    assert not any("_attempts/" + "b" * 32 in k or "_candidates/" + "b" * 32 in k for k in left)
    if isinstance(store, LocalStore):
        assert not store.scratch()
    assert cli.main(args) == 0 and "gc: 0 item(s) removed" in capsys.readouterr().out


def test_gc_keeps_young_leftovers_and_refuses_mixed_stores(tmp_path, capsys):
    store = open_store(str(tmp_path / "store"))
    (store.root / "jobs" / "x").mkdir(parents=True)
    (store.root / "jobs" / "x" / ".xfer-tmp-1-output").mkdir()  # a commit in progress
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(CONFIG + f"store: file://{tmp_path / 'store'}\n")
    b.write_text(CONFIG.replace("gc-test", "gc-other") + f"store: file://{tmp_path / 'elsewhere'}\n")
    assert cli.main(["gc", str(a), "--dry-run"]) == 0
    assert "gc: 0 item(s)" in capsys.readouterr().out
    assert cli.main(["gc", str(a), str(b)]) == 2
    assert "the given configs use different stores" in capsys.readouterr().err
