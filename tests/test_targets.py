"""The XTREME target tasks PAWS-X, UD POS, MLQA, TyDiQA-GoldP and BUCC 2018: their declarations, the data they
read, and their jobs (target fine-tune+eval; retrieval for BUCC) run end to end on the bundled fixtures; XQuAD
and MLQA share one target job that trains once on SQuAD."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xfer import cli, metrics, mlqa, tasks
from xfer.config import parse
from xfer.data import BUNDLED, DataSource
from xfer.errors import XferError
from xfer.formats import span_qa
from xfer.plan import build_plan
from xfer.store import open_store

XTREME = BUNDLED / "google" / "xtreme"
CONFIG = """\
name: targets
model:
  build: {vocab_size: 600, hidden_size: 32, num_layers: 2, num_heads: 2, intermediate_size: 64, seed: 0}
data: bundled
intermediate:
  tasks: [mnli]
  budgets: [0]
targets:
  pawsx: {languages: [en, de, es]}
  udpos: {languages: [en, de, es, yo, kk]}
  mlqa: {languages: [en, de, es]}
  xquad: {languages: [en, de]}
  tydiqa: {languages: [en, id, sw, te]}
  bucc2018: {languages: [de, fr], layer: 2}
target_hparams: {lr: 1.0e-3, batch_size: 16, max_length: 128, epochs: 1, doc_stride: 32}
selection: {max_points: 1, oracle: true}
low_resource: [sw, te, yo, kk]
"""


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """One run of a small sweep with every new target task, from a tiny model built once; every DataSource.load
    call is recorded as (task, config, split, lang), every span-QA model pass as (dataset, config, split)."""
    base = tmp_path_factory.mktemp("targets")
    config = base / "targets.yaml"
    config.write_text(CONFIG)
    loads = []
    original = DataSource.load

    def recording_load(self, task, split, lang="en"):
        loads.append((task.name, split.config_for(task.code(lang), lang), split.split, lang))
        return original(self, task, split, lang)

    qa_passes, qa_encodings, encoded_as = [], [], {}
    eval_set, predict = span_qa.eval_set, span_qa.predict

    def recording_eval_set(task, split, *args, **kwargs):
        encoded = eval_set(task, split, *args, **kwargs)
        encoded_as[id(encoded)] = (split.dataset, split.config, split.split)
        qa_encodings.append(encoded_as[id(encoded)])
        return encoded

    def recording_predict(model, task, encoded, *args, **kwargs):
        qa_passes.append(encoded_as.get(id(encoded)))
        return predict(model, task, encoded, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DataSource, "load", recording_load)
        patch.setattr(span_qa, "eval_set", recording_eval_set)
        patch.setattr(span_qa, "predict", recording_predict)
        code = cli.main(["run", str(config), "--store", f"file://{base / 'store'}", "--work", str(base / "work"),
                         "--out", str(base / "report")])
    store = open_store(f"file://{base / 'store'}")
    plan = build_plan(parse(CONFIG, "targets.yaml"))
    jobs = {task: job for job in plan.jobs if job.kind in ("target", "retrieval") for task in job.tasks}
    return {"code": code, "store": store, "jobs": jobs, "loads": loads, "qa_passes": qa_passes,
            "qa_encodings": qa_encodings, "base": base}


def _results(sweep, task: str) -> tuple[dict, dict]:
    """The task's results (a target job's are under `tasks.<task>`) and the job's committed files."""
    job = sweep["jobs"][task]
    store = sweep["store"]
    assert store.is_committed(job.output), f"{task}: job {job.id} committed nothing"
    results = json.loads(store.read_committed(job.output, "results.json"))
    return results["tasks"][task] if job.kind == "target" else results, store.manifest(job.output)["files"]


def _prediction(sweep, task: str, name: str) -> str:
    return sweep["store"].read_committed(sweep["jobs"][task].output, f"predictions/{task}/{name}").decode()


def _check_metrics(results: dict, langs: list[str], keys: set[str]) -> None:
    assert set(results["metrics"]) == set(langs)
    for lang in langs:
        assert set(results["metrics"][lang]) >= keys, lang
        assert all(0.0 <= results["metrics"][lang][k] <= 100.0 for k in keys), (lang, results["metrics"][lang])


