"""Sweep configs: a YAML file validated on load into a `SweepConfig`.

Every mistake (malformed YAML, a duplicate key, a missing or misspelled field, an unknown task or language, a
negative budget, an infinite or NaN number, a seed outside [0, 2**32), an empty or repeated list entry, a store
URI with an unclear scheme) is reported before any work starts, as one `XferError` line naming the file, the
field and the value. docs/validation.md lists the rules.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from xfer import tasks
from xfer.errors import XferError
from xfer.languages import LOW_RESOURCE_PRESETS
from xfer.selection import DEFAULT_MAX_POINTS
from xfer.uris import store_uri_problem

SEED_LIMIT = 2**32  # seeds seed numpy's generator too, which takes [0, 2**32)


class Strict(BaseModel):
    # allow_inf_nan=False: every float setting must be finite (an infinite lr trains to NaN and "scores").
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


Seed = Annotated[int, Field(ge=0, lt=SEED_LIMIT, strict=True)]


class Hparams(Strict):
    """Optimisation settings of one phase. Target-phase defaults follow the XTREME/jiant baselines."""

    lr: float = Field(1e-5, gt=0)
    batch_size: int = Field(32, gt=0)
    grad_accum: int = Field(1, gt=0)
    max_length: int = Field(256, ge=16)
    warmup: float = Field(0.1, ge=0, lt=1, description="fraction of the steps with linear warm-up")
    weight_decay: float = Field(0.01, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    adam_eps: float = Field(1e-8, gt=0)
    epochs: float | None = Field(None, gt=0, description="target phase: epochs (default: the task's)")
    max_steps: int | None = Field(None, gt=0, description="target phase: cap on optimizer steps")
    doc_stride: int = Field(128, gt=0)
    eval_batch_size: int = Field(64, gt=0)
    batching: Literal["length", "random"] = Field(
        "length", description="length: batches of similar length (megabatches sorted by length, then shuffled); "
                              "random: plain random batches")
    eval_tokens: int | None = Field(None, gt=0, description="inference: padded token positions per batch "
                                                            "(default eval_batch_size * max_length)")

    def stride_problem(self) -> str | None:
        """QA windows overlap by `doc_stride` tokens; it must leave room for new context in each window."""
        if 2 * self.doc_stride > self.max_length:
            return f"doc_stride {self.doc_stride} must be at most half of max_length {self.max_length}"
        return None


HPARAM_FIELDS = set(Hparams.model_fields)


def _check_hparam_overrides(value: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(value) - HPARAM_FIELDS)
    if unknown:
        raise ValueError(f"unknown hyperparameter {unknown[0]!r} (known: {', '.join(sorted(HPARAM_FIELDS))})")
    Hparams(**value)  # type and range checks
    return value


class TinyModel(Strict):
    """A small XLM-R-architecture model built from scratch (the offline demo): tokenizer trained with
    `tokenizers` on the bundled text, weights initialised from `seed`, optionally MLM-pretrained briefly."""

    vocab_size: int = Field(3000, ge=300)
    hidden_size: int = Field(64, gt=0)
    num_layers: int = Field(2, gt=0)
    num_heads: int = Field(4, gt=0)
    intermediate_size: int = Field(128, gt=0)
    max_position: int = Field(514, ge=64)
    pretrain_steps: int = Field(0, ge=0)
    pretrain_lr: float = Field(5e-4, gt=0)
    seed: Seed = 0


class ModelSpec(Strict):
    name: str | None = Field(None, description="Hugging Face model id or local folder")
    revision: str | None = None
    build: TinyModel | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        if (self.name is None) == (self.build is None):
            raise ValueError("give exactly one of 'name' (a Hub id or local folder) or 'build'")
        return self


def _intermediate_task(name: str) -> str:
    task = tasks.TASKS.get(name)
    if task is None or not task.intermediate:
        known = sorted(t.name for t in tasks.TASKS.values() if t.intermediate)
        raise ValueError(f"unknown intermediate task {name!r} (known: {', '.join(known)})")
    return name


def _budget(budget: int) -> int:
    if budget < 0:
        raise ValueError(f"budget {budget} is negative (0 means no intermediate phase)")
    return budget


def _unique(values: list) -> list:
    seen = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{value!r} is listed twice")
        seen.add(value)
    return values


def _languages(values: list[str]) -> list[str]:
    if not values:
        raise ValueError("an empty list of languages (omit the field, or give null, for XTREME's languages)")
    return _unique(values)


class Mixture(Strict):
    """Multi-task intermediate training under one name: a shared encoder with one head per task; every optimizer
    step trains on one task, drawn with probability proportional to its training-set size capped at `cap`."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    tasks: Annotated[list[Annotated[str, AfterValidator(_intermediate_task)]], AfterValidator(_unique)] = Field(
        min_length=1)
    cap: int | None = Field(None, gt=0, description="count at most this many examples of a task when sampling")
    sampling: Literal["proportional"] = "proportional"


