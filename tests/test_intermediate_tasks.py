"""The paper's intermediate tasks and multi-task intermediate training: every new task trains as an
intermediate job on the bundled fixtures; label mappings per source; SQuAD 2.0 post-processing and scoring;
CommonsenseQA's letter keys; CCG from user files; mixtures (sampling, config errors, plan, resume)."""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from xfer import cli, preemption, tasks
from xfer import model as models
from xfer.config import Hparams, parse
from xfer.context import JobContext
from xfer.data import DataSource
from xfer.errors import Preempted, XferError
from xfer.plan import build_plan
from xfer.store import open_store
from xfer.tasks import NLI_LABELS, Split

CCG_DIR = Path(__file__).parent / "data" / "ccg"
NEW_TASKS = ("anli", "qqp", "squad_v2", "cosmosqa", "commonsenseqa", "ccg")
BUDGET = 6
CONFIG = f"""
name: itasks
model:
  build: {{vocab_size: 500, hidden_size: 32, num_layers: 1, num_heads: 2, intermediate_size: 64, seed: 0}}
data: bundled
intermediate:
  tasks: [{", ".join(NEW_TASKS)}]
  mixtures:
    - {{name: mix, tasks: [qqp, squad_v2, commonsenseqa, ccg], cap: 100}}
  budgets: [0, {BUDGET}]
  checkpoint_every: 3
  hparams: {{lr: 1.0e-3, batch_size: 8, max_length: 96, doc_stride: 32}}
  files: {{ccg: {CCG_DIR}}}
targets:
  xnli: {{languages: [en]}}
"""


