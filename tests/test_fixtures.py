"""The bundled fixtures: current with their generator, in the Hub's exact schemas, balanced and consistent."""

from __future__ import annotations

import json
import re
import shutil
import unicodedata
from collections import Counter
from pathlib import Path

import pytest

from xfer.errors import XferError
from xfer.fixtures import build

HUB = build.HUB_DIR
XTREME = "google/xtreme"

# Every file the data loader may ask for: (dataset id, config, split) -> (column family, rows)
EXPECTED = {
    ("nyu-mll/glue", "mnli", "train"): ("mnli", 256),
    ("nyu-mll/glue", "mnli", "validation_matched"): ("mnli", 48),
    ("rajpurkar/squad", "plain_text", "train"): ("squad", 192),
    ("rajpurkar/squad", "plain_text", "validation"): ("squad", 40),
    ("Rowan/hellaswag", "default", "train"): ("hellaswag", 160),
    ("Rowan/hellaswag", "default", "validation"): ("hellaswag", 40),
    (XTREME, "XNLI", "validation"): ("xnli", 160),
    (XTREME, "XNLI", "test"): ("xnli", 160),
    **{(XTREME, f"PAN-X.{lang}", split): ("panx", n)
       for lang in ("en", "de", "es", "sw", "yo", "jv")
       for split, n in (("train", 256 if lang == "en" else 20), ("validation", 40), ("test", 40))},
    **{(XTREME, f"XQuAD.{lang}", "validation"): ("xquad", 40) for lang in ("en", "de", "es")},
    **{(XTREME, f"tatoeba.{code}", "validation"): ("tatoeba", 40) for code in ("deu", "spa", "swh", "jav")},
    **{(XTREME, f"PAWS-X.{lang}", split): ("pawsx", n)
       for lang in ("en", "de", "es")
       for split, n in (("train", 160 if lang == "en" else 16), ("validation", 40), ("test", 40))},
    **{(XTREME, f"udpos.{name}", split): ("udpos", n)
       for name, sizes in (("English", {"train": 160, "validation": 40, "test": 40}),
                           ("German", {"train": 16, "validation": 40, "test": 40}),
                           ("Spanish", {"train": 16, "validation": 40, "test": 40}),
                           ("Kazakh", {"train": 8, "test": 40}), ("Yoruba", {"test": 40}))
       for split, n in sizes.items()},
    **{(XTREME, f"MLQA.{lang}.{lang}", split): ("qa", n)
       for lang in ("en", "de", "es") for split, n in (("validation", 16), ("test", 32))},
    (XTREME, "tydiqa", "train"): ("qa", 96 + 3 * 6),
    (XTREME, "tydiqa", "validation"): ("qa", 4 * 16),
    **{(XTREME, f"bucc18.{lang}", split): ("bucc", n)
       for lang in ("de", "fr") for split, n in (("validation", 24), ("test", 48))},
}

# The Hub's columns with the types `datasets` infers from JSON for them.
SCHEMAS = {
    "mnli": {"premise": "str", "hypothesis": "str", "label": "int", "idx": "int"},
    "squad": {"id": "str", "title": "str", "context": "str", "question": "str",
              "answers": {"text": "list[str]", "answer_start": "list[int]"}},
    "hellaswag": {"ind": "int", "activity_label": "str", "ctx_a": "str", "ctx_b": "str", "ctx": "str",
                  "endings": "list[str]", "source_id": "str", "split": "str", "split_type": "str", "label": "str"},
    "xnli": {"language": "str", "sentence1": "str", "sentence2": "str", "gold_label": "str"},
    "panx": {"tokens": "list[str]", "ner_tags": "list[int]", "langs": "list[str]"},
    "xquad": {"id": "str", "context": "str", "question": "str",
              "answers": {"answer_start": "list[int]", "text": "list[str]"}},
    "tatoeba": {"source_sentence": "str", "target_sentence": "str", "source_lang": "str", "target_lang": "str"},
    "pawsx": {"sentence1": "str", "sentence2": "str", "label": "str"},
    "udpos": {"tokens": "list[str]", "pos_tags": "list[int]"},
    "qa": {"id": "str", "title": "str", "context": "str", "question": "str",  # MLQA and tydiqa
           "answers": {"answer_start": "list[int]", "text": "list[str]"}},
    "bucc": {"source_sentence": "str", "target_sentence": "str", "source_lang": "str", "target_lang": "str"},
}

