"""Target-phase model selection: evaluation points, the English-dev (default) and per-language oracle choices
on hand-made score sequences, a training hook that leaves the trajectory untouched, and one small sweep whose
target jobs' results.json, predictions and oracle report agree with each other (XQuAD and MLQA in one job)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from xfer import cli, selection
from xfer.config import Hparams
from xfer.config import load as load_config
from xfer.data import BUNDLED
from xfer.plan import build_plan
from xfer.store import open_store
from xfer.train import train

# ----------------------------------------------------------------------------------------- pure logic


@pytest.mark.parametrize("total, per_epoch, max_points, expected", [
    (12, 2, 10, [2, 4, 6, 8, 10, 12]),       # every epoch's end
    (7, 3, 10, [3, 6, 7]),                   # a partial last epoch ends at the last step
    (4, 5, 10, [4]),                         # max_steps below one epoch: only the end
    (50, 5, 3, [20, 35, 50]),                # 10 epochs, 3 points: epochs ceil(10/3)=4, ceil(20/3)=7, 10
    (20, 10, 1, [20]),
])
def test_evaluation_points(total, per_epoch, max_points, expected):
    assert selection.evaluation_points(total, per_epoch, max_points) == expected


def test_best_point_takes_the_earliest_of_equal_scores_and_skips_none():
    assert selection.best_point([50.0, 60.0, 60.0, 55.0]) == 1
    assert selection.best_point([None, 40.0, None, 41.0]) == 3
    assert selection.best_point([None, None]) is None
    assert selection.best_point([]) is None


def test_default_and_oracle_selection_on_hand_made_scores():
    points = [10, 20, 30]
    chosen = selection.select(points, english_dev=[50.0, 60.0, 60.0], language_dev={
        "de": [40.0, 30.0, 45.0],   # the last point is best in German although English prefers step 20
        "sw": [70.0, 70.0, 10.0],   # tie between 10 and 20: the earlier
    })
    assert chosen == {"default": 20, "oracle": {"de": 30, "sw": 10}}
    # a language without a dev set is simply absent from the oracle
    assert "yo" not in chosen["oracle"]


def test_no_english_dev_set_selects_the_last_point():
    assert selection.select([5, 10], None, {"de": [2.0, 1.0]}) == {"default": 10, "oracle": {"de": 5}}


def test_select_rejects_sequences_of_the_wrong_length():
    with pytest.raises(ValueError, match="de: 1 scores for 2 points"):
        selection.select([5, 10], [1.0, 2.0], {"de": [1.0]})


def test_dev_score_is_the_mean_of_the_task_metrics():
    assert selection.dev_score({"exact_match": 40.0, "f1": 60.0, "other": 0.0}, ("exact_match", "f1")) == 50.0
    assert selection.dev_score({"accuracy": 71.5}, ("accuracy",)) == 71.5


def test_a_group_s_dev_score_is_the_mean_of_its_tasks_scores():
    qa = ("exact_match", "f1")
    dev = {"xquad": {"exact_match": 40.0, "f1": 60.0}, "mlqa": {"exact_match": 44.0, "f1": 62.0}}
    assert selection.group_dev_score(dev, {"xquad": qa, "mlqa": qa}) == (50.0 + 53.0) / 2
    assert selection.group_dev_score(dev, {"mlqa": qa}) == selection.dev_score(dev["mlqa"], qa) == 53.0


# ------------------------------------------------------------------------------------------- the hook


class Regressor(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Dropout(0.3), torch.nn.Linear(16, 1))

    def forward(self, x, y):
        return SimpleNamespace(loss=torch.nn.functional.mse_loss(self.net(x).squeeze(-1), y))


DATA = [{"x": torch.randn(4, generator=torch.Generator().manual_seed(i)), "y": torch.tensor(float(i % 3))}
        for i in range(10)]


def collate(rows):
    return {"x": torch.stack([r["x"] for r in rows]), "y": torch.stack([r["y"] for r in rows])}


def test_evaluation_hook_runs_at_the_given_steps_and_leaves_training_unchanged():
    hp = Hparams(lr=1e-2, batch_size=4, warmup=0.2)
    plain = Regressor()
    train(plain, DATA, collate, hp, total_steps=9, seed=5, device=torch.device("cpu"))

    seen = []

    def on_eval(step, model):
        assert model.training  # handed over as trained; the evaluation may switch modes
        model.eval()
        with torch.inference_mode():
            model(**collate(DATA))
        torch.rand(100)  # consumes the global RNG, as dropout or sampling in an evaluation would
        seen.append(step)

    hooked = Regressor()
    train(hooked, DATA, collate, hp, total_steps=9, seed=5, device=torch.device("cpu"), evaluate_at={3, 6, 9},
          on_eval=on_eval)
    assert seen == [3, 6, 9] and hooked.training
    for key, value in plain.state_dict().items():
        assert torch.equal(value, hooked.state_dict()[key]), key


# ------------------------------------------------------------------------------- a small sweep, end to end

CONFIG = """
name: selection-test
model:
  build: {vocab_size: 400, hidden_size: 32, num_layers: 1, num_heads: 2, intermediate_size: 64, seed: 0}
