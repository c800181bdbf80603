"""From a sweep config to a plan: the list of jobs, each with a content-addressed id.

A job's id is a hash of exactly what determines its output: its kind, its parameters (task, budget, seed,
hyperparameters, languages, a fingerprint of the data it reads - from the Hub, the commit each split is read
at, resolved when planning (xfer/revisions.py) -, the model it starts from - which names the id of the job that
produced it, or the Hub commit of a pretrained model) and the fingerprint of its code (xfer/fingerprint.py:
its recipe and formats and what they import, and the versions of the numeric libraries). The same work therefore has the same id in every
plan, is stored once and is never done twice; a changed setting changes the ids of the jobs it touches and
of those downstream of them, and no others. The budget-0 baseline has no intermediate job: its target jobs
start from the pretrained model, and are shared by every intermediate task of the sweep. Target tasks whose
training is identical (`target_groups`: XQuAD and MLQA both fine-tune on SQuAD v1.1) share one target job,
which trains once and evaluates each task of the group on its own languages.

Reuse on purpose: given the committed jobs of an earlier plan (`reusable_outputs`, from `xfer plan` JSON), a
job whose kind, parameters and dependencies equal one of them takes that job's id, and so its output,
whatever code computed it (`xfer run/plan/job run --reuse-outputs-of OLD_PLAN.json`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from xfer import __version__, fingerprint, revisions, tasks
from xfer.config import SweepConfig
from xfer.data import BUNDLED, DataSource
from xfer.errors import XferError
from xfer.tasks import USER_FILES

STAGES = ("build", "intermediate", "evaluate", "aggregate")
STAGE_OF = {"build": "build", "intermediate": "intermediate", "target": "evaluate", "retrieval": "evaluate",
            "aggregate": "aggregate"}


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    params: dict
    deps: tuple[str, ...] = ()
    code: str = ""  # the fingerprint of the job's code (xfer/fingerprint.py), or of the reused job's
    reused: bool = False  # the id and output are an earlier plan's job's (`reusable_outputs`)

    @property
    def stage(self) -> str:
        return STAGE_OF[self.kind]

    @property
    def output(self) -> str:
        """Store prefix of the job's committed output."""
        return f"jobs/{self.id}/output"

    @property
    def tasks(self) -> tuple[str, ...]:
        """The tasks the job trains or evaluates: a target job's group (`params["tasks"]`), else its one task."""
        p = self.params
        return tuple(p["tasks"]) if "tasks" in p else ((p["task"],) if "task" in p else ())

    @property
    def label(self) -> str:
        p = self.params
        if self.kind == "intermediate":
            return f"intermediate {p['task']} budget={p['budget']} seed={p['seed']}"
        if self.kind in ("target", "retrieval"):
            seed = f" seed={p['seed']}" if "seed" in p else ""
            return f"{self.kind} {'+'.join(self.tasks)} from {p['from']}{seed}"  # a target job: its group
        return self.kind

    def to_json(self) -> dict:
        out = {"id": self.id, "kind": self.kind, "stage": self.stage, "label": self.label,
               "deps": list(self.deps), "params": self.params, "code": self.code}
        if self.reused:
            out["reused"] = True
        return out


def job_formats(kind: str, params: Mapping) -> tuple[str, ...]:
    """The formats of the tasks a job trains or evaluates: the format modules its recipe runs."""
    if kind not in ("intermediate", "target", "retrieval"):
        return ()
    names = params["mixture"]["tasks"] if "mixture" in params else params.get("tasks") or [params["task"]]
    return tuple(sorted({tasks.get(name).format for name in names}))


def input_key(kind: str, params: Mapping, deps) -> str:
    """A hash of a job's inputs other than its code: equal for the same work done by other code."""
    keyed = {k: v for k, v in params.items() if k != "from"}  # `from` is a human label, not an input
    return hashlib.sha256(json.dumps({"kind": kind, "params": keyed, "deps": sorted(set(deps))},
                                     sort_keys=True).encode()).hexdigest()


def read_plan_file(ref: str) -> dict:
    """A plan's JSON as `xfer plan` printed it, from a local path or a store URI."""
    if "://" in ref:
        from xfer.store import open_store

        base, _, key = ref.rpartition("/")
        text = open_store(base).get_bytes(key).decode("utf-8")
    else:
        if not Path(ref).is_file():
            raise XferError(f"plan file not found: {ref} (--reuse-outputs-of)")
        text = Path(ref).read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise XferError(f"{ref}: not a plan's JSON (`xfer plan CONFIG > FILE`): {exc}") from None