# The intermediate tasks' datasets (ANLI+ reads ANLI, MNLI and SNLI).
EXPECTED.update({
    **{("facebook/anli", "plain_text", split): ("anli", n)
       for split, n in (("train_r1", 48), ("train_r2", 48), ("train_r3", 48), ("dev_r1", 16), ("dev_r2", 16),
                        ("dev_r3", 16))},
    ("stanfordnlp/snli", "plain_text", "train"): ("snli", 64),
    ("nyu-mll/glue", "qqp", "train"): ("qqp", 160),
    ("nyu-mll/glue", "qqp", "validation"): ("qqp", 40),
    ("rajpurkar/squad_v2", "squad_v2", "train"): ("squad", 128),
    ("rajpurkar/squad_v2", "squad_v2", "validation"): ("squad", 40),
    ("allenai/cosmos_qa", "default", "train"): ("cosmos_qa", 96),
    ("allenai/cosmos_qa", "default", "validation"): ("cosmos_qa", 40),
    ("tau/commonsense_qa", "default", "train"): ("commonsense_qa", 128),
    ("tau/commonsense_qa", "default", "validation"): ("commonsense_qa", 40),
})
SCHEMAS.update({
    "anli": {"uid": "str", "premise": "str", "hypothesis": "str", "label": "int", "reason": "str"},
    "snli": {"premise": "str", "hypothesis": "str", "label": "int"},
    "qqp": {"question1": "str", "question2": "str", "label": "int", "idx": "int"},
    "cosmos_qa": {"id": "str", "context": "str", "question": "str", "answer0": "str", "answer1": "str",
                  "answer2": "str", "answer3": "str", "label": "int"},
    "commonsense_qa": {"id": "str", "question": "str", "question_concept": "str",
                       "choices": {"label": "list[str]", "text": "list[str]"}, "answerKey": "str"},
})


def _path(dataset: str, config: str, split: str) -> Path:
    return HUB / dataset / config / f"{split}.jsonl"


def _rows(dataset: str, config: str, split: str) -> list[dict]:
    return [json.loads(line) for line in _path(dataset, config, split).read_text(encoding="utf-8").splitlines()]


def _kind(feature) -> object:
    """A `datasets` feature as the short type names of SCHEMAS."""
    import datasets

    if isinstance(feature, dict):
        return {name: _kind(sub) for name, sub in feature.items()}
    if isinstance(feature, (datasets.List, datasets.Sequence)):
        return f"list[{_kind(feature.feature)}]"
    if isinstance(feature, datasets.Value):
        return {"string": "str", "int64": "int"}.get(feature.dtype, feature.dtype)
    return type(feature).__name__


def test_committed_files_are_what_the_generator_produces():
    assert build.check() is None


def test_check_names_the_first_differing_file(tmp_path, capsys):
    root = tmp_path / "hub"
    shutil.copytree(HUB, root)
    assert build.main(["--check", "--root", str(root)]) == 0
    victim = root / "google/xtreme/PAN-X.sw/test.jsonl"
    victim.write_text(victim.read_text(encoding="utf-8").replace('"sw"', '"en"', 1), encoding="utf-8")
    assert "google/xtreme/PAN-X.sw/test.jsonl" in build.check(root)
    assert build.main(["--check", "--root", str(root)]) == 1
    assert "PAN-X.sw/test.jsonl" in capsys.readouterr().err
    victim.unlink()
    assert "missing" in build.check(root)
    build.write(root)
    (root / "extra.jsonl").write_text("{}\n")
    assert "extra.jsonl" in build.check(root)
    build.write(root)  # removes what the generator does not produce
    assert build.check(root) is None


def test_write_refuses_a_folder_that_is_not_a_fixtures_folder(tmp_path):
    keep = tmp_path / "notes.txt"
    keep.write_text("mine\n")
    with pytest.raises(XferError, match="not a fixtures folder"):
        build.write(tmp_path)
    assert build.main(["--root", str(tmp_path)]) == 1
    assert keep.read_text() == "mine\n" and not (tmp_path / "README.md").exists()
    empty = tmp_path / "new"
    assert build.main(["--root", str(empty)]) == 0 and build.check(empty) is None


def test_generation_is_deterministic():
    assert build.generate() == build.generate()