def test_the_sweep_succeeds(sweep):
    assert sweep["code"] == 0
    assert {job.kind for job in sweep["jobs"].values()} == {"target", "retrieval"}
    assert sweep["jobs"]["bucc2018"].kind == "retrieval"


def test_pawsx_job_scores_every_language_and_writes_one_label_per_pair(sweep):
    results, files = _results(sweep, "pawsx")
    _check_metrics(results, ["en", "de", "es"], {"accuracy"})
    for lang in ("en", "de", "es"):
        lines = _prediction(sweep, "pawsx", f"test-{lang}.tsv").splitlines()
        assert len(lines) == len(_jsonl(XTREME / f"PAWS-X.{lang}" / "test.jsonl")) == 40
        assert set(lines) <= {"0", "1"}


def test_pawsx_never_reads_a_machine_translated_train_split(sweep):
    pawsx = [load for load in sweep["loads"] if load[0] == "pawsx"]
    assert ("pawsx", "PAWS-X.en", "train", "en") in pawsx
    assert [load for load in pawsx if load[2] == "train"] == [("pawsx", "PAWS-X.en", "train", "en")]
    assert {load[1] for load in pawsx if load[2] == "test"} == {"PAWS-X.en", "PAWS-X.de", "PAWS-X.es"}
    task = tasks.get("pawsx")
    assert {task.train.config_for(task.code(lang), lang) for lang in task.languages} == {"PAWS-X.en"}


def test_udpos_job_tags_every_word_of_every_language(sweep):
    results, _ = _results(sweep, "udpos")
    langs = ["en", "de", "es", "yo", "kk"]
    _check_metrics(results, langs, {"f1", "token_accuracy"})
    names = {"en": "English", "de": "German", "es": "Spanish", "yo": "Yoruba", "kk": "Kazakh"}
    for lang in langs:
        gold = _jsonl(XTREME / f"udpos.{names[lang]}" / "test.jsonl")
        text = _prediction(sweep, "udpos", f"test-{lang}.tsv")
        sentences = [block.split("\n") for block in text.rstrip("\n").split("\n\n")]
        assert [len(s) for s in sentences] == [len(r["tokens"]) for r in gold], lang
        assert {tag for s in sentences for tag in s} <= set(tasks.UPOS_TAGS)
    # Yoruba and Kazakh have no dev split: no oracle selection for them, and the job still succeeds
    assert set(results["oracle"]) == {"en", "de", "es"}
    assert set(results["selection"]["no_language_dev"]) == {"yo", "kk"}


def _qa_ids(path: Path, prefix: str = "") -> set[str]:
    return {r["id"] for r in _jsonl(path) if r["id"].startswith(prefix)}


def test_mlqa_job_answers_every_question_of_every_language(sweep):
    results, _ = _results(sweep, "mlqa")
    _check_metrics(results, ["en", "de", "es"], {"exact_match", "f1"})
    for lang in ("en", "de", "es"):
        answers = json.loads(_prediction(sweep, "mlqa", f"test-{lang}.json"))
        assert set(answers) == _qa_ids(XTREME / f"MLQA.{lang}.{lang}" / "test.jsonl") and len(answers) == 32
        assert all(isinstance(a, str) for a in answers.values())