def _ccg_tags(path: Path) -> list[str]:
    return [line.split("\t")[1] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """One tiny model built once; every intermediate job of CONFIG run once into a file store."""
    import jobs

    base = tmp_path_factory.mktemp("itasks")
    config = parse(CONFIG, "itasks.yaml")
    plan = build_plan(config)
    store = open_store(f"file://{base / 'store'}")
    ctx = JobContext(config, plan, store, base / "work")
    for job in plan.stage("build") + plan.stage("intermediate"):
        jobs.run(job, ctx)
    by_task = {job.params["task"]: job for job in plan.stage("intermediate")}
    return {"config": config, "plan": plan, "store": store, "ctx": ctx, "jobs": by_task, "base": base,
            "build": plan.stage("build")[0]}


def _output(sweep, job, name: str) -> Path:
    local = sweep["base"] / "fetched" / name
    if not local.is_dir():
        sweep["store"].fetch(job.output, local)
    return local


@pytest.mark.parametrize("name", NEW_TASKS + ("mix",))
def test_each_task_trains_and_its_encoder_loads_into_a_target_model(sweep, name):
    import torch
    from safetensors.torch import load_file

    job = sweep["jobs"][name]
    store = sweep["store"]
    assert store.is_committed(job.output)
    assert not store.list(f"jobs/{job.id}/checkpoints/")  # checkpoints dropped once the output is committed
    info = json.loads(store.read_committed(job.output, "xfer.json"))
    assert info["task"] == name and info["budget"] == BUDGET and np.isfinite(info["train_loss"])
    out = _output(sweep, job, name)
    saved = load_file(out / "model.safetensors")
    target = models.build("classification", out, num_labels=3)  # strict encoder load, fresh head
    for key, value in target.roberta.state_dict().items():
        assert torch.equal(value, saved[f"roberta.{key}"]), key
    base = load_file(_output(sweep, sweep["build"], "base") / "model.safetensors")
    moved = [k for k in base if k.startswith("roberta.encoder.") and not torch.equal(base[k], saved[k])]
    assert moved, "training left the encoder unchanged"
    assert not any(k.startswith("classifier.") for k in target.state_dict() if k in saved and
                   torch.equal(target.state_dict()[k], saved[k]))  # the intermediate head is not reused


def test_dev_scores_of_each_task(sweep):
    store = sweep["store"]
    dev = {name: json.loads(store.read_committed(job.output, "xfer.json"))["dev"]
           for name, job in sweep["jobs"].items()}
    for name in ("qqp", "cosmosqa", "commonsenseqa"):
        assert 0.0 <= dev[name]["accuracy"] <= 100.0
    assert set(dev["squad_v2"]) == {"exact_match", "f1"}
    assert set(dev["ccg"]) == {"token_accuracy"}  # no seqeval F1 over supertags
    # ANLI+: the three dev rounds (16 examples each) and their pooled accuracy
    rounds = dev["anli"]["splits"]
    assert set(rounds) == {"dev_r1", "dev_r2", "dev_r3"}
    assert dev["anli"]["accuracy"] == pytest.approx(sum(r["accuracy"] for r in rounds.values()) / 3)
    assert set(dev["mix"]) == {"qqp", "squad_v2", "commonsenseqa", "ccg"}


def test_ccg_labels_come_from_the_training_file_and_travel_with_the_checkpoint(sweep):
    info = json.loads(sweep["store"].read_committed(sweep["jobs"]["ccg"].output, "xfer.json"))
    expected = sorted(set(_ccg_tags(CCG_DIR / "train.tsv")))
    assert info["labels"] == {"ccg": expected}
    assert "(S\\NP)\\(S\\NP)" not in expected and "(S\\NP)\\(S\\NP)" in _ccg_tags(CCG_DIR / "dev.tsv")
    config = json.loads((_output(sweep, sweep["jobs"]["ccg"], "ccg") / "config.json").read_text())
    assert [config["id2label"][str(i)] for i in range(len(expected))] == expected
    mix = json.loads(sweep["store"].read_committed(sweep["jobs"]["mix"].output, "xfer.json"))
    assert mix["labels"] == {"ccg": expected}


def test_mixture_checkpoint_holds_one_encoder_and_a_head_per_task(sweep):
    from safetensors.torch import load_file

    info = json.loads(sweep["store"].read_committed(sweep["jobs"]["mix"].output, "xfer.json"))
    assert sum(info["mixture"]["draws"].values()) == BUDGET
    sizes = {"qqp": 160, "squad_v2": 128, "commonsenseqa": 128, "ccg": 40}  # training rows (fixtures, sample)
    capped = {t: min(n, 100) for t, n in sizes.items()}
    assert info["mixture"]["weights"] == pytest.approx({t: n / sum(capped.values()) for t, n in capped.items()})
    keys = load_file(_output(sweep, sweep["jobs"]["mix"], "mix") / "model.safetensors")
    heads = {k.split(".")[1] for k in keys if k.startswith("heads.")}
    assert heads == {"qqp", "squad_v2", "commonsenseqa", "ccg"}
    assert not any(".roberta." in k for k in keys)  # the shared encoder is stored once
    assert keys["heads.ccg.classifier.weight"].shape[0] == len(set(_ccg_tags(CCG_DIR / "train.tsv")))


def test_mixture_job_resumes_bit_exactly_after_preemption(sweep, tmp_path):
    """SIGTERM at step 4 of the mixture job: it commits a checkpoint and stops; the rerun resumes and
    commits the very model the uninterrupted run did."""
    import jobs

    job = sweep["jobs"]["mix"]
    store = open_store(f"file://{tmp_path / 'store'}")
    build = sweep["build"]
    store.commit(build.output, _output(sweep, build, "base"))

    def kill_at_4(done, total):
        if done == 4:
            os.kill(os.getpid(), signal.SIGTERM)

    ctx = JobContext(sweep["config"], sweep["plan"], store, tmp_path / "work", on_progress=kill_at_4)
    with preemption.handling_sigterm(), pytest.raises(Preempted, match="stopped by SIGTERM at step 4"):
        jobs.run(job, ctx)
    assert not store.is_committed(job.output)
    jobs.run(job, JobContext(sweep["config"], sweep["plan"], store, tmp_path / "work2"))
    info = json.loads(store.read_committed(job.output, "xfer.json"))
    assert info["resumed_from"] == 4
    reference = sweep["store"].manifest(job.output)["files"]["model.safetensors"]["sha256"]
    assert store.manifest(job.output)["files"]["model.safetensors"]["sha256"] == reference


# ---- ANLI+ sources and label mapping


def test_anli_plus_reads_five_sources_and_drops_snli_rows_without_gold():
    from xfer.formats.common import label_ids

    task = tasks.get("anli")
    data = DataSource("bundled")
    sources = [(s.dataset, s.split) for s in tasks.splits(task.train)]
    assert sources == [("facebook/anli", "train_r1"), ("facebook/anli", "train_r2"), ("facebook/anli", "train_r3"),
                       ("nyu-mll/glue", "train"), ("stanfordnlp/snli", "train")]
    kept = {}
    for split in tasks.splits(task.train):
        labels = label_ids(task, split, data.load(task, split)["label"])
        kept[split.dataset + "/" + split.split] = sum(label >= 0 for label in labels)
    # 48 per ANLI round, MNLI's 256, SNLI's 64 less its 4 rows without a gold label
    assert kept == {"facebook/anli/train_r1": 48, "facebook/anli/train_r2": 48, "facebook/anli/train_r3": 48,
                    "nyu-mll/glue/train": 256, "stanfordnlp/snli/train": 60}
    plan_cfg = parse(CONFIG.replace(f"tasks: [{', '.join(NEW_TASKS)}]", "tasks: [anli]"), "c.yaml")
    job = build_plan(plan_cfg).stage("intermediate")[0]
    assert len(job.params["data"]["train"]) == 5 and len(job.params["data"]["dev"]) == 3


def test_snli_row_without_gold_is_dropped_from_the_features():
    from xfer.formats import classification

    class Tokenizer:  # enough of a tokenizer for the classification format
        def __call__(self, first, second, truncation, max_length, return_attention_mask=True):
            return {"input_ids": [[1, 2]] * len(first), "attention_mask": [[1, 1]] * len(first)}

    snli = tasks.splits(tasks.get("anli").train)[-1]
    rows = {"premise": ["a", "b", "c"], "hypothesis": ["x", "y", "z"], "label": [2, -1, 0]}
    features = classification.train_features(tasks.get("anli"), snli, rows, Tokenizer(), Hparams())
    assert [f["labels"] for f in features] == [2, 0]


def test_each_nli_source_maps_contradiction_to_the_same_index():
    from xfer.formats.common import label_ids

    task = tasks.get("anli")
    for split in tasks.splits(task.train) + tasks.splits(task.dev):
        assert split.label_names == NLI_LABELS  # each source's ClassLabel, checked on the Hub
        assert label_ids(task, split, [2, 0, 1, -1]) == [2, 0, 1, -1]  # contradiction, entailment, neutral, none
    # a source declaring another order (jiant's MNLI: contradiction, entailment, neutral) is mapped by name
    jiant = Split("jiant/mnli", "mnli", "train", {}, label_names=("contradiction", "entailment", "neutral"))
    assert label_ids(task, jiant, [0, 1, 2]) == [NLI_LABELS.index("contradiction"), 0, 1]
    odd = Split("x/y", "c", "train", {}, label_names=("entailment", "not_entailment"))
    with pytest.raises(XferError, match="'not_entailment' is not one of"):
        label_ids(task, odd, [1])
    qqp = tasks.get("qqp")
    assert label_ids(qqp, qqp.train, [0, 1]) == [qqp.labels.index("not_duplicate"), qqp.labels.index("duplicate")]


# ---- SQuAD 2.0


def _one_window(null: float, start: float, end: float, windows: int = 1):
    """Logits for one example: <s> (index 0, the null position), two question tokens, then context tokens
    'Kofi' (0-4) and 'Otieno' (5-11); the best span is 'Kofi Otieno' with score start + end."""
    from xfer import qa

    context = "Kofi Otieno"
    offsets = [None, None, None, (0, 4), (5, 11)]
    starts = np.full((windows, 5), -10.0)
    ends = np.full((windows, 5), -10.0)
    starts[:, 0], ends[:, 0] = null / 2, null / 2
    starts[:, 3], ends[:, 4] = start, end
    return qa, ["q"], [context], [0] * windows, [offsets] * windows, starts, ends


def test_squad_v2_post_processing_predicts_empty_when_the_null_score_wins():
    qa, ids, contexts, index, offsets, starts, ends = _one_window(null=5.0, start=3.0, end=1.0)
    assert qa.best_answers(ids, contexts, index, offsets, starts, ends, null_threshold=0.0) == {"q": ""}
    assert qa.best_answers(ids, contexts, index, offsets, starts, ends) == {"q": "Kofi Otieno"}  # SQuAD v1.1
    assert qa.best_answers(ids, contexts, index, offsets, starts, ends, null_threshold=1.5) == {"q": "Kofi Otieno"}
    qa, ids, contexts, index, offsets, starts, ends = _one_window(null=3.0, start=3.0, end=1.0)
    assert qa.best_answers(ids, contexts, index, offsets, starts, ends, null_threshold=0.0) == {"q": "Kofi Otieno"}


def test_squad_v2_null_score_is_the_lowest_over_the_windows():
    qa, ids, contexts, index, offsets, starts, ends = _one_window(null=5.0, start=3.0, end=1.0, windows=2)
    starts[1, 0], ends[1, 0] = 1.0, 1.0  # the second window's null score is 2 < 4, the best span's score
    assert qa.best_answers(ids, contexts, index, offsets, starts, ends, null_threshold=0.0) == {"q": "Kofi Otieno"}


def test_squad_v2_scores_by_hand():
    from xfer.metrics import squad_v2_scores

    predictions = {"q1": "", "q2": "Nairobi", "q3": "", "q4": "Otieno", "q5": ""}
    gold = {"q1": [], "q2": [], "q3": ["the Red Cross", "Red Cross"], "q4": ["Kofi Otieno"], "q5": ["."]}
    # q1: both empty -> 1/1; q2: answered an unanswerable -> 0/0; q3: missed an answer -> 0/0;
    # q4: F1 of [otieno] vs [kofi, otieno] = 2 * 1 * 0.5 / 1.5 = 2/3; q5: "." normalises to nothing -> empty gold
    scores = squad_v2_scores(predictions, gold)
    assert scores["exact_match"] == pytest.approx(100 * 2 / 5)
    assert scores["f1"] == pytest.approx(100 * (1 + 2 / 3 + 1) / 5)
    assert squad_v2_scores({}, {"q": []}) == {"exact_match": 0.0, "f1": 0.0}  # a missing prediction scores 0


# ---- multiple choice: CommonsenseQA letters, Cosmos QA columns


def test_commonsenseqa_answer_key_is_the_position_of_its_letter_among_the_row_labels():
    from xfer.formats.multiple_choice import _choices_and_labels, _prompts

    task = tasks.get("commonsenseqa")
    rows = {"question": ["Where is milk kept?"] * 3,
            "choices": [{"label": list("ABCDE"), "text": list("vwxyz")},
                        {"label": list("EDCBA"), "text": list("vwxyz")},
                        {"label": list("ABCDE"), "text": list("vwxyz")}],
            "answerKey": ["C", "E", ""]}
    choices, labels = _choices_and_labels(task, task.train, rows)
    assert labels == [2, 0, -1] and choices[0] == list("vwxyz")  # "" = no key (the Hub's test split)
    assert _prompts(task.train, rows) == rows["question"]
    rows["answerKey"][0] = "F"
    with pytest.raises(XferError, match="answer key 'F' is not one of the choice labels"):
        _choices_and_labels(task, task.train, rows)


def test_cosmosqa_reads_choices_from_four_columns_after_context_and_question():
    from xfer.formats.multiple_choice import _choices_and_labels, _prompts

    task = tasks.get("cosmosqa")
    rows = {"context": ["I woke up late."], "question": ["Why did I miss the bus?"],
            "answer0": ["a"], "answer1": ["b"], "answer2": ["c"], "answer3": ["d"], "label": [3]}
    assert _choices_and_labels(task, task.train, rows) == ([["a", "b", "c", "d"]], [3])
    assert _prompts(task.train, rows) == ["I woke up late. Why did I miss the bus?"]
    assert task.train.revision == "refs/convert/parquet" and len(task.labels) == 4
    assert len(tasks.get("commonsenseqa").labels) == 5


# ---- CCG from user files


def _write_config(tmp_path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def _fails_with_one_line(path: Path, capsys) -> str:
    assert cli.main(["plan", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and err.startswith("xfer: error: ")
    return err


def test_ccg_without_files_fails_in_one_line_saying_ccgbank_is_licensed(tmp_path, capsys):
    text = CONFIG.replace(f"  files: {{ccg: {CCG_DIR}}}\n", "")
    err = _fails_with_one_line(_write_config(tmp_path, text), capsys)
    assert "intermediate: task 'ccg' needs data files" in err
    assert "CCGbank is licensed" in err and "not on the Hugging Face Hub" in err
    assert "intermediate.files.ccg" in err and "train.tsv" in err and "word<TAB>supertag" in err


def test_ccg_with_a_missing_folder_or_a_bad_line_fails_in_one_line(tmp_path, capsys):
    err = _fails_with_one_line(_write_config(tmp_path, CONFIG.replace(str(CCG_DIR), str(tmp_path / "nope"))),
                               capsys)
    assert f"{tmp_path / 'nope' / 'train.tsv'} not found" in err and "CCGbank is licensed" in err
    from xfer import userfiles

    bad = tmp_path / "train.tsv"
    bad.write_text("Amina\tNP\nlives (S\\NP)/PP\n")
    with pytest.raises(XferError, match=rf"{bad}:2: expected 'word<TAB>tag'"):
        userfiles.read_sentences(bad)
    text = CONFIG.replace("ccg: ", "hellaswag: ")
    err = _fails_with_one_line(_write_config(tmp_path, text), capsys)
    assert "files.hellaswag: task 'hellaswag' does not read user files" in err


def test_ccg_tags_are_names_and_an_unseen_dev_tag_is_scored_but_never_predicted():
    import re
    from dataclasses import replace

    from xfer.formats.tagging import _gold, _tag_ids

    ccg = tasks.get("ccg")
    task = replace(ccg, labels=("N", "NP", "PP/NP"))
    unseen = "(S\\NP)\\(S\\NP)"
    assert _tag_ids(task, ccg.train, ["NP", "PP/NP", "N"], lenient=False) == [1, 2, 0]
    with pytest.raises(XferError, match=re.escape(f"ccg train: tag {unseen!r} is not one of the task's labels")):
        _tag_ids(task, ccg.train, ["NP", unseen], lenient=False)
    assert _tag_ids(task, ccg.dev, ["NP", unseen], lenient=True) == [1, 0]  # 0: a placeholder position
    assert _gold(task, ccg.dev, ["NP", unseen]) == ["NP", unseen]  # scored as it is
    panx = tasks.get("panx")
    assert _gold(panx, panx.test, [0, 1, 2]) == ["O", "B-PER", "I-PER"]  # index tags are unchanged


# ---- mixtures: sampling, config, plan


def test_mixture_draws_tasks_in_proportion_to_capped_sizes():
    from xfer.train import TaskMixture

    hp = Hparams(batch_size=4)
    data = {"big": list(range(1000)), "mid": list(range(100)), "small": list(range(50))}
    collates = {name: (lambda rows: {"rows": rows}) for name in data}
    sizes = {name: len(rows) for name, rows in data.items()}
    mixture = TaskMixture(data, collates, sizes, cap=200, seed=7, total_steps=7000, hp=hp)
    assert mixture.weights.tolist() == pytest.approx([4 / 7, 2 / 7, 1 / 7])  # 200 : 100 : 50
    counts = mixture.draws(7000)
    assert sum(counts.values()) == 7000
    for name, expected in (("big", 4000), ("mid", 2000), ("small", 1000)):
        assert abs(counts[name] - expected) < 150, counts  # > 3.5 binomial standard deviations
    again = TaskMixture(data, collates, sizes, cap=200, seed=7, total_steps=7000, hp=hp)
    assert again.schedule.tolist() == mixture.schedule.tolist()  # deterministic given the seed
    assert TaskMixture(data, collates, sizes, cap=200, seed=8, total_steps=7000, hp=hp).schedule.tolist() != \
        mixture.schedule.tolist()
    shorter = TaskMixture(data, collates, sizes, cap=200, seed=7, total_steps=100, hp=hp)
    assert shorter.schedule.tolist() == mixture.schedule[:100].tolist()
    uncapped = TaskMixture(data, collates, sizes, cap=None, seed=7, total_steps=10, hp=hp)
    assert uncapped.weights.tolist() == pytest.approx([1000 / 1150, 100 / 1150, 50 / 1150])
    # each task's batches walk through its own rows: the first 13 draws of "small" cover all of its 50 rows
    small = [s for s in range(7000) if mixture.task(s) == "small"][:13]
    seen = Counter(row for s in small for row in mixture.batch(s, 0)["rows"])
    assert set(seen) == set(range(50)) and mixture.batch(small[0], 0)["task"] == "small"


MIX_CONFIG = """
name: m
model: {name: FacebookAI/xlm-roberta-large}
intermediate:
  tasks: [mnli]
  mixtures:
    - {name: mix1, tasks: [mnli, squad, hellaswag], cap: 20000}
  budgets: [0, 1000]
targets: {xnli: {}}
"""


def test_the_mixture_config_is_valid():
    config = parse(MIX_CONFIG, "m.yaml")
    assert config.intermediate.names() == ["mnli", "mix1"]
    assert config.intermediate.member_tasks() == ["mnli", "squad", "hellaswag"]


@pytest.mark.parametrize("old, new, expected", [
    ("squad,", "squadd,", "intermediate.mixtures[0].tasks[1]: unknown intermediate task 'squadd' (known: "),
    ("cap: 20000", "cap: -5", "intermediate.mixtures[0].cap: Input should be greater than 0 (value: -5)"),
    ("tasks: [mnli, squad, hellaswag]", "tasks: []",
     "intermediate.mixtures[0].tasks: List should have at least 1 item"),
    ("name: mix1", "name: mnli", "intermediate: mixtures[0].name: 'mnli' already names a task or mixture"),
    ("cap: 20000", "cap: 20000, sampling: uniform", "intermediate.mixtures[0].sampling: Input should be "),
    ("cap: 20000", "cap: 20000, cpa: 1", "intermediate.mixtures[0].cpa: unknown field"),
])
def test_bad_mixture_config_fails_in_one_line_naming_the_field(tmp_path, capsys, old, new, expected):
    assert old in MIX_CONFIG
    err = _fails_with_one_line(_write_config(tmp_path, MIX_CONFIG.replace(old, new, 1)), capsys)
    assert expected in err


def test_mixture_is_an_intermediate_entry_whose_id_hashes_members_cap_and_sampling():
    plan = build_plan(parse(MIX_CONFIG, "m.yaml"))
    jobs = {job.params["task"]: job for job in plan.stage("intermediate")}
    assert set(jobs) == {"mnli", "mix1"}
    assert jobs["mix1"].params["mixture"] == {"tasks": ["mnli", "squad", "hellaswag"], "cap": 20000,
                                              "sampling": "proportional"}
    assert set(jobs["mix1"].params["data"]) == {"mnli", "squad", "hellaswag"}
    assert "mixture" not in jobs["mnli"].params
    cells = plan.stage("aggregate")[0].params["cells"]
    assert {c["intermediate_task"] for c in cells} == {"mnli", "mix1"}  # the report names the mixture
    for edit in ("cap: 10000", "tasks: [mnli, squad]"):
        after = build_plan(parse(MIX_CONFIG.replace("cap: 20000" if "cap" in edit else
                                                    "tasks: [mnli, squad, hellaswag]", edit), "m.yaml"))
        changed = {j.params["task"] for j in after.stage("intermediate") if j.id not in plan.by_id}
        assert changed == {"mix1"}, edit
    only_mixture = MIX_CONFIG.replace("  tasks: [mnli]\n", "")
    assert {j.params["task"] for j in build_plan(parse(only_mixture, "m.yaml")).stage("intermediate")} == {"mix1"}
    with pytest.raises(XferError, match="give at least one intermediate task in 'tasks' or 'mixtures'"):
        parse(only_mixture.replace("  mixtures:\n    - {name: mix1, tasks: [mnli, squad, hellaswag], cap: 20000}\n",
                                   ""), "m.yaml")


def test_mixture_with_a_qa_member_checks_the_doc_stride():
    text = MIX_CONFIG.replace("budgets: [0, 1000]", "budgets: [0, 1000]\n  hparams: {max_length: 64, doc_stride: 48}")
    with pytest.raises(XferError, match="intermediate.hparams: doc_stride 48 must be at most half"):
        parse(text.replace("tasks: [mnli]\n", "tasks: [mnli]\n", 1), "m.yaml")


def test_paper_config_sweeps_the_nine_tasks_and_asks_for_ccgbank(capsys):
    paper = Path(__file__).parents[1] / "configs" / "paper.yaml"
    config = parse(paper.read_text(), str(paper))
    assert sorted(config.intermediate.tasks) == sorted(
        ["anli", "mnli", "qqp", "squad", "squad_v2", "hellaswag", "cosmosqa", "commonsenseqa", "ccg"])
    assert sorted(config.intermediate.mixture("multitask").tasks) == sorted(config.intermediate.tasks)
    assert set(config.targets) == {"xnli", "pawsx", "udpos", "panx", "xquad", "mlqa", "tydiqa", "bucc2018",
                                   "tatoeba"}
    if not (Path("data/ccgbank") / "train.tsv").is_file():  # the licensed data is not part of xfer
        assert cli.main(["plan", str(paper)]) == 2
        assert "CCGbank is licensed" in capsys.readouterr().err
    with_sample = config.model_copy(update={"intermediate": config.intermediate.model_copy(
        update={"files": {"ccg": str(CCG_DIR)}})})
    plan = build_plan(with_sample)
    assert len(plan.stage("intermediate")) == 10 * 5  # nine tasks and one mixture, five non-zero budgets
