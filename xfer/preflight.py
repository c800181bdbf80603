"""`xfer preflight CONFIG`: check a sweep's real setup before it spends any GPU time.

From the configured source (the Hub, a local mirror, the bundled fixtures), for every split, language and
model the sweep will read:

- **revisions** (`data: hub`): every dataset's ref resolves to a commit (xfer/revisions.py), saying when the
  Parquet-conversion fallback was used;
- **data**: each split loads (or the exact error), its columns have the feature types its task's format reads
  (`EXPECTED`), its label values are in range, its row count; span QA: gold answers where their
  `answer_start` says (`context[answer_start:]` starts with the text), counting the rows `xfer.qa` would
  repair and those it would drop (training splits fail above `MAX_DROPPED`; elsewhere the start is not read,
  so misaligned rows only warn);
- **model**: the snapshot (a Hub model at its resolved commit, a local folder; a model the plan builds, as the
  demo's: the build job's committed output when the store has it, else the same model built here without its
  MLM pretraining, which changes no shape), and a strict encoder load into the head of every format the sweep
  trains or evaluates;
- **tokenizer**: it loads, is a fast tokenizer where offsets are needed (span QA, tagging), and round-trips
  sample texts of every language (unknown-token rate at most `MAX_UNK`; inexact round trips only warn);
- **store**: write, commit, read back and delete a probe under a scratch prefix (`preflight/<random>/`).

Prints one table (rich) and one plain line per failure or warning; exit code 0 when nothing failed, 1 when
something did, 75 when every failure was temporary (the Hub or the store unreachable: run it again), 2 for a
config that does not load. Offline with `data: bundled` or a local mirror (and a local or built model).
"""

from __future__ import annotations

import logging
import tempfile
import unicodedata
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from xfer import revisions, tasks
from xfer.errors import TemporaryFailure, XferError

log = logging.getLogger("xfer")

MAX_DROPPED = 0.01  # a training split fails when more of its QA rows than this cannot be aligned
MAX_UNK = 0.05  # a language fails when more of its sampled tokens than this are the unknown token
SAMPLES = 8  # texts per language for the tokenizer round trip
EXIT_FAILED, EXIT_TEMPORARY = 1, TemporaryFailure.exit_code

# The feature types each format reads, per field of a split's `columns` (xfer/tasks.py); see `describe`.
_LABEL = {"index": {"int", "string"}, "name": {"string"}}
EXPECTED = {
    "classification": {"text": {"string"}, "text_pair": {"string"}},
    "tagging": {"tokens": {"list[string]"}},
    "span_qa": {"id": {"string"}, "question": {"string"}, "context": {"string"},
                "answers": {"struct{answer_start: list[int], text: list[string]}"}},
    "multiple_choice": {"context": {"string"}, "question": {"string"},
                        "choices": {"list[string]", "struct{label: list[string], text: list[string]}"}},
    "retrieval": {"source": {"string"}, "target": {"string"}, "source_id": {"string"}, "target_id": {"string"}},
}
TAGS = {"index": {"list[int]"}, "name": {"list[string]"}}


@dataclass
class Check:
    area: str  # revision | data | model | tokenizer | store | plan
    subject: str
    status: str = "ok"  # ok | warn | fail
    detail: str = ""
    temporary: bool = False  # failed because a service was unreachable: worth running again


@dataclass(frozen=True)
class Read:
    """One split a sweep reads for one language, and what reads it."""

    task: tasks.Task
    role: str  # train | dev | test | lang_dev
    split: tasks.Split
    lang: str
    required: bool = True  # a target-language dev split serves only the oracle selection: optional

    @property
    def name(self) -> str:
        source = self.split.config_for(self.task.code(self.lang), self.lang)
        return f"{self.task.name} {self.role} {self.lang} ({self.split.dataset} {source} {self.split.split})"


def reads(cfg) -> list[Read]:
    """Every (task, split, language) the sweep's jobs read, as `xfer.plan.build_plan` fingerprints them."""
    out = []
    for name in cfg.intermediate.member_tasks():
        task = tasks.get(name)
        out += [Read(task, "train", s, "en") for s in tasks.splits(task.train)]
        out += [Read(task, "dev", s, "en") for s in tasks.splits(task.dev)]
    for name in cfg.targets:
        task = tasks.get(name)
        if task.format != "retrieval":
            out += [Read(task, "train", s, "en") for s in tasks.splits(task.train)]
            out += [Read(task, "dev", s, "en") for s in tasks.splits(task.dev)]
        for lang in cfg.languages(name):
            out.append(Read(task, "test", task.test, lang))
            if task.lang_dev is not None:  # BUCC's threshold needs it; elsewhere only the oracle reads it
                out.append(Read(task, "lang_dev", task.lang_dev, lang, required=task.format == "retrieval"))
    return out