data: bundled
intermediate: {tasks: [mnli], budgets: [0]}
targets:
  xnli: {languages: [en, de, sw]}
  xquad: {languages: [en, de], hparams: {max_steps: 6}}
  mlqa: {languages: [en, de], hparams: {max_steps: 6}}
target_hparams: {lr: 2.0e-3, batch_size: 16, max_length: 64, epochs: 3, doc_stride: 16}
seeds: [1, 2]
"""
# the module's sweep: the oracle pass, and every point's test scores recorded (xfer's former protocol), so the
# chosen-point test pass can be checked against them
EVERY_POINT = CONFIG + "selection: {oracle: true, test_at_every_point: true}\n"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """One run of a tiny sweep: 1 build job, 3 target tasks in 2 target jobs (XQuAD and MLQA train once) x 2
    seeds, the aggregate. `results` and `jobs` are keyed by (task, seed), a task's results its own section."""
    base = tmp_path_factory.mktemp("selection")
    config = base / "sweep.yaml"
    config.write_text(EVERY_POINT)
    store_uri, report = f"file://{base / 'store'}", base / "report"
    code = cli.main(["run", str(config), "--store", store_uri, "--work", str(base / "work"), "--out", str(report)])
    plan = build_plan(load_config(str(config))[0])
    store = open_store(store_uri)
    committed = {job.id: json.loads(store.read_committed(job.output, "results.json"))
                 for job in plan.stage("evaluate") if store.is_committed(job.output)}  # test_sweep_runs checks all
    results = {(task, job.params["seed"]): committed[job.id]["tasks"][task]
               for job in plan.stage("evaluate") if job.id in committed for task in job.tasks}
    jobs = {(task, job.params["seed"]): job for job in plan.stage("evaluate") for task in job.tasks}
    return SimpleNamespace(code=code, report=report, results=results, jobs=jobs, store=store, base=base,
                           committed=committed, plan=plan, store_uri=store_uri)


def _argmax_earliest(scores):
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_sweep_runs(sweep):
    assert sweep.code == 0 and len(sweep.plan.stage("evaluate")) == len(sweep.committed) == 4
    assert len(sweep.results) == 6


def test_points_are_the_epoch_ends(sweep):
    n_train = sum(1 for row in _lines(BUNDLED / "nyu-mll/glue/mnli/train.jsonl") if row["label"] >= 0)
    per_epoch = math.ceil(n_train / 16)
    for seed in (1, 2):
        res = sweep.results[("xnli", seed)]
        assert sweep.committed[sweep.jobs[("xnli", seed)].id]["steps"] == 3 * per_epoch  # the job's, not a task's
        assert res["selection"]["points"] == [per_epoch, 2 * per_epoch, 3 * per_epoch]
        assert [r["step"] for r in res["selection"]["history"]] == res["selection"]["points"]
        # max_steps below one epoch: one point, at the end
        assert sweep.results[("xquad", seed)]["selection"]["points"] == [6]
        assert sweep.results[("mlqa", seed)]["selection"]["points"] == [6]
    # the scores move between points, so the choices below are real choices
    history = sweep.results[("xnli", 1)]["selection"]["history"]
    assert len({json.dumps(r["test"], sort_keys=True) for r in history}) > 1


@pytest.mark.parametrize("task, group", [("xnli", ("xnli",)), ("xquad", ("xquad", "mlqa")),
                                         ("mlqa", ("xquad", "mlqa"))])
