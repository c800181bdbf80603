"""Reading a task's split for one language, from the Hugging Face Hub or from a local mirror of it.

A local mirror holds `<dataset id>/<config>/<split>.jsonl` (or `.parquet`) in the Hub's own schema; the
bundled fixtures are such a mirror. Both go through `datasets.load_dataset` and the same column mapping,
so the demo exercises the very code that reads the Hub.

From the Hub, a split is read at the commit the plan resolved its ref to (`revisions`, {(dataset, ref): sha};
xfer/revisions.py), and that commit is part of its fingerprint; without one (outside a plan) at its ref.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Mapping

from xfer import userfiles
from xfer.errors import XferError
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
            except Exception as exc:  # the Hub client raises many types; name the dataset, keep one line
                raise XferError(f"cannot load {split.dataset} {config} {split.split} from the Hub: "
                                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
        else:
            kind = "json" if path.suffix == ".jsonl" else "parquet"
            ds = datasets.load_dataset(kind, data_files=str(path), split="train")
        wanted = [c for col in split.columns.values() for c in (col if isinstance(col, tuple) else (col,))]
        missing = [col for col in wanted if col not in ds.column_names]
        if missing:
            raise XferError(f"{split.dataset} {config} {split.split}: column {missing[0]!r} not found "
                            f"(columns: {', '.join(ds.column_names)})")
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