def test_exactly_the_expected_files_and_small():
    on_disk = {p.relative_to(HUB).as_posix() for p in HUB.rglob("*.jsonl")}
    assert on_disk == {f"{d}/{c}/{s}.jsonl" for d, c, s in EXPECTED}
    assert (HUB / "README.md").is_file()
    assert sum(p.stat().st_size for p in HUB.rglob("*") if p.is_file()) < 1_500_000


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """Every file read the way xfer's data loader reads a local mirror."""
    import datasets

    cache = tmp_path_factory.mktemp("hf-cache")
    return {key: datasets.load_dataset("json", data_files=str(_path(*key)), split="train", cache_dir=str(cache))
            for key in EXPECTED}


@pytest.mark.parametrize("key", sorted(EXPECTED), ids="/".join)
def test_loads_with_the_hub_columns_and_types(loaded, key):
    family, n_rows = EXPECTED[key]
    ds = loaded[key]
    assert len(ds) == n_rows
    assert ds.column_names == list(SCHEMAS[family])  # the Hub's names, in the Hub's order
    assert {name: _kind(feature) for name, feature in ds.features.items()} == SCHEMAS[family]


def test_all_text_is_nfc():
    for rel, text in build.generate().items():
        assert unicodedata.normalize("NFC", text) == text, rel


def test_mnli_labels_are_balanced_ints_in_hub_order():
    assert build.MNLI_LABELS == ("entailment", "neutral", "contradiction")
    for split in ("train", "validation_matched"):
        rows = _rows("nyu-mll/glue", "mnli", split)
        counts = Counter(r["label"] for r in rows)
        assert set(counts) == {0, 1, 2} and max(counts.values()) - min(counts.values()) <= 1
        assert [r["idx"] for r in rows] == list(range(len(rows)))
        for r in rows:  # the label order matters: a negated hypothesis is a contradiction (index 2)
            if " not " in r["hypothesis"] and " not " not in r["premise"]:
                assert r["label"] == 2, r
            if r["hypothesis"] == r["premise"]:
                assert r["label"] == 0, r


def test_xnli_mixes_four_languages_in_parallel_with_balanced_string_labels():
    for split in ("validation", "test"):
        rows = _rows(XTREME, "XNLI", split)
        by_lang: dict[str, list[dict]] = {}
        for r in rows:
            by_lang.setdefault(r["language"], []).append(r)
        assert sorted(by_lang) == ["de", "en", "es", "sw"]
        for lang, group in by_lang.items():
            counts = Counter(r["gold_label"] for r in group)
            assert set(counts) == set(build.MNLI_LABELS), lang
            assert len(group) == 40 and max(counts.values()) - min(counts.values()) <= 1, lang
        # parallel: row i carries the same label in every language, and the texts are translations
        labels = {lang: [r["gold_label"] for r in group] for lang, group in by_lang.items()}
        assert len({tuple(v) for v in labels.values()}) == 1
        assert by_lang["de"][0]["sentence1"] != by_lang["en"][0]["sentence1"]


def test_panx_tags_follow_the_classlabel_order_and_iob2():
    assert build.PANX_TAGS == ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")
    cities = {w for city in build.CITIES for w in city.split()[:1]}
    for lang in build.PANX_LANGS:
        long_seen, multi_seen, tag_set = False, False, set()
        for split in ("train", "validation", "test"):
            for r in _rows(XTREME, f"PAN-X.{lang}", split):
                tokens, tags = r["tokens"], r["ner_tags"]
                assert len(tokens) == len(tags) == len(r["langs"]) and set(r["langs"]) == {lang}
                assert all(isinstance(t, int) and 0 <= t < 7 for t in tags)
                for prev, tag in zip([0] + tags, tags):  # an I- tag continues a B-/I- of the same type
                    if tag in (2, 4, 6):
                        assert prev in (tag - 1, tag), r
                for token, tag in zip(tokens, tags):  # names land on the right ClassLabel index
                    if token in build.GIVEN_NAMES:
                        assert tag in (1, 2), (token, tag)
                    if token in cities and token not in ("Nairobi",):  # Nairobi also names a university
                        assert tag == 5, (token, tag)
                    if token in ("Safaricom", "Siemens", "Pertamina"):
                        assert tag == 3, (token, tag)
                long_seen |= split != "train" and len(tokens) > 40
                multi_seen |= 2 in tags and 4 in tags and 6 in tags
                tag_set |= set(tags)
        assert long_seen and multi_seen and tag_set == set(range(7)), lang


