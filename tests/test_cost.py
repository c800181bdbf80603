"""`xfer plan --cost`: the estimate follows the plan, the data and the configured protocol, offline."""

from __future__ import annotations

import json
import math
from pathlib import Path

import yaml

from xfer import cli, cost, tasks
from xfer.config import parse
from xfer.data import BUNDLED
from xfer.plan import build_plan

ROOT = Path(__file__).parents[1]
SMALL = """
name: cost-test
model:
  build: {vocab_size: 400, hidden_size: 32, num_layers: 1, num_heads: 2, intermediate_size: 64, seed: 0}
data: bundled
intermediate: {tasks: [mnli], budgets: [0, 10]}
targets:
  xnli: {languages: [en, de, sw]}
  tatoeba: {languages: [de], layer: 1}
target_hparams: {batch_size: 16, max_length: 64, epochs: 3}
"""


def _lines(cfg) -> dict:
    lines, _ = cost.estimate(cfg, build_plan(cfg))
    return {(line.kind, line.part): line for line in lines}


def test_the_estimate_follows_the_plan_and_the_data():
    cfg = parse(SMALL, "cost.yaml")
    lines = _lines(cfg)
    assert set(lines) == {("intermediate", "training"), ("intermediate", "English dev"), ("target", "training"),
                          ("target", "English dev"), ("target", "test"), ("retrieval", "retrieval")}
    # two starts (pretrained, mnli@10), each one XNLI fine-tune of 3 epochs over MNLI's labelled rows
    rows = [json.loads(line) for line in (BUNDLED / "nyu-mll/glue/mnli/train.jsonl").read_text().splitlines()]
    per_epoch = math.ceil(sum(r["label"] >= 0 for r in rows) / 16)
    assert lines["target", "training"].steps == 2 * 3 * per_epoch
    assert lines["intermediate", "training"].steps == 10
    # the test sets are read once per job, at the chosen point: the rows of XNLI's three languages, twice
    test = [json.loads(line) for line in (BUNDLED / "google/xtreme/XNLI/test.jsonl").read_text().splitlines()]
    assert lines["target", "test"].rows == 2 * sum(r["language"] in ("en", "de", "sw") for r in test)
    assert all(line.sources == {"measured"} for line in lines.values())
    for line in lines.values():
        assert 0 < line.positions.real <= line.positions.computed and line.flops > 0


def test_the_configured_protocol_and_batching_change_the_estimate():
    base = _lines(parse(SMALL, "cost.yaml"))
    oracle = _lines(parse(SMALL + "selection: {oracle: true}\n", "cost.yaml"))
    assert ("target", "language dev") not in base and oracle["target", "language dev"].rows > 0
    assert oracle["target", "test"].rows > base["target", "test"].rows  # at most one pass per chosen point
    plain = _lines(parse(SMALL.replace("epochs: 3}", "epochs: 3, batching: random}"), "cost.yaml"))
    grouped, random = base["target", "training"].positions, plain["target", "training"].positions
    assert grouped.real == random.real and random.computed > grouped.computed


def test_the_paper_sweep_is_estimated_offline_from_modelled_data(capsys, tmp_path):
    raw = yaml.safe_load((ROOT / "configs" / "paper.yaml").read_text())
    raw["intermediate"]["tasks"].remove("ccg")
    raw["intermediate"]["mixtures"][0]["tasks"].remove("ccg")
    raw["intermediate"].pop("files")
    config = tmp_path / "paper.yaml"
    config.write_text(yaml.safe_dump(raw))
    out = tmp_path / "cost.json"
    assert cli.main(["plan", str(config), "--cost", "--cost-json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "what sweep 'paper-steps' will compute (414 jobs)" in printed and "modelled" in printed
    estimate = json.loads(out.read_text())
    assert estimate["layers"] == 24 and estimate["hidden"] == 1024
    by = {(line["kind"], line["part"]): line for line in estimate["lines"]}
    assert by["intermediate", "training"]["optimizer_steps"] == 9 * sum(raw["intermediate"]["budgets"])
    # XNLI's fine-tune is 2 epochs over MNLI at batch 32 per start: the biggest single item of the sweep
    starts = 1 + 9 * sum(1 for b in raw["intermediate"]["budgets"] if b)
    assert by["target", "training"]["optimizer_steps"] > starts * 2 * math.ceil(392_702 / 32)
    hours = sum(line["gpu_hours"] for line in estimate["lines"])
    assert 5 < hours < 50  # at 25% MFU of an H100: the order of magnitude of the paper's sweep
    assert tasks.get("ccg").user_files  # why ccg was dropped


def test_the_cost_is_estimated_offline_without_pinned_revisions(capsys, tmp_path, monkeypatch):
    """No Hub to resolve revisions: `--cost` still prints the table (job ids are provisional, which the cost
    does not depend on) and says so in one line; a plain `xfer plan` still refuses, naming the setting."""
    from xfer import revisions

    raw = yaml.safe_load((ROOT / "configs" / "paper.yaml").read_text())
    raw["intermediate"] = {"tasks": ["mnli", "squad"], "budgets": [0, 1000]}
    raw["targets"] = {"xnli": {}, "panx": {}}
    config = tmp_path / "paper.yaml"
    config.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    revisions.cache_clear()
    assert cli.main(["plan", str(config), "--cost"]) == 0
    out = capsys.readouterr()
    assert "what sweep 'paper-steps' will compute" in out.out
    (note,) = out.err.strip().splitlines()
    assert note.startswith("note: ") and "not resolved" in note and "job ids below are provisional" in note
    assert cli.main(["plan", str(config)]) == 2
    assert "pin" in capsys.readouterr().err