def test_xquad_and_mlqa_train_once_and_each_is_scored_by_its_own_rules(sweep):
    job = sweep["jobs"]["xquad"]
    assert sweep["jobs"]["mlqa"] is job and job.tasks == ("xquad", "mlqa")
    # SQuAD train and dev are read once, for the one training of the group
    squad = [load for load in sweep["loads"] if load[1] == "plain_text"]
    assert sorted(load[2] for load in squad) == ["train", "validation"]
    full = json.loads(sweep["store"].read_committed(job.output, "results.json"))
    assert set(full["tasks"]) == {"xquad", "mlqa"}
    # the training rows' answers were checked against their contexts (the fixtures' are all aligned)
    assert full["training_data"] == {"answer_alignment": {"repaired": 0, "dropped": 0}}
    xquad, mlqa_results = full["tasks"]["xquad"], full["tasks"]["mlqa"]
    # one shared English-dev selection: the same points and the same chosen point
    assert xquad["selection"]["points"] == mlqa_results["selection"]["points"]
    assert xquad["selection"]["default"] == mlqa_results["selection"]["default"]
    assert xquad["selection"]["shared_with"] == ["mlqa"] and mlqa_results["selection"]["shared_with"] == ["xquad"]
    # ... tokenised once, predicted once per evaluation point, then scored by each task's rules
    dev = ("rajpurkar/squad", "plain_text", "validation")
    assert sweep["qa_encodings"].count(dev) == 1
    assert sweep["qa_passes"].count(dev) == len(xquad["selection"]["points"])
    # each task on its own languages, with its own test data, oracle and scorer
    _check_metrics(xquad, ["en", "de"], {"exact_match", "f1"})
    _check_metrics(mlqa_results, ["en", "de", "es"], {"exact_match", "f1"})
    assert xquad["oracle"] == {} and set(mlqa_results["oracle"]) == {"en", "de", "es"}
    for lang in ("en", "de"):
        rows = _jsonl(XTREME / f"XQuAD.{lang}" / "validation.jsonl")
        answers = json.loads(_prediction(sweep, "xquad", f"test-{lang}.json"))
        assert set(answers) == {r["id"] for r in rows}
        gold = {r["id"]: r["answers"]["text"] for r in rows}
        assert xquad["metrics"][lang] == pytest.approx(metrics.squad_scores(answers, gold))
    for lang in ("en", "de", "es"):
        rows = _jsonl(XTREME / f"MLQA.{lang}.{lang}" / "test.jsonl")
        answers = json.loads(_prediction(sweep, "mlqa", f"test-{lang}.json"))
        gold = {r["id"]: r["answers"]["text"] for r in rows}
        assert mlqa_results["metrics"][lang] == pytest.approx(mlqa.scores(answers, gold, lang))


def test_tydiqa_job_answers_each_language_s_questions_only(sweep):
    results, _ = _results(sweep, "tydiqa")
    _check_metrics(results, ["en", "id", "sw", "te"], {"exact_match", "f1"})
    prefixes = {"en": "english-", "id": "indonesian-", "sw": "swahili-", "te": "telugu-"}
    for lang, prefix in prefixes.items():
        answers = json.loads(_prediction(sweep, "tydiqa", f"test-{lang}.json"))
        assert set(answers) == _qa_ids(XTREME / "tydiqa" / "validation.jsonl", prefix) and len(answers) == 16


def test_bucc_job_mines_pairs_with_a_threshold_chosen_on_the_sample_gold(sweep):
    results, _ = _results(sweep, "bucc2018")
    _check_metrics(results, ["de", "fr"], {"precision", "recall", "f1"})
    assert set(results["thresholds"]) == {"de", "fr"}
    assert all(isinstance(t, float) for t in results["thresholds"].values())
    for lang in ("de", "fr"):
        gold = _jsonl(XTREME / f"bucc18.{lang}" / "test.jsonl")
        lines = _prediction(sweep, "bucc2018", f"test-{lang}.tsv").splitlines()
        pairs = [tuple(line.split("\t")) for line in lines]
        assert pairs and all(len(p) == 2 for p in pairs)
        assert {s for s, _ in pairs} <= {r["source_lang"] for r in gold}
        assert {t for _, t in pairs} <= {r["target_lang"] for r in gold}
        assert len({s for s, _ in pairs}) == len(pairs) == len({t for _, t in pairs})  # one to one
        # recall is the share of gold pairs extracted
        correct = len(set(pairs) & {(r["source_lang"], r["target_lang"]) for r in gold})
        assert results["metrics"][lang]["recall"] == pytest.approx(100.0 * correct / len(gold))
    bucc = [load for load in sweep["loads"] if load[0] == "bucc2018"]
    assert {(config, split) for _, config, split, _ in bucc} == {
        (f"bucc18.{lang}", split) for lang in ("de", "fr") for split in ("validation", "test")}