class Intermediate(Strict):
    tasks: Annotated[list[Annotated[str, AfterValidator(_intermediate_task)]], AfterValidator(_unique)] = Field(
        default_factory=list)
    mixtures: list[Mixture] = Field(default_factory=list, description="multi-task intermediate trainings")
    budgets: Annotated[list[Annotated[int, AfterValidator(_budget)]], AfterValidator(_unique)] = Field(
        min_length=1, description="optimizer steps; 0 = no intermediate phase")
    hparams: Hparams = Hparams()
    checkpoint_every: int = Field(500, gt=0)
    files: dict[str, str] = Field(default_factory=dict, description="task -> folder of user-supplied data (ccg)")

    @model_validator(mode="after")
    def _entries(self) -> Intermediate:
        if not self.tasks and not self.mixtures:
            raise ValueError("give at least one intermediate task in 'tasks' or 'mixtures'")
        seen = set(self.tasks)
        for i, mixture in enumerate(self.mixtures):
            if mixture.name in seen:
                raise ValueError(f"mixtures[{i}].name: {mixture.name!r} already names a task or mixture")
            seen.add(mixture.name)
        for name in self.files:
            if not getattr(tasks.TASKS.get(name), "user_files", ""):
                users = sorted(t.name for t in tasks.TASKS.values() if t.user_files)
                raise ValueError(f"files.{name}: task {name!r} does not read user files (only: {', '.join(users)})")
        for name in self.member_tasks():
            task = tasks.get(name)
            if task.user_files and name not in self.files:
                raise ValueError(f"task {name!r} needs data files: {task.user_files}")
        return self

    # ---- derived views ----
    def names(self) -> list[str]:
        """Every intermediate entry of the sweep: the single tasks, then the mixtures."""
        return list(self.tasks) + [m.name for m in self.mixtures]

    def mixture(self, name: str) -> Mixture | None:
        return next((m for m in self.mixtures if m.name == name), None)

    def member_tasks(self) -> list[str]:
        """Every task trained on, alone or in a mixture, each once."""
        return list(dict.fromkeys(list(self.tasks) + [t for m in self.mixtures for t in m.tasks]))


class Target(Strict):
    languages: Annotated[list[str], AfterValidator(_languages)] | None = Field(
        None, description="default (omitted or null): XTREME's languages for the task; never empty")
    hparams: dict[str, Any] = Field(default_factory=dict)
    layer: int | None = Field(None, ge=0, description="retrieval: hidden layer to mean-pool (default 14)")

    _hparams = field_validator("hparams")(classmethod(lambda cls, v: _check_hparam_overrides(v)))