def _assert_spans(rows: list[dict]) -> None:
    for r in rows:
        answers = r["answers"]
        assert len(answers["text"]) == len(answers["answer_start"]) >= 1
        for text, start in zip(answers["text"], answers["answer_start"]):
            assert text and r["context"][start:start + len(text)] == text, r


def test_squad_answers_point_into_the_context():
    train = _rows("rajpurkar/squad", "plain_text", "train")
    dev = _rows("rajpurkar/squad", "plain_text", "validation")
    for rows in (train, dev):
        _assert_spans(rows)
        assert len({r["id"] for r in rows}) == len(rows)
        assert max(len(r["context"].split()) for r in rows) >= 350  # needs several 128-token windows
        assert any(2 <= r["context"].count(". ") + 1 <= 5 for r in rows)
    assert all(len(r["answers"]["text"]) == 1 for r in train)
    counts = Counter(len(r["answers"]["text"]) for r in dev)
    assert set(counts) <= {1, 2, 3} and counts[3] > 0
    assert any(len(set(r["answers"]["text"])) < len(r["answers"]["text"]) for r in dev)  # duplicates occur


def test_xquad_is_parallel_with_one_answer_per_question():
    rows = {lang: _rows(XTREME, f"XQuAD.{lang}", "validation") for lang in build.XQUAD_LANGS}
    assert not any(p.name != "validation.jsonl" for p in HUB.glob(f"{XTREME}/XQuAD.*/*"))
    for lang, group in rows.items():
        _assert_spans(group)
        assert all(len(r["answers"]["text"]) == 1 for r in group), lang
        assert max(len(r["context"].split()) for r in group) >= 300, lang
    assert [r["id"] for r in rows["de"]] == [r["id"] for r in rows["en"]] == [r["id"] for r in rows["es"]]
    assert rows["de"][0]["question"] != rows["en"][0]["question"]


def test_hellaswag_rows_are_consistent_with_string_labels():
    for split in ("train", "validation"):
        rows = _rows("Rowan/hellaswag", "default", split)
        counts = Counter(r["label"] for r in rows)
        assert set(counts) == set(build.HELLASWAG_LABELS) and max(counts.values()) - min(counts.values()) <= 1
        for r in rows:
            assert r["ctx"] == r["ctx_a"] + " " + r["ctx_b"]
            assert len(r["endings"]) == 4 and len(set(r["endings"])) == 4
            gold = r["endings"][int(r["label"])]
            assert gold in build.ACTIVITIES[r["activity_label"]][1]  # the one ending that fits the context
            others = [e for i, e in enumerate(r["endings"]) if i != int(r["label"])]
            assert not set(others) & set(build.ACTIVITIES[r["activity_label"]][1])
        assert {r["split"] for r in rows} == {"train" if split == "train" else "val"}
        assert len({r["ind"] for r in rows}) == len(rows)


def test_tatoeba_pairs_end_with_newline_and_align_by_row():
    for code in build.TATOEBA_CODES:
        rows = _rows(XTREME, f"tatoeba.{code}", "validation")
        assert {r["source_lang"] for r in rows} == {code} and {r["target_lang"] for r in rows} == {"eng"}
        for r in rows:
            assert r["source_sentence"].endswith("\n") and r["target_sentence"].endswith("\n")
            assert r["source_sentence"] != r["target_sentence"]
            # row i's pair shares its names: the translation is in the same row
            names = [w for w in r["target_sentence"].rstrip(".\n").split() if w in build.GIVEN_NAMES]
            assert names and all(n in r["source_sentence"] for n in names), r
        assert len({r["target_sentence"] for r in rows}) == len(rows)
        assert len({r["source_sentence"] for r in rows}) == len(rows)


def _names(text: str) -> set[str]:
    return {w.strip(".,") for w in text.split() if w.strip(".,") in build.GIVEN_NAMES + tuple(build.CITIES)}