def reusable_outputs(old_plan: Mapping, is_committed: Callable[[str], bool]) -> dict[str, tuple[str, str]]:
    """{input key: (id, code)} of each job of an earlier plan (its `xfer plan` JSON) whose output is
    committed (`is_committed(prefix)`), the aggregate excepted (it always runs)."""
    try:
        jobs = [(j["id"], j["kind"], j["params"], j["deps"], j.get("code") or str(old_plan.get("code_version")))
                for j in old_plan["jobs"]]
    except (KeyError, TypeError) as exc:
        raise XferError(f"not a plan written by `xfer plan`: no {exc} in its jobs") from None
    return {input_key(kind, params, deps): (job_id, code) for job_id, kind, params, deps, code in jobs
            if kind != "aggregate" and is_committed(f"jobs/{job_id}/output")}


@dataclass
class Plan:
    name: str
    config_sha256: str
    jobs: list[Job] = field(default_factory=list)
    revisions: list[revisions.Revision] = field(default_factory=list)  # the Hub commits the plan reads
    reuse: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # `reusable_outputs` of an old plan

    def __post_init__(self) -> None:
        self.by_id = {job.id: job for job in self.jobs}

    def add(self, kind: str, params: dict, deps: tuple[str, ...] = ()) -> Job:
        key = input_key(kind, params, deps)
        if key in self.reuse:
            (job_id, code), reused = self.reuse[key], True
        else:
            code, reused = fingerprint.job_code(kind, job_formats(kind, params)), False
            keyed = {k: v for k, v in params.items() if k != "from"}  # shared baseline jobs differ only in it
            job_id = hashlib.sha256(json.dumps({"kind": kind, "params": keyed, "deps": sorted(set(deps)),
                                                "code": code}, sort_keys=True).encode()).hexdigest()[:16]
        job = Job(job_id, kind, params, tuple(sorted(set(deps))), code, reused)
        if job.id not in self.by_id:
            self.jobs.append(job)
            self.by_id[job.id] = job
        return self.by_id[job.id]

    def stage(self, name: str) -> list[Job]:
        return [job for job in self.jobs if job.stage == name]

    def dataset_revisions(self) -> dict[tuple[str, str], str]:
        """{(dataset, ref): commit sha} of the Hub datasets the plan reads (`DataSource.pin`)."""
        return {(r.repo, r.ref): r.sha for r in self.revisions if r.kind == "dataset"}

    @property
    def code_version(self) -> str:
        """The package version and a digest of every job's code fingerprint: changes when any job's code does."""
        codes = sorted({job.code for job in self.jobs})
        return f"{__version__}+{hashlib.sha256(json.dumps(codes).encode()).hexdigest()[:12]}"

    def to_json(self) -> dict:
        return {"name": self.name, "config_sha256": self.config_sha256, "code_version": self.code_version,
                "libraries": fingerprint.library_versions(),
                "revisions": [r.to_json() for r in self.revisions],
                "pins": {r.repo: r.sha for r in self.revisions if r.kind == "dataset"},
                "jobs": [job.to_json() for job in self.jobs]}