class Selection(Strict):
    """Target-phase model selection (`xfer.selection`): the evaluation points, where the English dev set is
    evaluated (and, with `oracle`, every language's dev set); test sets are scored at the chosen points only."""

    max_points: int = Field(DEFAULT_MAX_POINTS, ge=1,
                            description="evaluate at the end of every epoch, at most this many times, evenly spread")
    oracle: bool = Field(False, description="also evaluate every target language's dev set at each point, for the "
                                            "oracle selection (an upper bound; costs one pass over those sets "
                                            "per point)")
    test_at_every_point: bool = Field(False, description="score the test sets at every point, not only at the "
                                                         "chosen ones (same results; for studying checkpoints)")


class Report(Strict):
    """The report's statistics (`xfer.report.paired`): the paired bootstrap over test examples against the
    budget-0 baseline."""

    bootstrap_resamples: int = Field(2000, ge=1000, le=10000, description="resamples of the paired bootstrap")
    bootstrap_seed: int = Field(0, ge=0, lt=2**32, description="its RNG seed: the same results give the same "
                                                               "intervals")


def _revision_pins(value: dict[str, str]) -> dict[str, str]:
    """`revisions:` (xfer/revisions.py): Hub dataset id -> the commit sha to read it at."""
    for repo, sha in value.items():
        if not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", repo):
            raise ValueError(f"{repo!r} is not a Hub dataset id (owner/name)")
        if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{40}", sha):
            raise ValueError(f"{repo}: {sha!r} is not a commit sha (40 hex digits; `xfer plan` prints the "
                             f"resolved ones under 'pins')")
    return value


