"""Reading a task's split for one language, from the Hugging Face Hub or from a local mirror of it.

A local mirror holds `<dataset id>/<config>/<split>.jsonl` (or `.parquet`) in the Hub's own schema; the
bundled fixtures are such a mirror. Both go through `datasets.load_dataset` and the same column mapping,
so the demo exercises the very code that reads the Hub.

From the Hub, a split is read at the commit the plan resolved its ref to (`revisions`, {(dataset, ref): sha};
xfer/revisions.py), and that commit is part of its fingerprint; without one (outside a plan) at its ref.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Mapping

from xfer import userfiles
from xfer.errors import TemporaryFailure, XferError
from xfer.tasks import USER_FILES, Split, Task

BUNDLED = Path(__file__).parent / "fixtures" / "hub"


class DataSource:
    """`spec` is "hub", "bundled" (the fixtures shipped with xfer), or a folder mirroring the Hub layout.
    `files` maps a task with user-supplied data (CCG) to its folder (xfer/userfiles.py)."""

    def __init__(self, spec: str, files: Mapping[str, str] | None = None,
                 revisions: Mapping[tuple[str, str], str] | None = None):
        self.spec = spec
        self.files = dict(files or {})
        self.revisions = dict(revisions or {})
        self.hub_reads: set[tuple[str, str, str, str | None]] = set()  # Hub splits fingerprinted (staging)
        self.staged = None  # (dataset, config, split, revision) -> local copy of a Hub split or None (staging)
        if spec == "hub":
            self.root = None
        else:
            self.root = BUNDLED if spec == "bundled" else Path(spec).expanduser()
            if not self.root.is_dir():
                raise XferError(f"data folder not found: {self.root} (config field 'data')")

    def pin(self, revisions: Mapping[tuple[str, str], str]) -> None:
        """Read Hub splits at these commits ({(dataset, ref): sha}, a plan's `dataset_revisions()`)."""
        self.revisions = dict(revisions)

    def revision(self, split: Split) -> str | None:
        """The revision a Hub split is read at: its pinned commit, else its declared ref (None: main)."""
        return self.revisions.get((split.dataset, split.revision or "main"), split.revision)

    def _file(self, split: Split, config: str) -> Path:
        assert self.root is not None
        base = self.root / split.dataset / config / split.split
        for suffix in (".jsonl", ".parquet"):
            if base.with_suffix(suffix).is_file():
                return base.with_suffix(suffix)
        raise XferError(f"no data for {split.dataset} {config} {split.split}: {base}.jsonl not found")

    def load(self, task: Task, split: Split, lang: str = "en"):
        """The split's rows for `lang`, filtered by `split.where` and `split.prefix`, as a `datasets.Dataset`."""
        import datasets

        datasets.disable_progress_bars()  # the runner shows its own progress
        if split.dataset == USER_FILES:
            return userfiles.load(self.user_file(task, split))
        config = split.config_for(task.code(lang), lang)
        path = self._file(split, config) if self.root is not None else self._staged_file(split, config)
        if path is None:
            try:
                ds = datasets.load_dataset(split.dataset, config, split=split.split, revision=self.revision(split))
            except TemporaryFailure:  # a preemption (SIGTERM) while loading is not a data problem
                raise
            except Exception as exc:  # the Hub client raises many types; name the dataset, keep one line
                raise XferError(f"cannot load {split.dataset} {config} {split.split} from the Hub: "
                                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
        else:
            ds = _load_local(path)
        wanted = [c for col in split.columns.values() for c in (col if isinstance(col, tuple) else (col,))]
        missing = [col for col in wanted if col not in ds.column_names]
        if missing:
            raise XferError(f"{split.dataset} {config} {split.split}: column {missing[0]!r} not found "
                            f"(columns: {', '.join(ds.column_names)})")
        if self.root is not None:
            _check_column_types(ds, split, path)
        for column, template in split.where.items():
            value = template.format(lang=lang, code=task.code(lang))
            ds = ds.filter(lambda values: [v == value for v in values], batched=True, input_columns=[column])
        for column, template in split.prefix.items():
            start = template.format(lang=lang, code=task.code(lang))
            ds = ds.filter(lambda values: [str(v).startswith(start) for v in values], batched=True,
                           input_columns=[column])
        if len(ds) == 0:
            raise XferError(f"{split.dataset} {config} {split.split} has no rows for language {lang!r}")
        return ds

    def fingerprint(self, task: Task, split: Split, lang: str = "en") -> str:
        """What identifies the data a job reads: the Hub coordinates, or the local file's sha256."""
        if split.dataset == USER_FILES:
            return f"sha256:{_sha256(self.user_file(task, split))}"
        config = split.config_for(task.code(lang), lang)
        where = ",".join([f"{k}={v.format(lang=lang, code=task.code(lang))}" for k, v in split.where.items()] +
                         [f"{k}^={v.format(lang=lang, code=task.code(lang))}" for k, v in split.prefix.items()])
        if self.root is None:
            self._note_hub_read(split, config)
            return f"hub:{split.dataset}:{config}:{split.split}@{self.revision(split) or 'main'}[{where}]"
        return f"sha256:{_sha256(self._file(split, config))}[{where}]"

    def _note_hub_read(self, split: Split, config: str) -> None:
        """Record a Hub split the plan reads: the stage job copies each into the store (xfer/staging.py)."""
        self.hub_reads.add((split.dataset, config, split.split, self.revision(split)))

    def _staged_file(self, split: Split, config: str) -> Path | None:
        """A local copy of a Hub split staged in the store (`staging.attach` sets `staged`), else None."""
        return self.staged(split.dataset, config, split.split, self.revision(split)) if self.staged else None

    def user_file(self, task: Task, split: Split) -> Path:
        """The user-supplied file of a split; a missing one is an error saying how to supply it."""
        problem = userfiles.problem(task, self.files.get(task.name))
        if problem:
            raise XferError(problem)
        return userfiles.split_file(self.files[task.name], split.split)


@lru_cache(maxsize=None)
def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- local files: problems named by file and line ------------------------------------------------------------
# `datasets` reports an empty JSONL file as a bare StopIteration and a malformed line as DatasetGenerationError
# without the line; a column whose rows disagree in type loads silently (as JSON). Local files are checked here
# so that a job fails with "file:line: ..." instead.

def _load_local(path: Path):
    """A local .jsonl or .parquet file as a `datasets.Dataset`; a file that cannot be read is one XferError
    line naming the file (and, for JSONL, the line)."""
    import datasets

    kind = "json" if path.suffix == ".jsonl" else "parquet"
    if path.stat().st_size == 0:
        raise XferError(f"{path}: empty file (no rows)")
    try:
        return datasets.load_dataset(kind, data_files=str(path), split="train")
    except TemporaryFailure:  # a preemption (SIGTERM) while loading is not a data problem
        raise
    except Exception as exc:  # StopIteration, DatasetGenerationError, ArrowInvalid...: find what is wrong
        problem = _jsonl_problem(path) if kind == "json" else None
        if problem is None:
            first = str(exc).splitlines()[0] if str(exc) else ""
            problem = f"{path}: cannot read as {kind}: {type(exc).__name__}: {first}"
        raise XferError(problem) from exc


def _jsonl_lines(path: Path):
    """(line number, row) for each non-blank line; a line that is not a JSON object is an XferError."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise XferError(f"{path}:{number}: not UTF-8 text ({exc.reason} at byte {exc.start} of the line)")
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise XferError(f"{path}:{number}: malformed JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(row, dict):
                raise XferError(f"{path}:{number}: expected a JSON object per line, got {type(row).__name__}")
            yield number, row


def _jsonl_problem(path: Path) -> str | None:
    """The first problem of a JSONL file as "file:line: ..." (None if every line is a JSON object)."""
    try:
        if sum(1 for _ in _jsonl_lines(path)) == 0:
            return f"{path}: empty file (no rows)"
    except XferError as exc:
        return str(exc)
    return None


# What each field of a format holds. A field not listed (answers, choices) has a nested layout of its own.
_STRING_FIELDS = frozenset({"text", "text_pair", "question", "context", "source", "target", "id", "source_id",
                            "target_id", "choices"})


def _expected(field: str, split: Split, tuple_column: bool) -> str | None:
    if field in _STRING_FIELDS and (tuple_column or field != "choices"):
        return "string"
    if field == "label":
        return "string" if split.labels_are == "name" else "label"
    if field == "tokens":
        return "strings"
    if field == "tags":
        return "string labels" if split.labels_are == "name" else "labels"
    return None


def _value_ok(value, expected: str) -> bool:
    def label(v):
        return isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool))

    if expected == "string":
        return isinstance(value, str)
    if expected == "label":
        return label(value)
    if expected in ("strings", "string labels"):
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return isinstance(value, list) and all(label(v) for v in value)  # labels


def _feature_ok(feature, expected: str) -> bool:
    import datasets

    def scalar(f, kinds):
        if isinstance(f, datasets.ClassLabel):
            return "int" in kinds
        if not isinstance(f, datasets.Value):
            return False
        dtype = f.dtype
        return ("str" in kinds and dtype in ("string", "large_string")) or \
               ("int" in kinds and dtype.startswith(("int", "uint")))

    inner = getattr(feature, "feature", None)
    if expected == "string":
        return scalar(feature, ("str",))
    if expected == "label":
        return scalar(feature, ("str", "int"))
    if inner is None or isinstance(feature, (datasets.Value, datasets.ClassLabel)):
        return False
    if expected in ("strings", "string labels"):
        return scalar(inner, ("str",))
    return scalar(inner, ("str", "int"))  # labels


_DESCRIBE = {"string": "a string", "label": "an integer or a string", "strings": "a list of strings",
             "string labels": "a list of strings", "labels": "a list of integers or strings"}


def _check_column_types(ds, split: Split, path: Path) -> None:
    """Each column a format reads holds what it needs (a float label, a number for a text...): else one
    XferError line naming file, line (JSONL) or file (parquet), column and value."""
    for field_name, columns in split.columns.items():
        for column in columns if isinstance(columns, tuple) else (columns,):
            expected = _expected(field_name, split, isinstance(columns, tuple))
            if expected is None or (_feature_ok(ds.features[column], expected) and
                                    ds.data.column(column).null_count == 0):
                continue
            if path.suffix == ".jsonl":
                for number, row in _jsonl_lines(path):
                    value = row.get(column)
                    if not _value_ok(value, expected):
                        raise XferError(f"{path}:{number}: column {column!r}: {value!r} is not "
                                        f"{_DESCRIBE[expected]} ({split.dataset} {split.split} {field_name})")
            if ds.data.column(column).null_count:
                raise XferError(f"{path}: column {column!r}: {ds.data.column(column).null_count} rows hold null, "
                                f"expected {_DESCRIBE[expected]} ({split.dataset} {split.split} {field_name})")
            raise XferError(f"{path}: column {column!r} holds {ds.features[column]}, expected "
                            f"{_DESCRIBE[expected]} ({split.dataset} {split.split} {field_name})")