# ---- data ---------------------------------------------------------------------------------------------

def describe(feature) -> str:
    """A `datasets` feature as a short type: string, int, float, bool, list[...], struct{k: ...}."""
    import datasets

    if isinstance(feature, datasets.ClassLabel):
        return "int"
    if isinstance(feature, datasets.Value):
        dtype = feature.dtype
        if "string" in dtype:
            return "string"
        if dtype.startswith(("int", "uint")):
            return "int"
        if dtype.startswith("float"):
            return "float"
        return dtype
    if isinstance(feature, dict):
        return "struct{" + ", ".join(f"{k}: {describe(v)}" for k, v in sorted(feature.items())) + "}"
    if isinstance(feature, list) and len(feature) == 1:
        return f"list[{describe(feature[0])}]"
    inner = getattr(feature, "feature", None)
    if inner is not None:  # List, LargeList, Sequence
        return describe(inner) if isinstance(inner, dict) and type(feature).__name__ == "Sequence" \
            else f"list[{describe(inner)}]"
    return type(feature).__name__


def _type_problems(read: Read, ds) -> list[str]:
    split, fmt = read.split, read.task.format
    problems = []
    for fld, columns in split.columns.items():
        if fld == "label":
            wanted = _LABEL[split.labels_are]
        elif fld == "tags":
            wanted = TAGS[split.labels_are]
        else:
            wanted = EXPECTED[fmt].get(fld)
        if isinstance(columns, tuple):  # one column per choice
            wanted = {"string"}
        for column in columns if isinstance(columns, tuple) else (columns,):
            found = describe(ds.features[column])
            if wanted and found not in wanted:
                problems.append(f"column {column!r} ({fld}) is {found}, expected {' or '.join(sorted(wanted))}")
    return problems


def _label_problems(read: Read, ds) -> list[str]:
    """Label values outside the task's labels (index labels: -1, "no gold label", only in training data)."""
    task, split = read.task, read.split
    names = split.label_names or task.labels
    if task.labels_from_data or not names:
        return []

    def bad(value) -> bool:
        if split.labels_are == "name":
            return value not in task.labels
        try:
            index = int(value)
        except (TypeError, ValueError):
            return True
        return not (0 <= index < len(names) or index == -1 and read.role == "train")

    column = split.columns.get("label") or split.columns.get("tags")
    if column is None:
        return []
    values = ds[column]
    if "tags" in split.columns:
        wrong = [v for sentence in values for v in sentence if bad(v)]
        rows = sum(any(bad(v) for v in sentence) for sentence in values)
    else:
        wrong = [v for v in values if bad(v)]
        rows = len(wrong)
    if not wrong:
        return []
    return [f"{rows} rows with labels out of range (e.g. {wrong[0]!r}; labels: {len(names)} "
            f"{'names' if split.labels_are == 'name' else 'indices'})"]


def alignment(contexts, answers) -> dict[str, int]:
    """Rows whose gold answers are not at their `answer_start`: {"misaligned", "repairable", "unrepairable"}
    (repairable: `xfer.qa.align_answer` finds the first answer nearby, as training does)."""
    from xfer.qa import align_answer

    counts = {"misaligned": 0, "repairable": 0, "unrepairable": 0}
    for context, answer in zip(contexts, answers):
        pairs = list(zip(answer["answer_start"], answer["text"]))
        if all(context[int(s):].startswith(t) for s, t in pairs):
            continue
        counts["misaligned"] += 1
        first = pairs[0]
        fixed = align_answer(context, int(first[0]), first[1])
        counts["repairable" if fixed is not None else "unrepairable"] += 1
    return counts


def _qa_problems(read: Read, ds, check: Check) -> list[str]:
    cols = read.split.columns
    counts = alignment(ds[cols["context"]], ds[cols["answers"]])
    if not counts["misaligned"]:
        return []
    note = (f"{counts['misaligned']} rows with answers not at answer_start ({counts['repairable']} repairable, "
            f"{counts['unrepairable']} would be dropped)")
    if read.role == "train" and counts["unrepairable"] > MAX_DROPPED * len(ds):
        return [note + f": more than {MAX_DROPPED:.0%} of the rows"]
    check.status, check.detail = "warn", note
    return []