class SweepConfig(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    model: ModelSpec
    data: str = Field("hub", description="'hub', 'bundled', or a folder mirroring the Hub layout")
    intermediate: Intermediate
    targets: dict[str, Target] = Field(min_length=1)
    target_hparams: dict[str, Any] = Field(default_factory=dict, description="overrides for every target task")
    seeds: Annotated[list[Seed], AfterValidator(_unique)] = Field([1], min_length=1)
    store: str = "file://.xfer/store"
    low_resource: str | list[str] = "panx-1k"
    retrieval_layer: int = Field(14, ge=0)
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    selection: Selection = Selection()
    target_checkpoint_every: int = Field(1000, gt=0, description="target jobs: optimizer steps between checkpoints")
    revisions: Annotated[dict[str, str], AfterValidator(_revision_pins)] = Field(
        default_factory=dict, description="data: hub: dataset id -> commit sha to read it at (default: the "
                                          "commit its ref points at when planning)")
    report: Report = Report()

    _target_hparams = field_validator("target_hparams")(classmethod(lambda cls, v: _check_hparam_overrides(v)))

    @field_validator("targets")
    @classmethod
    def _targets(cls, targets: dict[str, Target]) -> dict[str, Target]:
        for name, target in targets.items():
            task = tasks.TASKS.get(name)
            if task is None or not task.target:
                known = sorted(t.name for t in tasks.TASKS.values() if t.target)
                raise ValueError(f"unknown target task {name!r} (known: {', '.join(known)})")
            for i, lang in enumerate(target.languages or ()):
                if lang not in task.languages:
                    raise ValueError(f"{name}.languages[{i}]: {lang!r} is not a language of {name} "
                                     f"(XTREME's: {' '.join(task.languages)})")
        return targets

    @field_validator("store")
    @classmethod
    def _store(cls, uri: str) -> str:
        problem = store_uri_problem(uri)
        if problem:
            raise ValueError(problem)
        return uri

    @field_validator("low_resource")
    @classmethod
    def _low_resource(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, str) and value not in LOW_RESOURCE_PRESETS:
            raise ValueError(f"unknown preset {value!r} (presets: {', '.join(LOW_RESOURCE_PRESETS)}; "
                             f"or give a list of language codes)")
        if isinstance(value, list) and not value:
            raise ValueError("an empty list of languages (give a preset or at least one language code)")
        if isinstance(value, list) and "en" in value:
            raise ValueError("English is the training language and cannot be low-resource")
        if isinstance(value, list):
            _unique(value)
        return value

    @model_validator(mode="after")
    def _qa_strides(self) -> SweepConfig:
        if any(tasks.get(t).format == "span_qa" for t in self.intermediate.member_tasks()):
            problem = self.intermediate.hparams.stride_problem()
            if problem:
                raise ValueError(f"intermediate.hparams: {problem}")
        for name in self.targets:
            if tasks.get(name).format == "span_qa":
                problem = self.target_hparams_for(name).stride_problem()
                if problem:
                    raise ValueError(f"targets.{name}: {problem}")
        return self

    # ---- derived views ----
    def languages(self, target: str) -> tuple[str, ...]:
        chosen = self.targets[target].languages
        return tuple(chosen) if chosen else tasks.get(target).languages

    def target_hparams_for(self, target: str) -> Hparams:
        task = tasks.get(target)
        merged = {**task.defaults, **self.target_hparams, **self.targets[target].hparams}
        return Hparams(**merged)

    def low_resource_set(self) -> tuple[str, frozenset[str], str]:
        """(name, languages, criterion) of the low-resource set."""
        if isinstance(self.low_resource, str):
            langs, criterion = LOW_RESOURCE_PRESETS[self.low_resource]
            return self.low_resource, langs, criterion
        return "explicit list", frozenset(self.low_resource), "languages listed in the config"


def _location(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-plain") or str(part).startswith("function-"):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _one_line(path: str, err: ValidationError) -> str:
    errors = err.errors()
    # A misspelled field also shows up as a missing one: name the misspelling.
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    where = _location(first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "missing":
        return f"{path}: {where}: required field is missing"
    if first["type"] == "extra_forbidden":
        missing = [str(e["loc"][-1]) for e in errors if e["type"] == "missing" and e["loc"][:-1] == first["loc"][:-1]]
        close = difflib.get_close_matches(str(first["loc"][-1]), missing, n=1)
        return f"{path}: {where}: unknown field" + (f" (did you mean {close[0]!r}?)" if close else "")
    value = first.get("input")
    shown = "" if isinstance(value, (dict, list)) else f" (value: {value!r})"
    return f"{path}: {where}: {msg}{shown}"


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader, but a key given twice in one mapping is an error (PyYAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults`: its keys may be overridden here
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:  # an unhashable key: SafeLoader reports it
                continue
            if key in first_line:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first given on line {first_line[key]})",
                    key_node.start_mark)
            first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def parse(text: str, source: str) -> SweepConfig:
    """Validate YAML text; `source` names it in error messages."""
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise XferError(f"{source}{line}: malformed YAML: {problem}") from None
    if not isinstance(raw, dict):
        raise XferError(f"{source}: expected a mapping of settings at the top level, got {type(raw).__name__}")
    try:
        return SweepConfig.model_validate(raw)
    except ValidationError as exc:
        raise XferError(_one_line(source, exc)) from None


def _decode(data: bytes, source: str) -> str:
    """UTF-8 text with universal newlines (as Path.read_text gives it); not UTF-8 -> one line with the offset."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise XferError(f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def load(ref: str) -> tuple[SweepConfig, str]:
    """Load a config from a local path or a store URI; returns (config, sha256 of its text)."""
    if "://" in ref:
        from xfer.store import open_store
        from xfer.uris import check_store_uri

        base, _, key = ref.rpartition("/")
        check_store_uri(base, f"config {ref!r}: store URI")
        text = _decode(open_store(base).get_bytes(key), ref)
    else:
        path = Path(ref)
        if path.is_dir():
            raise XferError(f"{ref}: is a folder, not a config file")
        if not path.is_file():
            raise XferError(f"config file not found: {ref}")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise XferError(f"{ref}: cannot read the config ({exc.strerror})") from None
        text = _decode(data, ref)
    return parse(text, ref), hashlib.sha256(text.encode("utf-8")).hexdigest()
