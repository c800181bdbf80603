"""`xfer xtreme-score`: a prediction folder in XTREME's submission layout scored as evaluate.py does."""

import json
import shutil

import pytest

from xfer import languages as L
from xfer.cli import main
from xfer.data import BUNDLED
from xfer.tasks import UPOS_TAGS

LANGS = {"xnli": L.XNLI, "pawsx": L.PAWSX, "udpos": L.UDPOS, "panx": L.PANX, "xquad": L.XQUAD, "mlqa": L.MLQA,
         "tydiqa": L.TYDIQA, "bucc2018": L.BUCC2018, "tatoeba": L.TATOEBA}


def write_lines(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def write_tags(path, sentences):
    write_lines(path, [line for sentence in sentences for line in [*sentence, ""]])


def squad_json(golds: dict) -> dict:
    qas = [{"id": qid, "question": "?", "answers": [{"text": t, "answer_start": 0} for t in texts]}
           for qid, texts in golds.items()]
    return {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": "c", "qas": qas}]}]}


def write_json(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")


def build(root):
    """All nine tasks, every language; one language per task differs from the rest (values by hand below)."""
    pred, gold = root / "predictions", root / "labels"
    for lang in LANGS["xnli"]:  # en 4/4, others 3/4
        write_lines(gold / "xnli" / f"test-{lang}.tsv", ["entailment", "neutral", "contradiction", "neutral"])
        write_lines(pred / "xnli" / f"test-{lang}.tsv",
                    ["entailment", "neutral", "contradiction", "neutral" if lang == "en" else "entailment"])
    for lang in LANGS["pawsx"]:  # de 1/2, others 2/2
        write_lines(gold / "pawsx" / f"test-{lang}.tsv", ["0", "1"])
        write_lines(pred / "pawsx" / f"test-{lang}.tsv", ["1" if lang == "de" else "0", "1"])
    for lang in LANGS["udpos"]:
        write_tags(gold / "udpos" / f"test-{lang}.tsv", [["NOUN", "VERB"], ["DET", "NOUN"]])
        # seqeval >= 1.0 reads NOUN NOUN as one chunk of type OUN: af predicts 3 chunks, 2 of them right
        write_tags(pred / "udpos" / f"test-{lang}.tsv",
                   [["NOUN", "NOUN" if lang == "af" else "VERB"], ["DET", "NOUN"]])
    for lang in LANGS["panx"]:  # ar: PER cut short -> 1 of 2 entities right, 1 of 2 predicted right
        write_tags(gold / "panx" / f"test-{lang}.tsv", [["B-PER", "I-PER", "O"], ["B-LOC"]])
        write_tags(pred / "panx" / f"test-{lang}.tsv",
                   [["B-PER", "O" if lang == "ar" else "I-PER", "O"], ["B-LOC"]])
    for lang in LANGS["xquad"]:  # en: q1 F1 2/3, q2 unanswered
        write_json(gold / "xquad" / f"test-{lang}.json",
                   squad_json({"q1": ["Eiffel Tower"], "q2": ["Paris", "the city of Paris"]}))
        write_json(pred / "xquad" / f"test-{lang}.json",
                   {"q1": "Eiffel"} if lang == "en" else {"q1": "the Eiffel Tower", "q2": "Paris"})
    for lang in LANGS["mlqa"]:  # language-specific articles: "der" only in de, "ال" only in ar
        write_json(gold / "mlqa" / f"test-{lang}.json", squad_json({"q1": ["der Hund"], "q2": ["الكتاب"]}))
        write_json(pred / "mlqa" / f"test-{lang}.json", {"q1": "Hund", "q2": "كتاب", "extra": "ignored"})
    for lang in LANGS["tydiqa"]:  # fi wrong, others right up to punctuation
        write_json(gold / "tydiqa" / f"test-{lang}.json", squad_json({"q1": ["Helsinki"]}))
        write_json(pred / "tydiqa" / f"test-{lang}.json", {"q1": "Helsingfors" if lang == "fi" else "Helsinki."})
    for lang in LANGS["bucc2018"]:  # de: 1 of 2 predicted pairs right, 1 of 2 gold found
        write_lines(gold / "bucc2018" / f"test-{lang}.tsv", [f"{lang}-1\ten-1", f"{lang}-2\ten-2"])
        write_lines(pred / "bucc2018" / f"test-{lang}.tsv",
                    [f"{lang}-1\ten-1", f"{lang}-3\ten-3" if lang == "de" else f"{lang}-2\ten-2"])
    for lang in LANGS["tatoeba"]:  # ar: two of four swapped
        write_lines(gold / "tatoeba" / f"test-{lang}.tsv", ["0", "1", "2", "3"])
        write_lines(pred / "tatoeba" / f"test-{lang}.tsv", ["0", "1", "3", "2"] if lang == "ar" else ["0", "1", "2", "3"])
    return pred, gold


def run_json(capsys, pred, gold):
    assert main(["xtreme-score", "--predictions", str(pred), "--labels", str(gold), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


# hand-computed task scores for build()
XNLI = (14 * 75 + 100) / 15
PAWSX = (6 * 100 + 50) / 7
UDPOS_AF = 100 * 4 / 7  # P 2/3, R 2/4 -> F1 4/7
UDPOS = (32 * 100 + UDPOS_AF) / 33
PANX = (39 * 100 + 50) / 40
XQUAD_EM, XQUAD_F1 = 1000 / 11, (1000 + 100 / 3) / 11
MLQA_EM, MLQA_F1 = (50 + 50) / 7, (50 + 250 / 3 + 5 * 100 / 3) / 7
TYDIQA = 800 / 9
BUCC = (50 + 3 * 100) / 4
TATOEBA = (35 * 100 + 50) / 36
TASKS = {"xnli": XNLI, "pawsx": PAWSX, "udpos": UDPOS, "panx": PANX, "xquad": (XQUAD_EM + XQUAD_F1) / 2,
         "mlqa": (MLQA_EM + MLQA_F1) / 2, "tydiqa": TYDIQA, "bucc2018": BUCC, "tatoeba": TATOEBA}


def test_all_nine_tasks_scored_as_evaluate_py(tmp_path, capsys):
    out = run_json(capsys, *build(tmp_path))
    tasks = out["tasks"]
    assert list(tasks) == list(LANGS)
    for task, expected in TASKS.items():
        assert tasks[task]["avg_metric"] == pytest.approx(expected), task

    xnli = tasks["xnli"]
    assert set(xnli) == {"accuracy", "avg_accuracy", "avg_metric"}
    assert list(xnli["accuracy"]) == list(L.XNLI)
    assert xnli["accuracy"]["en"] == 100 and xnli["accuracy"]["sw"] == 75
    assert tasks["pawsx"]["accuracy"]["de"] == 50

    pos = tasks["udpos"]
    assert set(pos) == {"f1", "precision", "recall", "token_accuracy", "avg_f1", "avg_precision", "avg_recall",
                        "avg_token_accuracy", "avg_metric"}
    assert pos["f1"]["af"] == pytest.approx(UDPOS_AF)
    assert pos["precision"]["af"] == pytest.approx(200 / 3) and pos["recall"]["af"] == pytest.approx(50)
    assert pos["token_accuracy"]["af"] == 75 and pos["avg_token_accuracy"] == pytest.approx((32 * 100 + 75) / 33)
    assert tasks["panx"]["f1"]["ar"] == pytest.approx(50) and tasks["panx"]["f1"]["en"] == 100

    xquad = tasks["xquad"]
    assert xquad["exact_match"]["en"] == 0 and xquad["f1"]["en"] == pytest.approx(100 / 3)
    assert xquad["avg_exact_match"] == pytest.approx(XQUAD_EM) and xquad["avg_f1"] == pytest.approx(XQUAD_F1)

    mlqa = tasks["mlqa"]
    assert mlqa["exact_match"] == pytest.approx({"en": 0, "es": 0, "de": 50, "ar": 50, "hi": 0, "vi": 0, "zh": 0})
    assert mlqa["f1"]["de"] == pytest.approx(50) and mlqa["f1"]["ar"] == pytest.approx(250 / 3)
    assert mlqa["f1"]["zh"] == pytest.approx(100 / 3)

    assert tasks["tydiqa"]["exact_match"]["fi"] == 0 and tasks["tydiqa"]["f1"]["en"] == 100
    bucc = tasks["bucc2018"]
    assert bucc["f1"] == pytest.approx({"de": 50, "fr": 100, "ru": 100, "zh": 100})
    assert bucc["precision"]["de"] == 50 and bucc["recall"]["de"] == 50
    assert tasks["tatoeba"]["accuracy"]["ar"] == 50

    overall = out["overall"]
    assert overall["avg_over_tasks"] == pytest.approx(sum(TASKS.values()) / 9)
    categories = {"classification": (XNLI + PAWSX) / 2, "structured_prediction": (UDPOS + PANX) / 2,
                  "question_answering": (TASKS["xquad"] + TASKS["mlqa"] + TYDIQA) / 3,
                  "retrieval": (BUCC + TATOEBA) / 2}
    assert overall["categories"] == pytest.approx(categories)
    assert overall["avg_over_categories"] == pytest.approx(sum(categories.values()) / 4)
    assert overall["missing"] == [] and overall["partial"] == {}
    assert overall["languages"] == "all" and not any("missing_languages" in t for t in tasks.values())


def test_seven_tasks_give_partial_headlines_and_readable_table(tmp_path, capsys):
    pred, gold = build(tmp_path)
    shutil.rmtree(pred / "bucc2018")
    shutil.rmtree(pred / "tatoeba")
    out = run_json(capsys, pred, gold)
    assert list(out["tasks"]) == ["xnli", "pawsx", "udpos", "panx", "xquad", "mlqa", "tydiqa"]
    overall = out["overall"]
    assert overall["avg_over_tasks"] is None and overall["avg_over_categories"] is None
    assert overall["missing"] == ["bucc2018", "tatoeba"]
    seven = [v for t, v in TASKS.items() if t not in ("bucc2018", "tatoeba")]
    assert overall["partial"]["avg_over_tasks"]["value"] == pytest.approx(sum(seven) / 7)
    assert "retrieval" not in overall["categories"]

    assert main(["xtreme-score", "--predictions", str(pred), "--labels", str(gold)]) == 0
    table = capsys.readouterr().out
    assert f"xnli: {XNLI:.2f}" in table
    assert f"  accuracy {XNLI:.2f} | ar 75.00 bg 75.00" in table
    assert f"avg_over_tasks: partial (missing: bucc2018, tatoeba) {sum(seven) / 7:.2f} over xnli" in table


def error_line(capsys, pred, gold):
    assert main(["xtreme-score", "--predictions", str(pred), "--labels", str(gold), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


def test_missing_label_file(tmp_path, capsys):
    pred, gold = build(tmp_path)
    (gold / "xnli" / "test-sw.tsv").unlink()
    line = error_line(capsys, pred, gold)
    assert f"{gold / 'xnli' / 'test-sw.tsv'}: missing" in line


def test_line_count_mismatch(tmp_path, capsys):
    pred, gold = build(tmp_path)
    write_lines(pred / "pawsx" / "test-ko.tsv", ["0", "1", "1"])
    line = error_line(capsys, pred, gold)
    assert f"{pred / 'pawsx' / 'test-ko.tsv'}: 3 lines but {gold / 'pawsx' / 'test-ko.tsv'} has 2" in line


def test_sentence_count_and_length_mismatch(tmp_path, capsys):
    pred, gold = build(tmp_path)
    write_tags(pred / "panx" / "test-de.tsv", [["B-PER", "I-PER", "O", "B-LOC"]])
    assert "1 sentences but" in error_line(capsys, pred, gold)
    write_tags(pred / "panx" / "test-de.tsv", [["B-PER", "I-PER"], ["B-LOC"]])
    line = error_line(capsys, pred, gold)
    assert str(pred / "panx" / "test-de.tsv") in line and "sentence 0 has 2 predicted tags for 3 words" in line


def test_malformed_json(tmp_path, capsys):
    pred, gold = build(tmp_path)
    (pred / "xquad" / "test-th.json").write_text('{"q1": "Paris",', encoding="utf-8")
    line = error_line(capsys, pred, gold)
    assert f"{pred / 'xquad' / 'test-th.json'}: malformed JSON" in line


@pytest.mark.parametrize("breakage, expected", [
    (lambda p, g: (p / "squad").mkdir(), "unknown XTREME task folder"),
    (lambda p, g: (p / "tatoeba" / "test-sw.tsv").unlink(), "no predictions for test-sw.tsv"),
    (lambda p, g: write_lines(p / "xnli" / "test-xx.tsv", ["neutral"]), "unexpected file"),
    (lambda p, g: write_lines(p / "tatoeba" / "test-de.tsv", ["[0]", "1", "2", "3"]),
     "line 1: expected a target sentence index, got '[0]'"),
    (lambda p, g: write_lines(p / "bucc2018" / "test-fr.tsv", ["fr-1 en-1"]), "line 1: expected src_id<TAB>tgt_id"),
    (lambda p, g: write_json(p / "tydiqa" / "test-ko.json", ["Helsinki"]), "expected a JSON object"),
    (lambda p, g: write_json(g / "tydiqa" / "test-ko.json", {"version": "1.1"}), "\"data\" list of articles"),
    (lambda p, g: write_json(g / "mlqa" / "test-vi.json", {"data": [{"paragraphs": [{"qas": [{"id": "q"}]}]}]}),
     "not SQuAD-format JSON (key 'answers')"),
])
def test_bad_input_is_one_line(tmp_path, capsys, breakage, expected):
    pred, gold = build(tmp_path)
    breakage(pred, gold)
    assert expected in error_line(capsys, pred, gold)


def test_empty_prediction_folder(tmp_path, capsys):
    (tmp_path / "p").mkdir()
    (tmp_path / "g").mkdir()
    assert "no task folders" in error_line(capsys, tmp_path / "p", tmp_path / "g")
    assert "labels folder not found" in error_line(capsys, tmp_path / "p", tmp_path / "nowhere")


# ---- the published checks, through files ----
XLMR_XNLI = {"en": 89.1, "fr": 84.1, "es": 85.1, "de": 83.9, "el": 82.9, "bg": 84.0, "ru": 81.2, "tr": 79.6,
             "ar": 79.8, "vi": 80.8, "th": 78.1, "zh": 80.2, "hi": 76.9, "sw": 73.9, "ur": 73.8}


def test_published_xlmr_xnli_per_language_gives_80_9(tmp_path, capsys):
    """XLM-R Large XNLI (XLM-R paper): 1000 examples per language, round(10 * accuracy) of them right."""
    for lang, acc in XLMR_XNLI.items():
        right = round(acc * 10)
        write_lines(tmp_path / "l" / "xnli" / f"test-{lang}.tsv", ["neutral"] * 1000)
        write_lines(tmp_path / "p" / "xnli" / f"test-{lang}.tsv", ["neutral"] * right + ["entailment"] * (1000 - right))
    out = run_json(capsys, tmp_path / "p", tmp_path / "l")
    assert out["tasks"]["xnli"]["accuracy"] == pytest.approx(XLMR_XNLI)
    assert round(out["tasks"]["xnli"]["avg_metric"], 1) == 80.9


def qa_files(pred, gold, n_exact, n_half, n=500):
    """n questions: n_exact answered exactly, n_half with token F1 0.5 ("xa yb" for "xa zc"), the rest wrong."""
    golds, answers = {}, {}
    for i in range(n):
        golds[f"q{i}"] = [f"xa{i} zc{i}"]
        answers[f"q{i}"] = f"xa{i} zc{i}" if i < n_exact else f"xa{i} yb{i}" if i < n_exact + n_half else "wrong"
    write_json(gold, squad_json(golds))
    write_json(pred, answers)


def test_published_xlmr_seven_tasks_give_70_1_partial(tmp_path, capsys):
    """XLM-R on XTREME (RemBERT paper, Table 16), the same value in every language of each task."""
    p, g = tmp_path / "p", tmp_path / "l"
    for lang in L.XNLI:  # 99/125 = 79.2
        write_lines(g / "xnli" / f"test-{lang}.tsv", ["1"] * 125)
        write_lines(p / "xnli" / f"test-{lang}.tsv", ["1"] * 99 + ["0"] * 26)
    for lang in L.PAWSX:  # 108/125 = 86.4
        write_lines(g / "pawsx" / f"test-{lang}.tsv", ["1"] * 125)
        write_lines(p / "pawsx" / f"test-{lang}.tsv", ["1"] * 108 + ["0"] * 17)
    for task, right, langs in (("udpos", 369, L.UDPOS), ("panx", 327, L.PANX)):  # 500 one-token chunks each side
        for lang in langs:
            write_tags(g / task / f"test-{lang}.tsv", [["B-X"] * 500])
            write_tags(p / task / f"test-{lang}.tsv", [["B-X"] * right + ["B-Y"] * (500 - right)])
    for task, exact, half, langs in (("xquad", 304, 158, L.XQUAD), ("mlqa", 266, 184, L.MLQA),
                                     ("tydiqa", 225, 201, L.TYDIQA)):
        for lang in langs:
            qa_files(p / task / f"test-{lang}.json", g / task / f"test-{lang}.json", exact, half)
    out = run_json(capsys, p, g)
    tasks = out["tasks"]
    assert tasks["xnli"]["avg_metric"] == pytest.approx(79.2) and tasks["pawsx"]["avg_metric"] == pytest.approx(86.4)
    assert tasks["udpos"]["avg_f1"] == pytest.approx(73.8) and tasks["panx"]["avg_f1"] == pytest.approx(65.4)
    for task, em, f1 in (("xquad", 60.8, 76.6), ("mlqa", 53.2, 71.6), ("tydiqa", 45.0, 65.1)):
        assert tasks[task]["avg_exact_match"] == pytest.approx(em) and tasks[task]["avg_f1"] == pytest.approx(f1)
    partial = out["overall"]["partial"]["avg_over_tasks"]
    assert round(partial["value"], 1) == 70.1
    assert out["overall"]["missing"] == ["bucc2018", "tatoeba"]


# ---- --languages labels: score the languages the label folder has (a sweep's own), marked as a subset ----

def keep_only(pred, gold, task, keep):
    for folder in (pred / task, gold / task):
        for path in folder.iterdir():
            if path.name.partition(".")[0][len("test-"):] not in keep:
                path.unlink()


def test_language_subset_is_explicit_and_marked(tmp_path, capsys):
    pred, gold = build(tmp_path)
    keep_only(pred, gold, "xnli", {"en", "sw"})  # en 100, sw 75
    keep_only(pred, gold, "pawsx", {"en", "de"})  # en 100, de 50
    line = error_line(capsys, pred, gold)  # the default stays XTREME's rule: all languages
    assert f"{pred / 'xnli'}: no predictions for test-ar.tsv" in line and "--languages labels" in line

    assert main(["xtreme-score", "--predictions", str(pred), "--labels", str(gold), "--languages", "labels",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    xnli, pawsx = out["tasks"]["xnli"], out["tasks"]["pawsx"]
    assert xnli["accuracy"] == {"en": 100, "sw": 75} and xnli["avg_metric"] == pytest.approx(87.5)
    assert xnli["missing_languages"] == [lang for lang in L.XNLI if lang not in ("en", "sw")]
    assert pawsx["accuracy"] == {"de": 50, "en": 100} and pawsx["avg_metric"] == pytest.approx(75)
    assert pawsx["missing_languages"] == ["es", "fr", "ja", "ko", "zh"]
    assert "missing_languages" not in out["tasks"]["udpos"]  # every language labelled: as by default
    assert out["tasks"]["udpos"]["avg_metric"] == pytest.approx(UDPOS)
    overall = out["overall"]
    assert overall["languages"] == "subset"
    nine = {**TASKS, "xnli": 87.5, "pawsx": 75}
    assert overall["avg_over_tasks"] == pytest.approx(sum(nine.values()) / 9)
    assert overall["categories"]["classification"] == pytest.approx((87.5 + 75) / 2)

    assert main(["xtreme-score", "--predictions", str(pred), "--labels", str(gold), "--languages", "labels"]) == 0
    table = capsys.readouterr().out
    assert "xnli: 87.50 (language subset: 2 of its 15 languages)" in table
    assert "averages over a language subset (--languages labels): not comparable with XTREME's" in table
    assert f"udpos: {UDPOS:.2f}\n" in table


def test_language_subset_of_a_complete_folder_is_all(tmp_path, capsys):
    pred, gold = build(tmp_path)
    assert main(["xtreme-score", "--predictions", str(pred), "--labels", str(gold), "--languages", "labels",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == run_json(capsys, pred, gold)


def test_language_subset_needs_the_same_languages_on_both_sides(tmp_path, capsys):
    pred, gold = build(tmp_path)
    keep_only(pred, gold, "xnli", {"en", "sw"})
    (pred / "xnli" / "test-sw.tsv").unlink()  # labelled, not predicted
    args = ["xtreme-score", "--predictions", str(pred), "--labels", str(gold), "--languages", "labels"]
    assert main(args) == 2
    assert f"{pred / 'xnli'}: no predictions for test-sw.tsv (--languages labels" in capsys.readouterr().err
    write_lines(pred / "xnli" / "test-sw.tsv", ["neutral"] * 4)
    write_lines(pred / "xnli" / "test-de.tsv", ["neutral"] * 4)  # predicted, not labelled
    assert main(args) == 2
    assert f"{gold / 'xnli' / 'test-de.tsv'}: missing" in capsys.readouterr().err


# ---- xfer xtreme-labels: a sweep config's gold test labels, in the layout above ----
LABELS_CONFIG = """\
name: labels
model:
  build: {vocab_size: 600, hidden_size: 32, num_layers: 2, num_heads: 2, intermediate_size: 64, seed: 0}
data: bundled
intermediate: {tasks: [mnli], budgets: [0]}
targets:
  xnli: {languages: [de]}
  udpos: {languages: [de]}
  tydiqa: {languages: [sw]}
  bucc2018: {languages: [de]}
  tatoeba: {languages: [de]}
"""


def jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_xtreme_labels_writes_the_fixture_gold_and_scores_100_against_it(tmp_path, capsys):
    config = tmp_path / "labels.yaml"
    config.write_text(LABELS_CONFIG)
    out = tmp_path / "labels"
    assert main(["xtreme-labels", str(config), "--out", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[:5] == ["xnli: de", "udpos: de", "tydiqa: sw", "bucc2018: de",
                                                        "tatoeba: de"]
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        "bucc2018/test-de.tsv", "tatoeba/test-de.tsv", "tydiqa/test-sw.json", "udpos/test-de.tsv",
        "xnli/test-de.tsv"]
    hub = BUNDLED / "google" / "xtreme"
    xnli = [r["gold_label"] for r in jsonl(hub / "XNLI" / "test.jsonl") if r["language"] == "de"]
    assert (out / "xnli" / "test-de.tsv").read_text().splitlines() == xnli
    pos = [[UPOS_TAGS[i] for i in r["pos_tags"]] for r in jsonl(hub / "udpos.German" / "test.jsonl")]
    assert (out / "udpos" / "test-de.tsv").read_text() == "".join("".join(f"{t}\n" for t in s) + "\n" for s in pos)
    n = len(jsonl(hub / "tatoeba.deu" / "validation.jsonl"))
    assert (out / "tatoeba" / "test-de.tsv").read_text().splitlines() == [str(i) for i in range(n)]
    pairs = [f"{r['source_lang']}\t{r['target_lang']}" for r in jsonl(hub / "bucc18.de" / "test.jsonl")]
    assert (out / "bucc2018" / "test-de.tsv").read_text().splitlines() == pairs
    swahili = [r for r in jsonl(hub / "tydiqa" / "validation.jsonl") if r["id"].startswith("swahili-")]
    squad = json.loads((out / "tydiqa" / "test-sw.json").read_text(encoding="utf-8"))
    qas = {qa["id"]: qa for article in squad["data"] for p in article["paragraphs"] for qa in p["qas"]}
    assert list(qas) == [r["id"] for r in swahili]
    assert all(qas[r["id"]]["answers"][0]["text"] == r["answers"]["text"][0] for r in swahili)

    # perfect predictions score 100 on every task, over the config's languages only
    pred = tmp_path / "pred"
    for task in ("xnli", "udpos", "bucc2018", "tatoeba"):
        (pred / task).mkdir(parents=True)
        (pred / task / "test-de.tsv").write_bytes((out / task / "test-de.tsv").read_bytes())
    write_json(pred / "tydiqa" / "test-sw.json", {r["id"]: r["answers"]["text"][0] for r in swahili})
    assert main(["xtreme-score", "--predictions", str(pred), "--labels", str(out), "--languages", "labels",
                 "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert {t: s["avg_metric"] for t, s in scores["tasks"].items()} == {
        "xnli": 100, "udpos": 100, "tydiqa": 100, "bucc2018": 100, "tatoeba": 100}
    assert scores["overall"]["languages"] == "subset"

    assert main(["xtreme-labels", str(config), "--out", str(out)]) == 2  # never into a folder with files
    assert capsys.readouterr().err.strip() == f"xfer: error: {out}: --out is not empty (give a new or empty folder)"