def check_data(data, read: Read) -> tuple[Check, object | None]:
    """Load one split for one language and check it; (the check, the rows or None)."""
    check = Check("data", read.name)
    try:
        ds = data.load(read.task, read.split, read.lang)
    except XferError as exc:
        check.status, check.detail = ("fail" if read.required else "warn"), str(exc)
        if not read.required:
            check.detail += " (only the oracle selection reads it)"
        return check, None
    except Exception as exc:  # what `datasets` raises for a broken file or a loading script
        check.status, check.detail = "fail", f"{type(exc).__name__}: {_first_line(exc)}"
        return check, None
    problems = _type_problems(read, ds)
    if not problems:
        problems = _label_problems(read, ds)
        if read.task.format == "span_qa" and not problems:
            problems = _qa_problems(read, ds, check)
    if problems:
        check.status, check.detail = "fail", "; ".join(problems)
    elif check.status == "ok":
        check.detail = f"{len(ds)} rows"
    else:
        check.detail = f"{len(ds)} rows; {check.detail}"
    return check, ds


# ---- model and tokenizer ------------------------------------------------------------------------------

def _model_dir(cfg, store, plan, scratch: Path, checks: list[Check]) -> Path | None:
    """The folder of the sweep's base model, or None (a failed check says why)."""
    from xfer import model as models

    spec = cfg.model
    check = Check("model", spec.name or "built by the plan (model.build)")
    checks.append(check)
    try:
        if spec.build is not None:
            build = plan.stage("build")[0] if plan is not None else None
            if build is not None and store is not None and store.is_committed(build.output):
                folder = scratch / "base"
                store.fetch(build.output, folder)
                check.detail = f"the build job's committed output ({build.id})"
                return folder
            check.detail = "built here without MLM pretraining (the build job has not run yet)"
            return _tiny_model(spec.build, scratch / "base")
        if Path(spec.name).expanduser().is_dir():
            check.detail = "local folder"
            return models.resolve({"path": spec.name})
        rev = revisions.resolve(spec.name, spec.revision, "model")
        check.subject = f"{spec.name}@{rev.sha[:12]}"
        folder = models.resolve({"hub": spec.name, "revision": rev.sha})
        check.detail = f"snapshot {folder}"
        return folder
    except TemporaryFailure as exc:
        check.status, check.detail, check.temporary = "fail", str(exc), True
    except Exception as exc:
        check.status, check.detail = "fail", _first_line(exc) if isinstance(exc, XferError) else \
            f"{type(exc).__name__}: {_first_line(exc)}"
    return None


def _tiny_model(spec, out: Path) -> Path:
    """The model `jobs/build.py` builds, minus its MLM pretraining (the shapes and tokenizer are the same)."""
    import torch
    from transformers import AutoModelForMaskedLM

    from xfer import model as models
    from xfer import tiny
    from xfer.data import BUNDLED

    tokenizer = tiny.train_tokenizer(sorted(set(tiny.corpus(BUNDLED))), spec.vocab_size)
    torch.manual_seed(spec.seed)
    net = AutoModelForMaskedLM.from_config(tiny.config(tokenizer, spec), attn_implementation="sdpa")
    models.save(net, tokenizer, out)
    return out


def heads(cfg) -> dict[str, tasks.Task]:
    """Each format the sweep trains or evaluates -> one task that uses it (for its head's size)."""
    out: dict[str, tasks.Task] = {}
    for name in list(cfg.intermediate.member_tasks()) + list(cfg.targets):
        task = tasks.get(name)
        out.setdefault(task.format, task)
    return out


def check_heads(cfg, model_dir: Path) -> list[Check]:
    from xfer import formats
    from xfer import model as models

    checks = []
    for fmt, task in heads(cfg).items():
        check = Check("model", f"encoder into the {fmt} head")
        try:
            labels = None if task.labels_from_data else formats.get(fmt).num_labels(task)
            net = models.build(fmt, model_dir, num_labels=labels or None)
            check.detail = f"{type(net).__name__}, strict encoder load"
            del net
        except Exception as exc:
            check.status, check.detail = "fail", _first_line(exc)
        checks.append(check)
    return checks


def _texts(read: Read, rows) -> list[str]:
    cols = read.split.columns
    out = []
    for fld in ("text", "text_pair", "question", "context", "source", "target", "tokens"):
        if fld in cols and not isinstance(cols[fld], tuple):
            values = rows[cols[fld]][:SAMPLES]
            out += [" ".join(v) if isinstance(v, list) else str(v) for v in values]
    return [t for t in out if t.strip()][:SAMPLES]