def test_pawsx_labels_are_balanced_strings_on_pairs_with_the_same_names():
    en = {split: _rows(XTREME, "PAWS-X.en", split) for split in ("train", "validation", "test")}
    for split, rows in en.items():
        counts = Counter(r["label"] for r in rows)
        assert set(counts) == {"0", "1"} and abs(counts["0"] - counts["1"]) <= 1, split
        for r in rows:
            if r["label"] == "1":  # a paraphrase names the same people and cities
                assert _names(r["sentence1"]) == _names(r["sentence2"]), r
        # PAWS-style adversaries: non-paraphrases made of the very same words
        assert any(r["label"] == "0" and sorted(r["sentence1"].split()) == sorted(r["sentence2"].split())
                   for r in rows), split
    for lang in ("de", "es"):
        for split in ("validation", "test"):  # human-translated dev and test: parallel to English
            rows = _rows(XTREME, f"PAWS-X.{lang}", split)
            assert [r["label"] for r in rows] == [r["label"] for r in en[split]]
            assert rows[0]["sentence1"] != en[split][0]["sentence1"]
        train = _rows(XTREME, f"PAWS-X.{lang}", "train")  # machine-translated: the first English items
        assert [r["label"] for r in train] == [r["label"] for r in en["train"][:len(train)]]


def test_udpos_tags_follow_the_classlabel_order_with_every_tag_in_english():
    assert build.UPOS_TAGS == ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON",
                               "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X")
    assert not (HUB / XTREME / "udpos.Yoruba/train.jsonl").exists()
    assert not any((HUB / XTREME / f"udpos.{name}/validation.jsonl").exists() for name in ("Yoruba", "Kazakh"))
    for name in ("English", "German", "Spanish", "Kazakh", "Yoruba"):
        tags = set()
        for path in sorted((HUB / XTREME / f"udpos.{name}").glob("*.jsonl")):
            for r in _rows(XTREME, f"udpos.{name}", path.stem):
                assert len(r["tokens"]) == len(r["pos_tags"]) and all(0 <= t < 17 for t in r["pos_tags"])
                for token, tag in zip(r["tokens"], r["pos_tags"]):
                    if token in build.GIVEN_NAMES or token in build.SURNAMES:
                        assert build.UPOS_TAGS[tag] == "PROPN", (name, token)
                    if token in (".", ",", "!"):
                        assert build.UPOS_TAGS[tag] == "PUNCT", (name, token)
                    if token.isdigit():
                        assert build.UPOS_TAGS[tag] == "NUM", (name, token)
                tags |= set(r["pos_tags"])
        assert len(tags) >= 12, name
        if name == "English":
            assert tags == set(range(17))


def test_mlqa_is_parallel_with_one_answer_per_question():
    for split in ("validation", "test"):
        rows = {lang: _rows(XTREME, f"MLQA.{lang}.{lang}", split) for lang in ("en", "de", "es")}
        for lang, group in rows.items():
            _assert_spans(group)
            assert all(len(r["answers"]["text"]) == 1 for r in group), lang
            assert all(len(r["id"]) == 40 and int(r["id"], 16) >= 0 for r in group), lang
        assert [r["id"] for r in rows["de"]] == [r["id"] for r in rows["en"]] == [r["id"] for r in rows["es"]]
        assert len({r["id"] for r in rows["en"]}) == len(rows["en"])
        assert rows["de"][0]["question"] != rows["en"][0]["question"]


def test_tydiqa_mixes_languages_told_apart_by_id_prefix():
    expected = {"train": {"english": 96, "indonesian": 6, "swahili": 6, "telugu": 6},
                "validation": {"english": 16, "indonesian": 16, "swahili": 16, "telugu": 16}}
    for split, counts in expected.items():
        rows = _rows(XTREME, "tydiqa", split)
        _assert_spans(rows)
        assert Counter(r["id"].split("-")[0] for r in rows) == counts
        assert len({r["id"] for r in rows}) == len(rows)
        assert all(re.fullmatch(r"[a-z]+--?\d+-0", r["id"]) for r in rows)
        prefixes = [r["id"].split("-")[0] for r in rows]
        assert prefixes != sorted(prefixes)  # interleaved, so only the prefix tells a row's language
        telugu = [r for r in rows if r["id"].startswith("telugu-")]
        assert all(any("\u0c00" <= ch <= "\u0c7f" for ch in r["question"]) for r in telugu)


