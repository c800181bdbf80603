"""The task registry: every task xfer knows is declared here, once.

A task says where its data lives on the Hugging Face Hub (dataset id, config, split, revision), how the
Hub's columns map to the fields its format needs, its labels, its metrics and its languages. Target tasks
train on English data (possibly another task's: XNLI trains on MNLI) and are evaluated zero-shot on every
language; retrieval tasks have no training data and evaluate the encoder directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, Mapping

from xfer import languages as L
from xfer.errors import XferError

Format = Literal["classification", "tagging", "span_qa", "multiple_choice", "retrieval"]
NLI_LABELS = ("entailment", "neutral", "contradiction")
NER_TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")


@dataclass(frozen=True)
class Split:
    """One split of one Hub dataset, and how its columns map to the format's fields.

    `config` may hold `{lang}` (XTREME code) or `{code}` (the task's own code for that language).
    `where` keeps only rows whose column equals the value (after the same substitution).
    `labels_are`: "index" (an int, or a string of digits) or "name" (one of the task's label names).
    `label_names`: the source's own label names in index order (its ClassLabel); an index label is then
    mapped to the task's label of that name, so sources with different label orders can be mixed.
    A `columns` value may be a tuple of columns (multiple choice: one choice per column).
    `prefix` keeps only rows whose column starts with the value (after the same substitution; TyDiQA's
    language is the prefix of its question ids).
    """

    dataset: str
    config: str
    split: str
    columns: Mapping[str, str | tuple[str, ...]]
    labels_are: Literal["index", "name"] = "index"
    where: Mapping[str, str] = field(default_factory=dict)
    revision: str | None = None
    label_names: tuple[str, ...] = ()
    prefix: Mapping[str, str] = field(default_factory=dict)

    def config_for(self, code: str, lang: str) -> str:
        return self.config.format(lang=lang, code=code)


@dataclass(frozen=True)
class Task:
    """A task declaration. `train`/`dev` are English; `test` and `lang_dev` are per language (templated).

    `lang_dev` is the target-language dev split, where the benchmark has one: it serves only the oracle
    model selection that the report gives beside the default English-dev selection (and, for BUCC, the
    choice of the mining threshold).
    An intermediate task's `train`/`dev` may be a tuple of splits, read and concatenated (ANLI+).
    `unanswerable`: span QA with unanswerable questions (SQuAD 2.0 training and scoring).
    `labels_from_data`: the label set is read from the training data (CCG supertags) and saved with the model.
    `user_files`: the data is supplied by the user as files (see xfer/userfiles.py); the text says how.
    `qa_scoring`: how span QA answers are normalised and scored: SQuAD v1.1's rules, or MLQA's (per-language
    articles, Unicode punctuation; `xfer.mlqa`).
    `retrieval`: "nearest" (Tatoeba: each source's nearest target, accuracy) or "bucc" (BUCC: bitext mining
    with a margin-score threshold chosen on `lang_dev`, the sample gold; F1 over id pairs; `xfer.bucc`).
    """

    name: str
    format: Format
    metrics: tuple[str, ...]
    languages: tuple[str, ...] = ("en",)
    labels: tuple[str, ...] = ()
    train: Split | tuple[Split, ...] | None = None
    dev: Split | tuple[Split, ...] | None = None
    test: Split | None = None
    lang_dev: Split | None = None
    codes: Mapping[str, str] = field(default_factory=dict)  # XTREME code -> the dataset's language code
    defaults: Mapping[str, float | int] = field(default_factory=dict)  # target-phase hyperparameters (jiant)
    intermediate: bool = False  # may be used as an English intermediate task
    target: bool = False  # is an XTREME target task
    unanswerable: bool = False
    labels_from_data: bool = False
    user_files: str = ""
    qa_scoring: Literal["squad", "mlqa"] = "squad"
    retrieval: Literal["nearest", "bucc"] = "nearest"

    def code(self, lang: str) -> str:
        return self.codes.get(lang, lang)


def _cols(**columns: str | tuple[str, ...]) -> Mapping[str, str | tuple[str, ...]]:
    return MappingProxyType(columns)


def splits(value: Split | tuple[Split, ...] | None) -> tuple[Split, ...]:
    """A task's `train` or `dev` as a tuple of splits (empty when it has none)."""
    if value is None:
        return ()
    return value if isinstance(value, tuple) else (value,)


MNLI_COLUMNS = _cols(text="premise", text_pair="hypothesis", label="label")
SQUAD_COLUMNS = _cols(id="id", question="question", context="context", answers="answers")
XTREME = "google/xtreme"


def _mnli(split: str) -> Split:
    return Split("nyu-mll/glue", "mnli", split, MNLI_COLUMNS)


def _squad(split: str) -> Split:
    return Split("rajpurkar/squad", "plain_text", split, SQUAD_COLUMNS)


QA_DEFAULTS = MappingProxyType({"epochs": 2, "batch_size": 16, "max_length": 384})
SENTENCE_DEFAULTS = MappingProxyType({"batch_size": 32, "max_length": 256})

TASKS: dict[str, Task] = {}


def register(task: Task) -> Task:
    if task.name in TASKS:
        raise ValueError(f"task {task.name!r} declared twice")
    TASKS[task.name] = task
    return task


# ---- intermediate tasks (English) ----
register(Task(
    name="mnli", format="classification", metrics=("accuracy",), labels=NLI_LABELS,
    train=_mnli("train"), dev=_mnli("validation_matched"), intermediate=True,
))
register(Task(
    name="squad", format="span_qa", metrics=("exact_match", "f1"),
    train=_squad("train"), dev=_squad("validation"), intermediate=True,
))
HELLASWAG_COLUMNS = _cols(context="ctx", choices="endings", label="label")
register(Task(
    name="hellaswag", format="multiple_choice", metrics=("accuracy",), labels=("0", "1", "2", "3"),
    # The main branch still holds a loading script; the Hub's parquet conversion is loadable.
    train=Split("Rowan/hellaswag", "default", "train", HELLASWAG_COLUMNS, revision="refs/convert/parquet"),
    dev=Split("Rowan/hellaswag", "default", "validation", HELLASWAG_COLUMNS, revision="refs/convert/parquet"),
    intermediate=True,
))
# ANLI+ (the paper's): ANLI rounds 1-3, MNLI and SNLI together. All three Hub sources declare the ClassLabel
# (entailment, neutral, contradiction); `label_names` maps each by name, so a source with another order could
# join. SNLI's -1 (no gold label) rows are dropped by the classification format. Dev: ANLI's three dev rounds.
NLI_COLUMNS = _cols(text="premise", text_pair="hypothesis", label="label")


def _anli(split: str) -> Split:
    return Split("facebook/anli", "plain_text", split, NLI_COLUMNS, label_names=NLI_LABELS)


register(Task(
    name="anli", format="classification", metrics=("accuracy",), labels=NLI_LABELS,
    train=(_anli("train_r1"), _anli("train_r2"), _anli("train_r3"),
           Split("nyu-mll/glue", "mnli", "train", NLI_COLUMNS, label_names=NLI_LABELS),
           Split("stanfordnlp/snli", "plain_text", "train", NLI_COLUMNS, label_names=NLI_LABELS)),
    dev=(_anli("dev_r1"), _anli("dev_r2"), _anli("dev_r3")), intermediate=True,
))
QQP_LABELS = ("not_duplicate", "duplicate")
QQP_COLUMNS = _cols(text="question1", text_pair="question2", label="label")
register(Task(
    name="qqp", format="classification", metrics=("accuracy",), labels=QQP_LABELS,
    train=Split("nyu-mll/glue", "qqp", "train", QQP_COLUMNS, label_names=QQP_LABELS),
    dev=Split("nyu-mll/glue", "qqp", "validation", QQP_COLUMNS, label_names=QQP_LABELS), intermediate=True,
))
register(Task(
    name="squad_v2", format="span_qa", metrics=("exact_match", "f1"), unanswerable=True,  # empty answers
    train=Split("rajpurkar/squad_v2", "squad_v2", "train", SQUAD_COLUMNS),
    dev=Split("rajpurkar/squad_v2", "squad_v2", "validation", SQUAD_COLUMNS), intermediate=True,
))
COSMOSQA_COLUMNS = _cols(context="context", question="question",
                         choices=("answer0", "answer1", "answer2", "answer3"), label="label")
register(Task(
    name="cosmosqa", format="multiple_choice", metrics=("accuracy",), labels=("0", "1", "2", "3"),
    # Like HellaSwag, the main branch holds a loading script: read the Hub's parquet conversion.
    train=Split("allenai/cosmos_qa", "default", "train", COSMOSQA_COLUMNS, revision="refs/convert/parquet"),
    dev=Split("allenai/cosmos_qa", "default", "validation", COSMOSQA_COLUMNS, revision="refs/convert/parquet"),
    intermediate=True,
))
# `choices` is {label: [A..E], text: [...]}: the answer key is looked up among the row's own choice labels.
CSQA_COLUMNS = _cols(question="question", choices="choices", label="answerKey")
register(Task(
    name="commonsenseqa", format="multiple_choice", metrics=("accuracy",), labels=("A", "B", "C", "D", "E"),
    train=Split("tau/commonsense_qa", "default", "train", CSQA_COLUMNS, labels_are="name"),
    dev=Split("tau/commonsense_qa", "default", "validation", CSQA_COLUMNS, labels_are="name"),  # test: no keys
    intermediate=True,
))
# CCG supertagging: CCGbank is licensed (LDC2005T13) and not on the Hub; the user supplies it as files.
USER_FILES = "user-files"  # the `dataset` of a split read from user-supplied files (xfer/userfiles.py)
CCG_COLUMNS = _cols(tokens="tokens", tags="tags")
register(Task(
    name="ccg", format="tagging", metrics=("token_accuracy",), labels_from_data=True,
    train=Split(USER_FILES, "ccg", "train", CCG_COLUMNS, labels_are="name"),
    dev=Split(USER_FILES, "ccg", "dev", CCG_COLUMNS, labels_are="name"), intermediate=True,
    user_files="CCGbank is licensed (LDC2005T13) and not on the Hugging Face Hub: convert it yourself and set "
               "intermediate.files.ccg to a folder holding train.tsv and dev.tsv (one 'word<TAB>supertag' per "
               "line, a blank line between sentences; README: Intermediate tasks)",
))

# ---- XTREME target tasks ----
register(Task(
    name="xnli", format="classification", metrics=("accuracy",), labels=NLI_LABELS, languages=L.XNLI,
    train=_mnli("train"), dev=_mnli("validation_matched"),  # XNLI has no train split: train on MNLI
    test=Split(XTREME, "XNLI", "test", _cols(text="sentence1", text_pair="sentence2", label="gold_label"),
               labels_are="name", where={"language": "{lang}"}),
    lang_dev=Split(XTREME, "XNLI", "validation", _cols(text="sentence1", text_pair="sentence2", label="gold_label"),
                   labels_are="name", where={"language": "{lang}"}),
    defaults=MappingProxyType({"epochs": 2, **SENTENCE_DEFAULTS}), target=True,
))
PANX_COLUMNS = _cols(tokens="tokens", tags="ner_tags")
register(Task(
    name="panx", format="tagging", metrics=("f1",), labels=NER_TAGS, languages=L.PANX,
    train=Split(XTREME, "PAN-X.en", "train", PANX_COLUMNS),
    dev=Split(XTREME, "PAN-X.en", "validation", PANX_COLUMNS),
    test=Split(XTREME, "PAN-X.{code}", "test", PANX_COLUMNS),
    lang_dev=Split(XTREME, "PAN-X.{code}", "validation", PANX_COLUMNS),
    defaults=MappingProxyType({"epochs": 10, **SENTENCE_DEFAULTS}), target=True,
))
register(Task(
    name="xquad", format="span_qa", metrics=("exact_match", "f1"), languages=L.XQUAD,
    train=_squad("train"), dev=_squad("validation"),
    test=Split(XTREME, "XQuAD.{code}", "validation", SQUAD_COLUMNS),  # XQuAD has only a validation split
    defaults=QA_DEFAULTS, target=True,
))
register(Task(
    name="tatoeba", format="retrieval", metrics=("accuracy",), languages=L.TATOEBA, codes=L.TATOEBA_CODES,
    test=Split(XTREME, "tatoeba.{code}", "validation",  # only a validation split; it is XTREME's test set
               _cols(source="source_sentence", target="target_sentence")),
    defaults=MappingProxyType({"max_length": 512, "batch_size": 64}), target=True,
))
# PAWS-X: only the English train split is human-made; the other languages' train splits are machine
# translations and are never read (train and dev are PAWS-X.en whatever the language).
PAWSX_COLUMNS = _cols(text="sentence1", text_pair="sentence2", label="label")  # label: the string "0" or "1"
register(Task(
    name="pawsx", format="classification", metrics=("accuracy",), labels=("0", "1"), languages=L.PAWSX,
    train=Split(XTREME, "PAWS-X.en", "train", PAWSX_COLUMNS),
    dev=Split(XTREME, "PAWS-X.en", "validation", PAWSX_COLUMNS),
    test=Split(XTREME, "PAWS-X.{lang}", "test", PAWSX_COLUMNS),
    lang_dev=Split(XTREME, "PAWS-X.{lang}", "validation", PAWSX_COLUMNS),
    defaults=MappingProxyType({"epochs": 5, **SENTENCE_DEFAULTS}), target=True,
))
# UD POS (UD 2.5 as XTREME uses it): configs named by the language's English name; Kazakh has only a tiny
# train split and test, Tagalog, Thai and Yoruba only test, so they have no `lang_dev` (loading it fails).
UPOS_TAGS = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN",
             "PUNCT", "SCONJ", "SYM", "VERB", "X")  # the Hub's ClassLabel order
UDPOS_COLUMNS = _cols(tokens="tokens", tags="pos_tags")
register(Task(
    name="udpos", format="tagging", metrics=("f1",), labels=UPOS_TAGS, languages=L.UDPOS,  # token accuracy too
    codes=L.UDPOS_NAMES,
    train=Split(XTREME, "udpos.English", "train", UDPOS_COLUMNS),
    dev=Split(XTREME, "udpos.English", "validation", UDPOS_COLUMNS),
    test=Split(XTREME, "udpos.{code}", "test", UDPOS_COLUMNS),
    lang_dev=Split(XTREME, "udpos.{code}", "validation", UDPOS_COLUMNS),
    defaults=MappingProxyType({"epochs": 10, **SENTENCE_DEFAULTS}), target=True,
))
# MLQA: context and question in the same language; trained on SQuAD v1.1 like XQuAD; MLQA's scoring.
register(Task(
    name="mlqa", format="span_qa", metrics=("exact_match", "f1"), languages=L.MLQA, qa_scoring="mlqa",
    train=_squad("train"), dev=_squad("validation"),
    test=Split(XTREME, "MLQA.{lang}.{lang}", "test", SQUAD_COLUMNS),
    lang_dev=Split(XTREME, "MLQA.{lang}.{lang}", "validation", SQUAD_COLUMNS),
    defaults=QA_DEFAULTS, target=True,
))
# TyDiQA-GoldP: one config mixing nine languages in both splits, a question's language being its id prefix.
# Train on the English questions of `train`; the `validation` split is XTREME's test set. There is no dev
# split apart from it, English or other, so no `dev` and no `lang_dev`.
register(Task(
    name="tydiqa", format="span_qa", metrics=("exact_match", "f1"), languages=L.TYDIQA,
    codes=L.TYDIQA_PREFIXES,
    train=Split(XTREME, "tydiqa", "train", SQUAD_COLUMNS, prefix={"id": "english-"}),
    test=Split(XTREME, "tydiqa", "validation", SQUAD_COLUMNS, prefix={"id": "{code}-"}),
    defaults=QA_DEFAULTS, target=True,
))
# BUCC 2018: the Hub's rows are the gold pairs only; `source_lang`/`target_lang` hold the sentence ids
# ("de-000000123", "en-000000456"), not languages. Validation = BUCC's sample gold (the threshold is chosen
# there), test = its training gold (XTREME's test set).
BUCC_COLUMNS = _cols(source="source_sentence", target="target_sentence", source_id="source_lang",
                     target_id="target_lang")
register(Task(
    name="bucc2018", format="retrieval", metrics=("precision", "recall", "f1"), languages=L.BUCC2018,
    retrieval="bucc",
    test=Split(XTREME, "bucc18.{lang}", "test", BUCC_COLUMNS),
    lang_dev=Split(XTREME, "bucc18.{lang}", "validation", BUCC_COLUMNS),
    defaults=MappingProxyType({"max_length": 512, "batch_size": 64}), target=True,
))


def get(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise XferError(f"unknown task {name!r} (known: {', '.join(sorted(TASKS))})") from None