def test_metrics_are_the_test_scores_at_the_best_english_dev_point(sweep, task, group):
    metrics = {"xnli": ("accuracy",), "xquad": ("exact_match", "f1"), "mlqa": ("exact_match", "f1")}
    for seed in (1, 2):
        assert sweep.jobs[(task, seed)].tasks == group
        res = sweep.results[(task, seed)]
        history = res["selection"]["history"]
        # a group selects on the mean over its tasks of each task's mean dev metric
        histories = [sweep.results[(t, seed)]["selection"]["history"] for t in group]
        dev = [sum(sum(h[i]["dev"][m] for m in metrics[t]) / len(metrics[t]) for t, h in zip(group, histories))
               / len(group) for i in range(len(history))]
        best = history[_argmax_earliest(dev)]
        assert res["selection"]["default"] == best["step"]
        # the test pass at the chosen point, from its kept snapshot, gives that point's scores exactly
        assert res["metrics"] == best["test"] and res["dev"] == best["dev"]
        assert set(res["metrics"]) == set(sweep.jobs[(task, seed)].params["tasks"][task]["languages"])


def test_oracle_takes_each_languages_best_dev_point(sweep):
    for seed in (1, 2):
        res = sweep.results[("xnli", seed)]
        history = res["selection"]["history"]
        assert set(res["oracle"]) == {"en", "de", "sw"}  # XNLI has a validation split per language
        for lang in ("en", "de", "sw"):
            j = _argmax_earliest([r["lang_dev"][lang]["accuracy"] for r in history])
            assert res["selection"]["oracle"][lang] == history[j]["step"]
            assert res["oracle"][lang] == history[j]["test"][lang]
        assert res["selection"]["no_language_dev"] == {}


def test_a_task_without_language_dev_sets_has_no_oracle(sweep):
    res = sweep.results[("xquad", 1)]
    assert res["oracle"] == {} and res["selection"]["oracle"] == {}
    assert set(res["selection"]["no_language_dev"]) == {"en", "de"}
    assert all(r["lang_dev"] == {} for r in res["selection"]["history"])


def test_written_predictions_are_the_default_selections(sweep):
    gold = {}
    for row in _lines(BUNDLED / "google/xtreme/XNLI/test.jsonl"):
        gold.setdefault(row["language"], []).append(row["gold_label"])
    for seed in (1, 2):
        job = sweep.jobs[("xnli", seed)]
        res = sweep.results[("xnli", seed)]
        local = sweep.base / f"fetch-{seed}"
        sweep.store.fetch(job.output, local)
        for lang in ("en", "de", "sw"):
            predicted = (local / "predictions" / "xnli" / f"test-{lang}.tsv").read_text().split()
            assert len(predicted) == len(gold[lang])
            accuracy = 100 * sum(p == g for p, g in zip(predicted, gold[lang])) / len(gold[lang])
            assert accuracy == pytest.approx(res["metrics"][lang]["accuracy"])


def _csv(path: Path) -> dict[tuple, float]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["intermediate_task", "budget", "seed", "target_task", "language", "metric",
                                     "value"]
        return {(r["seed"], r["target_task"], r["language"], r["metric"]): float(r["value"]) for r in reader}


def test_report_gives_both_selections_labelled(sweep):
    default, oracle = _csv(sweep.report / "results.csv"), _csv(sweep.report / "results_oracle.csv")
    assert set(default) == set(oracle)
    for (seed, task, lang, metric), value in default.items():
        res = sweep.results[(task, int(seed))]
        assert value == pytest.approx(res["metrics"][lang][metric])
        expected = res["oracle"][lang][metric] if lang in res["oracle"] else res["metrics"][lang][metric]
        assert oracle[(seed, task, lang, metric)] == pytest.approx(expected)
    summary = json.loads((sweep.report / "summary.json").read_text())
    section = summary["oracle"]
    assert section["label"].startswith("oracle selection on target-language dev sets — an upper bound")
    assert section["default_selection_used"] == {"no target-language dev set": ["xquad/de", "xquad/en"]}
    (row,) = section["rows"]
    for seed_row in row["per_seed"]:  # the oracle averages come from the oracle values
        seed = str(seed_row["seed"])
        hand = sum(oracle[(seed, "xnli", lang, "accuracy")] for lang in ("en", "de", "sw")) / 3
        assert seed_row["tasks"]["xnli"] == pytest.approx(hand)
    md = (sweep.report / "summary.md").read_text()
    assert "## Oracle selection" in md and "an upper bound, not a model-selection method" in md
    assert "- no target-language dev set: xquad/de, xquad/en" in md
    (main,) = summary["rows"]
    assert main["n_seeds"] == 2 and main["std"]["tasks"]["xnli"] is not None
    low, high = main["ci95"]["overall"]
    assert low <= main["overall"] <= high


