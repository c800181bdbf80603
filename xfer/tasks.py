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
    """

    dataset: str
    config: str
    split: str
    columns: Mapping[str, str]
    labels_are: Literal["index", "name"] = "index"
    where: Mapping[str, str] = field(default_factory=dict)
    revision: str | None = None

    def config_for(self, code: str, lang: str) -> str:
        return self.config.format(lang=lang, code=code)


@dataclass(frozen=True)
class Task:
    """A task declaration. `train`/`dev` are English; `test` and `lang_dev` are per language (templated).

    `lang_dev` is the target-language dev split, where the benchmark has one: it serves only the oracle
    model selection that the report gives beside the default English-dev selection.
    """

    name: str
    format: Format
    metrics: tuple[str, ...]
    languages: tuple[str, ...] = ("en",)
    labels: tuple[str, ...] = ()
    train: Split | None = None
    dev: Split | None = None
    test: Split | None = None
    lang_dev: Split | None = None
    codes: Mapping[str, str] = field(default_factory=dict)  # XTREME code -> the dataset's language code
    defaults: Mapping[str, float | int] = field(default_factory=dict)  # target-phase hyperparameters (jiant)
    intermediate: bool = False  # may be used as an English intermediate task
    target: bool = False  # is an XTREME target task

    def code(self, lang: str) -> str:
        return self.codes.get(lang, lang)


def _cols(**columns: str) -> Mapping[str, str]:
    return MappingProxyType(columns)


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


def get(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise XferError(f"unknown task {name!r} (known: {', '.join(sorted(TASKS))})") from None