def test_bucc_rows_are_gold_pairs_with_sentence_ids_in_the_lang_columns():
    for lang in ("de", "fr"):
        for split in ("validation", "test"):
            rows = _rows(XTREME, f"bucc18.{lang}", split)
            assert all(re.fullmatch(rf"{lang}-\d{{9}}", r["source_lang"]) for r in rows)
            assert all(re.fullmatch(r"en-\d{9}", r["target_lang"]) for r in rows)
            for column in ("source_lang", "target_lang", "source_sentence", "target_sentence"):
                assert len({r[column] for r in rows}) == len(rows), (lang, split, column)
            for r in rows:  # the pair is a translation: same names, no trailing newline (unlike Tatoeba)
                assert not r["source_sentence"].endswith("\n") and r["source_sentence"] != r["target_sentence"]
                assert _names(r["source_sentence"]) == _names(r["target_sentence"]), r


# ---- intermediate tasks


def _balanced_counts(values, expected: set) -> bool:
    counts = Counter(values)
    return set(counts) == expected and max(counts.values()) - min(counts.values()) <= 1


def test_anli_and_snli_use_the_hub_label_order_and_snli_has_no_gold_rows():
    assert build.MNLI_LABELS == ("entailment", "neutral", "contradiction")  # ANLI's and SNLI's ClassLabel too
    uids = set()
    for split in ("train_r1", "train_r2", "train_r3", "dev_r1", "dev_r2", "dev_r3"):
        rows = _rows("facebook/anli", "plain_text", split)
        assert _balanced_counts([r["label"] for r in rows], {0, 1, 2}), split
        uids |= {r["uid"] for r in rows}
        for r in rows:
            if " not " in r["hypothesis"] and " not " not in r["premise"]:
                assert r["label"] == 2, r
    assert len(uids) == 48 * 3 + 16 * 3
    snli = _rows("stanfordnlp/snli", "plain_text", "train")
    assert Counter(r["label"] for r in snli)[-1] == build.SNLI_NO_GOLD
    assert _balanced_counts([r["label"] for r in snli if r["label"] >= 0], {0, 1, 2})


def test_qqp_duplicates_ask_about_the_same_subject():
    for split in ("train", "validation"):
        rows = _rows("nyu-mll/glue", "qqp", split)
        assert _balanced_counts([r["label"] for r in rows], {0, 1}) and [r["idx"] for r in rows] == list(
            range(len(rows)))
        subjects = set(build.GIVEN_NAMES) | set(build.CITIES) | set(build.COMPANIES)

        def subject(question: str) -> str:
            return max((s for s in subjects if s in question), key=len)

        for r in rows:
            assert r["question1"] != r["question2"]
            if r["label"] == 1:
                assert subject(r["question1"]) == subject(r["question2"]), r


def test_squad_v2_mixes_answerable_and_unanswerable_questions():
    for split in ("train", "validation"):
        rows = _rows("rajpurkar/squad_v2", "squad_v2", split)
        empty = [r for r in rows if not r["answers"]["text"]]
        assert 0.25 <= len(empty) / len(rows) <= 0.5, split
        assert all(r["answers"]["answer_start"] == [] for r in empty)
        _assert_spans([r for r in rows if r["answers"]["text"]])
        assert len({r["id"] for r in rows}) == len(rows)
    assert max(len(r["context"].split()) for r in _rows("rajpurkar/squad_v2", "squad_v2", "validation")) >= 350


def test_cosmos_qa_has_four_answers_and_the_right_one_is_told_in_the_story():
    for split in ("train", "validation"):
        rows = _rows("allenai/cosmos_qa", "default", split)
        assert _balanced_counts([r["label"] for r in rows], {0, 1, 2, 3})
        for r in rows:
            answers = [r[f"answer{i}"] for i in range(4)]
            assert len(set(answers)) == 4
            told = [a.removeprefix("Because ").rstrip(".").lower() in r["context"].lower() for a in answers]
            assert told == [i == r["label"] for i in range(4)], r


def test_commonsense_qa_has_five_lettered_choices_and_answer_keys():
    for split in ("train", "validation"):
        rows = _rows("tau/commonsense_qa", "default", split)
        assert _balanced_counts([r["answerKey"] for r in rows], set("ABCDE"))
        for r in rows:
            assert r["choices"]["label"] == list("ABCDE") and len(set(r["choices"]["text"])) == 5
            gold = r["choices"]["text"][r["choices"]["label"].index(r["answerKey"])]
            assert gold == build.CSQA_FACTS[r["question_concept"]][1], r