def test_the_default_protocol_scores_tests_only_at_chosen_points_with_the_same_results(sweep, tmp_path):
    """Without the oracle pass and every-point test scores, each test set is evaluated once, at the default
    point, and gives exactly the metrics the every-point protocol recorded; no target-language dev set is
    read."""
    from xfer import formats
    from xfer.data import DataSource

    config = tmp_path / "default.yaml"
    config.write_text(CONFIG.replace("seeds: [1, 2]", "seeds: [1]"))
    predicted, loaded = [], []
    original_load = DataSource.load
    fmt = formats.get("classification")
    original_predict = fmt.predict

    def recording_predict(model, task, encoded, *args, **kwargs):
        predicted.append((task.name, len(encoded)))
        return original_predict(model, task, encoded, *args, **kwargs)

    def recording_load(self, task, split, lang="en"):
        loaded.append((task.name, split.split, split.config, lang))
        return original_load(self, task, split, lang)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fmt, "predict", recording_predict)
        patch.setattr(DataSource, "load", recording_load)
        assert cli.main(["run", str(config), "--store", sweep.store_uri, "--work", str(tmp_path / "work"),
                         "--out", str(tmp_path / "report")]) == 0
    plan = build_plan(load_config(str(config))[0])
    job = next(j for j in plan.stage("evaluate") if j.tasks == ("xnli",))
    res = json.loads(sweep.store.read_committed(job.output, "results.json"))["tasks"]["xnli"]
    reference = sweep.results[("xnli", 1)]
    assert res["metrics"] == reference["metrics"] and res["selection"]["default"] == reference["selection"]["default"]
    assert res["oracle"] == {} and res["selection"]["oracle_pass"] is False
    assert res["selection"]["test_evaluated_at"] == [res["selection"]["default"]]
    assert all("test" not in r and r["lang_dev"] == {} for r in res["selection"]["history"])
    # one English dev pass per point, then one pass per test language
    points = len(res["selection"]["points"])
    n_dev = sum(1 for row in _lines(BUNDLED / "nyu-mll/glue/mnli/validation_matched.jsonl") if row["label"] >= 0)
    assert [n for task, n in predicted if task == "xnli"].count(n_dev) >= points
    assert len([1 for task, n in predicted if task == "xnli"]) == points + 3
    assert not [entry for entry in loaded if entry[0] == "xnli" and entry[1] == "validation" and entry[2] == "XNLI"]


def test_selection_config_reaches_the_target_jobs():
    from xfer.config import parse
    from xfer.errors import XferError

    config = parse(CONFIG + "selection: {max_points: 2, oracle: true}\n", "t.yaml")
    jobs = build_plan(config).stage("evaluate")
    xnli = next(j for j in jobs if j.tasks == ("xnli",))
    assert xnli.params["selection"] == {"max_points": 2, "oracle": True, "test_at_every_point": False}
    assert set(xnli.params["tasks"]["xnli"]["data"]["lang_dev"]) == {"en", "de", "sw"}  # part of the job id
    assert all(v.startswith("sha256:") for v in xnli.params["tasks"]["xnli"]["data"]["lang_dev"].values())
    qa = next(j for j in jobs if j.tasks == ("xquad", "mlqa"))
    assert qa.params["tasks"]["xquad"]["data"]["lang_dev"] == {"en": None, "de": None}
    assert all(v.startswith("sha256:") for v in qa.params["tasks"]["mlqa"]["data"]["lang_dev"].values())
    # the setting is part of the target jobs' ids, and of no other job's
    other = build_plan(parse(CONFIG, "t.yaml"))
    assert {j.id for j in other.stage("evaluate")}.isdisjoint(j.id for j in jobs)
    assert other.stage("build")[0].id == build_plan(config).stage("build")[0].id
    # without the oracle pass the target-language dev sets are not read, so they are no input of the job
    plain = next(j for j in build_plan(parse(CONFIG, "t.yaml")).stage("evaluate") if j.tasks == ("xnli",))
    assert plain.params["tasks"]["xnli"]["data"]["lang_dev"] == {}
    with pytest.raises(XferError, match=r"t.yaml: selection.max_points: .*greater than or equal to 1"):
        parse(CONFIG + "selection: {max_points: 0}\n", "t.yaml")