def _bundled_fingerprint() -> str:
    digest = hashlib.sha256()
    for path in sorted(BUNDLED.rglob("*.jsonl")):
        digest.update(str(path.relative_to(BUNDLED)).encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _base_model(cfg: SweepConfig, plan: Plan) -> tuple[dict, tuple[str, ...]]:
    spec = cfg.model
    if spec.build is not None:
        build = plan.add("build", {"tiny": spec.build.model_dump(), "corpus": _bundled_fingerprint()})
        return {"store": build.output}, (build.id,)
    if Path(spec.name).expanduser().is_dir():
        return {"path": str(Path(spec.name).expanduser().resolve())}, ()
    model = revisions.resolve(spec.name, spec.revision, "model")  # a Hub model: read at the commit
    plan.revisions.append(model)
    return {"hub": spec.name, "revision": model.sha}, ()


def read_tasks(cfg: SweepConfig) -> list[tasks.Task]:
    """Every task whose data the sweep reads: the intermediate tasks (alone or in mixtures), the targets."""
    return [tasks.get(name) for name in dict.fromkeys(cfg.intermediate.member_tasks() + list(cfg.targets))]


def hub_datasets(cfg: SweepConfig) -> dict[str, set[str | None]]:
    """{Hub dataset id: the refs read} of every split the sweep reads (with `data: hub`)."""
    out: dict[str, set[str | None]] = {}
    for task in read_tasks(cfg):
        for split in (*tasks.splits(task.train), *tasks.splits(task.dev), task.test, task.lang_dev):
            if split is not None and split.dataset != USER_FILES:
                out.setdefault(split.dataset, set()).add(split.revision)
    return out


def _check_user_files(cfg: SweepConfig, data: DataSource) -> None:
    """User-supplied files are checked before anything asks the Hub: a missing one is the first error."""
    for task in read_tasks(cfg):
        for split in tasks.splits(task.train):
            if split.dataset == USER_FILES:
                data.user_file(task, split)


def _fingerprints(data: DataSource, task: tasks.Task, value) -> str | list[str] | None:
    """One split's fingerprint, a list for a task reading several splits (ANLI+), None for no split."""
    prints = [data.fingerprint(task, split) for split in tasks.splits(value)]
    return prints[0] if isinstance(value, tasks.Split) else (prints or None)


def _train_dev(data: DataSource, task: tasks.Task) -> dict:
    """The fingerprints of a task's English training and dev data."""
    return {"train": _fingerprints(data, task, task.train), "dev": _fingerprints(data, task, task.dev)}


def _intermediate_data(cfg: SweepConfig, data: DataSource, name: str) -> dict:
    """The data of an intermediate job; a mixture also names its member tasks, cap and sampling."""
    mixture = cfg.intermediate.mixture(name)
    if mixture is None:
        return {"data": _train_dev(data, tasks.get(name))}
    return {"mixture": {"tasks": list(mixture.tasks), "cap": mixture.cap, "sampling": mixture.sampling},
            "data": {t: _train_dev(data, tasks.get(t)) for t in mixture.tasks}}


def _lang_dev_fingerprints(data: DataSource, task, langs) -> dict[str, str | None]:
    """The target-language dev sets the oracle selection reads; None where a language has none."""
    out = {}
    for lang in langs:
        try:
            out[lang] = data.fingerprint(task, task.lang_dev, lang) if task.lang_dev else None
        except XferError:  # a local mirror without that dev file: no oracle for the language
            out[lang] = None
    return out


def _declaration(value):
    """A split declaration (or a tuple of them) as plain JSON-able data, for comparing tasks' training data."""
    if dataclasses.is_dataclass(value):
        return {f.name: _declaration(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _declaration(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_declaration(v) for v in value]
    return value


def _training_key(cfg: SweepConfig, data: DataSource, name: str) -> str:
    """Everything of a target task that its fine-tuning and English-dev model selection depend on: format,
    head and labels, the training and English dev split declarations and the data they read, the resolved
    hyperparameters. (Seed and starting model are the same for every task of one start.)"""
    task = tasks.get(name)
    return json.dumps({
        "format": task.format, "labels": list(task.labels), "labels_from_data": task.labels_from_data,
        "unanswerable": task.unanswerable,
        "splits": {"train": _declaration(task.train), "dev": _declaration(task.dev)},
        "data": _train_dev(data, task),
        "hparams": cfg.target_hparams_for(name).model_dump(),
    }, sort_keys=True)


def target_groups(cfg: SweepConfig, data: DataSource) -> dict[str, tuple[str, ...]]:
    """Each trained (non-retrieval) target task of the sweep -> the tasks it shares a target job with: those
    whose training is identical (`_training_key`), itself included, in the registry's order. XQuAD and MLQA
    both fine-tune on SQuAD v1.1, so with the same hyperparameters they form one group."""
    order = list(tasks.TASKS)
    groups: dict[str, list[str]] = {}
    for name in sorted((n for n in cfg.targets if tasks.get(n).format != "retrieval"), key=order.index):
        groups.setdefault(_training_key(cfg, data, name), []).append(name)
    return {name: tuple(group) for group in groups.values() for name in group}


def _target_params(cfg: SweepConfig, data: DataSource, group: tuple[str, ...]) -> dict:
    """The parameters of a target job that trains once for the tasks of `group`: the shared training (train
    and English dev data, hyperparameters, selection) and, per task, its languages and the test and
    target-language dev data it is evaluated on."""
    lead = tasks.get(group[0])  # every task of the group trains identically: any one stands for the training
    per_task = {}
    for name in group:
        task, langs = tasks.get(name), cfg.languages(name)
        per_task[name] = {"languages": list(langs),
                          "data": {"test": {lang: data.fingerprint(task, task.test, lang) for lang in langs},
                                   # read only by the oracle pass (`selection.oracle`)
                          "lang_dev": _lang_dev_fingerprints(data, task, langs) if cfg.selection.oracle else {}}}
    return {"tasks": per_task, "hparams": cfg.target_hparams_for(lead.name).model_dump(),
            "selection": cfg.selection.model_dump(),
            "data": _train_dev(data, lead)}


def build_plan(cfg: SweepConfig, config_sha256: str = "", reuse: Mapping[str, tuple[str, str]] | None = None,
               data: DataSource | None = None) -> Plan:
    """The plan of a sweep. `reuse`: `reusable_outputs` of an earlier plan, whose committed jobs are taken over
    where the inputs are equal (on purpose, whatever code computed them). `data` (default: the config's)
    records the Hub splits the plan reads (xfer/staging.py)."""
    plan = Plan(cfg.name, config_sha256, reuse=dict(reuse or {}))
    data = data or DataSource(cfg.data, files=cfg.intermediate.files)
    _check_user_files(cfg, data)
    if cfg.data == "hub":
        plan.revisions.extend(revisions.resolve_datasets(hub_datasets(cfg), cfg.revisions))
        data.pin(plan.dataset_revisions())
    base, base_deps = _base_model(cfg, plan)
    cells = []  # (intermediate task, budget, seed, target task) -> the job holding its results

    starts = []  # (intermediate task, budget, seed, model ref, deps, label)
    for itask_name in cfg.intermediate.names():  # single tasks, then mixtures
        for budget in sorted(cfg.intermediate.budgets):
            for seed in cfg.seeds:
                if budget == 0:
                    starts.append((itask_name, 0, seed, base, base_deps, "pretrained"))
                    continue
                job = plan.add("intermediate", {
                    "task": itask_name, "budget": budget, "seed": seed, "model": base,
                    "hparams": cfg.intermediate.hparams.model_dump(), **_intermediate_data(cfg, data, itask_name),
                }, base_deps)
                starts.append((itask_name, budget, seed, {"store": job.output}, (job.id,),
                               f"{itask_name}@{budget}"))

    groups = target_groups(cfg, data)
    shared = {group: _target_params(cfg, data, group) for group in set(groups.values())}
    for itask_name, budget, seed, model, deps, label in starts:
        for target_name in cfg.targets:
            task = tasks.get(target_name)
            langs = cfg.languages(target_name)
            if task.format == "retrieval":
                hp = cfg.target_hparams_for(target_name)
                test = {lang: data.fingerprint(task, task.test, lang) for lang in langs}
                layer = cfg.targets[target_name].layer
                read = {"test": test}
                if task.retrieval == "bucc":  # the mining threshold is chosen on each language's sample gold
                    read["dev"] = {lang: data.fingerprint(task, task.lang_dev, lang) for lang in langs}
                job = plan.add("retrieval", {
                    "task": target_name, "from": label, "model": model, "languages": list(langs),
                    "layer": cfg.retrieval_layer if layer is None else layer,
                    "hparams": {"max_length": hp.max_length, "batch_size": hp.batch_size},
                    "data": read}, deps)
            else:  # one job per group of identically trained tasks: the group's later tasks find it added
                job = plan.add("target", {**shared[groups[target_name]], "from": label, "seed": seed,
                                          "model": model}, deps)
            cells.append({"intermediate_task": itask_name, "budget": budget, "seed": seed,
                          "target_task": target_name, "languages": list(langs), "job": job.id})

    low_name, low_langs, criterion = cfg.low_resource_set()
    plan.add("aggregate", {
        "name": cfg.name, "cells": cells,
        "low_resource": {"name": low_name, "languages": sorted(low_langs), "criterion": criterion},
        "report": cfg.report.model_dump(),
    }, tuple(cell["job"] for cell in cells))
    return plan