def _normal(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).split())


def check_tokenizer(cfg, model_dir: Path, samples: dict[str, list[str]]) -> list[Check]:
    from xfer import model as models

    check = Check("tokenizer", str(cfg.model.name or "built model"))
    try:
        tokenizer = models.load_tokenizer(model_dir)
    except Exception as exc:
        check.status, check.detail = "fail", f"does not load: {_first_line(exc)}"
        return [check]
    needs_offsets = {tasks.get(n).format for n in list(cfg.intermediate.member_tasks()) + list(cfg.targets)} \
        & {"span_qa", "tagging"}
    if needs_offsets and not tokenizer.is_fast:
        check.status, check.detail = "fail", f"not a fast tokenizer: {', '.join(sorted(needs_offsets))} need " \
                                             f"character offsets"
        return [check]
    check.detail = f"{type(tokenizer).__name__}, {len(tokenizer)} tokens"
    checks = [check]
    for lang, texts in sorted(samples.items()):
        row = Check("tokenizer", f"round trip {lang}")
        ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        total = sum(len(i) for i in ids)
        unk = sum(i.count(tokenizer.unk_token_id) for i in ids) if tokenizer.unk_token_id is not None else 0
        exact = sum(_normal(tokenizer.decode(i, clean_up_tokenization_spaces=False)) == _normal(t)
                    for i, t in zip(ids, texts))
        row.detail = f"{exact}/{len(texts)} texts exact, {unk}/{total} unknown tokens"
        if total == 0 or unk > MAX_UNK * total:
            row.status = "fail"
            row.detail += f" (more than {MAX_UNK:.0%})" if total else " (no tokens)"
        elif exact < len(texts):
            row.status = "warn"
        checks.append(row)
    return checks


# ---- store --------------------------------------------------------------------------------------------

def check_store(uri: str, scratch: Path) -> Check:
    """Write, commit, read back and delete a probe under a scratch prefix."""
    from xfer.store import open_store

    check = Check("store", uri)
    prefix = f"preflight/{uuid.uuid4().hex}"
    probe = uuid.uuid4().bytes * 64
    try:
        store = open_store(uri)
        local = scratch / "probe"
        local.mkdir(parents=True)
        (local / "probe.bin").write_bytes(probe)
        store.commit(prefix, local, meta={"preflight": True})
        if store.read_committed(prefix, "probe.bin") != probe:
            raise XferError(f"read back different bytes from {prefix}")
        store.uncommit(prefix)
        if store.is_committed(prefix) or store.list(prefix):
            raise XferError(f"could not delete the probe under {prefix}")
        check.detail = f"write, commit, read back, delete under {prefix}/"
    except TemporaryFailure as exc:
        check.status, check.detail, check.temporary = "fail", str(exc), True
    except Exception as exc:  # XferError/StoreError, or an OSError from the local file system
        check.status = "fail"
        check.detail = _first_line(exc) if isinstance(exc, XferError) else f"{type(exc).__name__}: {_first_line(exc)}"
    return check


# ---- all of it ----------------------------------------------------------------------------------------

def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


def _revision_checks(cfg, pins: dict) -> list[Check]:
    """`data: hub`: resolve each dataset's refs (filling `pins`), one check per (repo, ref)."""
    from xfer.plan import hub_datasets

    checks = []
    for repo, refs in sorted(hub_datasets(cfg).items()):
        for ref in sorted({r or revisions.MAIN for r in refs}):
            check = Check("revision", f"dataset {repo}@{ref}")
            try:
                rev = revisions.resolve(repo, ref, "dataset", cfg.revisions.get(repo))
                pins[(repo, ref)] = rev.sha
                check.detail = f"{rev.sha} ({rev.via})"
                if rev.via.startswith("main:"):
                    check.status = "warn"
            except TemporaryFailure as exc:
                check.status, check.detail, check.temporary = "fail", str(exc), True
            except XferError as exc:
                check.status, check.detail = "fail", str(exc)
            checks.append(check)
    return checks