def test_the_bucc_retrieval_job_id_covers_its_sample_gold_and_tatoeba_s_does_not():
    plan = build_plan(parse(CONFIG.replace("bucc2018: {languages: [de, fr], layer: 2}",
                                           "bucc2018: {languages: [de, fr], layer: 2}\n  tatoeba: {languages: [de]}"),
                            "targets.yaml"))
    data = {job.params["task"]: job.params["data"] for job in plan.jobs if job.kind == "retrieval"}
    assert set(data["bucc2018"]) == {"test", "dev"} and set(data["bucc2018"]["dev"]) == {"de", "fr"}
    assert data["bucc2018"]["dev"]["de"] != data["bucc2018"]["test"]["de"]
    assert set(data["tatoeba"]) == {"test"}


# ---- declarations and data reading, without a model


def test_tydiqa_trains_on_english_questions_and_tests_each_language_by_id_prefix():
    task, data = tasks.get("tydiqa"), DataSource("bundled")
    train = data.load(task, task.train)
    assert len(train) == 96 and all(i.startswith("english-") for i in train["id"])
    swahili = data.load(task, task.test, "sw")
    assert len(swahili) == 16 and all(i.startswith("swahili-") for i in swahili["id"])
    assert task.dev is None and task.lang_dev is None  # its validation split is the test set
    hub = DataSource("hub")
    assert hub.fingerprint(task, task.test, "sw") == "hub:google/xtreme:tydiqa:validation@main[id^=swahili-]"
    assert hub.fingerprint(task, task.train) == "hub:google/xtreme:tydiqa:train@main[id^=english-]"
    assert data.fingerprint(task, task.test, "sw") != data.fingerprint(task, task.test, "te")


def test_udpos_configs_are_named_by_the_hub_s_language_names():
    task = tasks.get("udpos")
    hub_names = ["Afrikaans", "Arabic", "Basque", "Bulgarian", "Dutch", "English", "Estonian", "Finnish",
                 "French", "German", "Greek", "Hebrew", "Hindi", "Hungarian", "Indonesian", "Italian", "Japanese",
                 "Kazakh", "Korean", "Chinese", "Marathi", "Persian", "Portuguese", "Russian", "Spanish", "Tagalog",
                 "Tamil", "Telugu", "Thai", "Turkish", "Urdu", "Vietnamese", "Yoruba"]  # google/xtreme's udpos.*
    configs = {lang: task.test.config_for(task.code(lang), lang) for lang in task.languages}
    assert sorted(configs.values()) == sorted(f"udpos.{name}" for name in hub_names)
    assert (configs["de"], configs["el"], configs["eu"], configs["fa"], configs["zh"]) == (
        "udpos.German", "udpos.Greek", "udpos.Basque", "udpos.Persian", "udpos.Chinese")
    assert task.train.config == task.dev.config == "udpos.English"


def test_a_missing_dev_split_is_one_clear_error():
    task = tasks.get("udpos")
    with pytest.raises(XferError) as err:
        DataSource("bundled").load(task, task.lang_dev, "yo")
    assert "udpos.Yoruba" in str(err.value) and "validation" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("task, lang", [("pawsx", "sw"), ("udpos", "sw"), ("mlqa", "fr"), ("tydiqa", "de"),
                                        ("bucc2018", "es")])
def test_an_unknown_language_of_a_new_task_fails_with_one_line(task, lang):
    text = CONFIG.split("targets:")[0] + f"targets:\n  {task}: {{languages: [{lang}]}}\n"
    with pytest.raises(XferError) as err:
        parse(text, "bad.yaml")
    message = str(err.value)
    assert message.startswith(f"bad.yaml: targets: {task}.languages[0]: {lang!r} is not a language of {task}")
    assert "\n" not in message


def test_mlqa_is_scored_with_mlqa_s_normalisation_and_xquad_with_squad_s():
    predictions, gold = {"q": "Weltbank"}, {"q": ["die Weltbank"]}  # German article: only MLQA drops it
    assert span_qa.scores(tasks.get("mlqa"), predictions, gold, "de") == {"exact_match": 100.0, "f1": 100.0}
    squad = span_qa.scores(tasks.get("xquad"), predictions, gold, "de")
    assert squad["exact_match"] == 0.0 and squad["f1"] == pytest.approx(100 * 2 / 3)  # P 1, R 1/2
    assert tasks.get("tydiqa").qa_scoring == "squad"