def run_checks(cfg, store_uri: str, work: Path) -> list[Check]:
    """Every check of the sweep `cfg`, in table order."""
    from xfer.data import DataSource
    from xfer.plan import build_plan
    from xfer.store import open_store

    checks: list[Check] = []
    pins: dict = {}
    if cfg.data == "hub":
        checks += _revision_checks(cfg, pins)
    try:
        data = DataSource(cfg.data, files=cfg.intermediate.files, revisions=pins)
    except XferError as exc:
        return checks + [Check("data", f"data: {cfg.data}", "fail", str(exc))]
    samples: dict[str, list[str]] = {}
    seen: dict[tuple, Check | None] = {}
    unchecked: dict[tuple[str, str], int] = {}
    for read in reads(cfg):
        key = (read.split.dataset, read.split.config_for(read.task.code(read.lang), read.lang), read.split.split,
               tuple(read.split.where.items()), tuple(read.split.prefix.items()), read.lang,
               data.revision(read.split))
        if key in seen:  # the same rows read by another task (XNLI trains on MNLI): checked once
            continue
        ref = (read.split.dataset, read.split.revision or revisions.MAIN)
        if cfg.data == "hub" and read.split.dataset != tasks.USER_FILES and ref not in pins:
            unchecked[ref] = unchecked.get(ref, 0) + 1  # its revision check failed: said once, there
            seen[key] = None
            continue
        check, rows = check_data(data, read)
        seen[key] = check
        checks.append(check)
        if rows is not None and read.role in ("test", "train"):
            samples.setdefault(read.lang, [])
            samples[read.lang] = (samples[read.lang] + _texts(read, rows))[:SAMPLES]

    for check in checks:
        if check.area == "revision" and check.status == "fail":
            repo, _, ref = check.subject.removeprefix("dataset ").partition("@")
            check.detail += f" ({unchecked.get((repo, ref), 0)} splits not checked)"

    plan = store = None
    try:
        plan = build_plan(cfg)
        checks.append(Check("plan", cfg.name, "ok", f"{len(plan.jobs)} jobs"))
    except TemporaryFailure as exc:
        checks.append(Check("plan", cfg.name, "fail", str(exc), temporary=True))
    except XferError as exc:
        checks.append(Check("plan", cfg.name, "fail", str(exc)))
    with tempfile.TemporaryDirectory(dir=_scratch_root(work)) as tmp:
        scratch = Path(tmp)
        store_check = check_store(store_uri, scratch)
        if store_check.status == "ok":
            store = open_store(store_uri)
        model_dir = _model_dir(cfg, store, plan, scratch, checks)
        if model_dir is not None:
            checks += check_heads(cfg, model_dir)
            checks += check_tokenizer(cfg, model_dir, samples)
        checks.append(store_check)
    return checks


def _scratch_root(work: Path) -> str:
    work.mkdir(parents=True, exist_ok=True)
    return str(work)


STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red"}


def report(checks: list[Check], console=None) -> None:
    """One table of every check, then one plain line per warning or failure."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=None if Console().is_terminal else 160)
    table = Table(title="xfer preflight", show_lines=False)
    for column in ("check", "subject", "status", "detail"):
        table.add_column(column, overflow="fold")
    for c in checks:
        table.add_row(c.area, c.subject, f"[{STYLE[c.status]}]{c.status}[/]", c.detail)
    console.print(table)
    for c in checks:
        if c.status != "ok":
            print(f"{c.status}: {c.area}: {c.subject}: {c.detail}")
    failed = sum(c.status == "fail" for c in checks)
    warned = sum(c.status == "warn" for c in checks)
    print(f"preflight: {len(checks)} checks, {failed} failed, {warned} warnings")


def exit_code(checks: list[Check]) -> int:
    failed = [c for c in checks if c.status == "fail"]
    if not failed:
        return 0
    return EXIT_TEMPORARY if all(c.temporary for c in failed) else EXIT_FAILED


def cmd_preflight(args) -> int:
    import os

    from xfer import config as configs

    cfg, _ = configs.load(args.config)  # a config that does not load: XferError, exit 2
    store_uri = args.store or os.environ.get("XFER_STORE") or cfg.store
    checks = run_checks(cfg, store_uri, Path(args.work))
    report(checks)
    return exit_code(checks)


def add_commands(subparsers) -> None:
    """Register `xfer preflight` on the `xfer` argument parser."""
    import os

    p = subparsers.add_parser("preflight", help="check data, model, tokenizer and store before a sweep "
                                                "(exit 0 when all pass; docs/provenance.md)")
    p.add_argument("config", help="sweep config: a YAML path or a store URI")
    p.add_argument("--store", help="store URI (overrides the config and $XFER_STORE)")
    p.add_argument("--work", default=os.environ.get("XFER_WORK", ".xfer/work"), help="local scratch folder")
    p.set_defaults(func=cmd_preflight)
