"""Result tables: the results.csv format (one metric of one language of one cell per row), row validation,
cells (intermediate task, budget, seed, target task, language) and the cells a report expects, and the
low-resource set.

A hand-written table may give a task's published score without per-language scores: language `avg` ("the
task's average over its languages"); it cannot be mixed with per-language rows of the same task for the same
intermediate task and budget.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from xfer import languages as L
from xfer.errors import XferError
from xfer.xtreme import TASK_LANGUAGES, TASK_METRICS

COLUMNS = ("intermediate_task", "budget", "seed", "target_task", "language", "metric", "value")
REPORT_FILES = ("results.csv", "summary.md", "summary.json", "plot.png")
ORACLE_FILE = "results_oracle.csv"  # written beside REPORT_FILES when the report has an oracle section
ENGLISH = "en"  # the training language: in the task scores, never in the low/high-resource averages
AVG = "avg"  # hand-written tables: the task's published average over its languages, no per-language scores
_TASK_ORDER = {task: i for i, task in enumerate(TASK_METRICS)}
EXPLICIT = "explicit list"


@dataclass(frozen=True)
class Cell:
    """One planned evaluation: every metric of its task for one language of one target run."""

    intermediate_task: str
    budget: int
    seed: int
    target_task: str
    language: str

    def label(self) -> str:
        return f"{self.target_task}/{self.language}/seed={self.seed}"


@dataclass(frozen=True)
class LowResourceSet:
    """The languages counted as low-resource, the one-sentence criterion that picked them, and its source."""

    name: str
    languages: frozenset[str]
    criterion: str
    source: str  # where the criterion comes from; "explicit list" for a list given by the user

    def __post_init__(self):
        if ENGLISH in self.languages:
            raise XferError(f"low-resource set {self.name!r} contains {ENGLISH!r}, the training language")
        if AVG in self.languages:
            raise XferError(f"low-resource set {self.name!r} contains {AVG!r}, which is not a language")
        if not self.criterion.strip():
            raise XferError(f"low-resource set {self.name!r} has no criterion")

    def to_json(self) -> dict:
        return {"name": self.name, "languages": sorted(self.languages), "criterion": self.criterion,
                "source": self.source}


def low_resource_set(spec: str | Iterable[str], listed_in: str = "the config") -> LowResourceSet:
    """A named preset (`xfer.languages.LOW_RESOURCE_PRESETS`, with its criterion and source), or an explicit
    list of language codes, labelled "explicit list"; `listed_in` says where the list was given."""
    if isinstance(spec, str):
        if spec not in L.LOW_RESOURCE_PRESETS:
            raise XferError(f"unknown low-resource preset {spec!r} (presets: {', '.join(L.LOW_RESOURCE_PRESETS)}; "
                            f"or give a list of language codes)")
        langs, criterion = L.LOW_RESOURCE_PRESETS[spec]
        return LowResourceSet(spec, frozenset(langs), criterion, L.LOW_RESOURCE_SOURCE)
    return LowResourceSet(EXPLICIT, frozenset(spec), f"languages listed in {listed_in}", EXPLICIT)



def _integer(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        return int(value.strip())
    raise ValueError


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError
    return float(value)


def _check_row(row: dict, where: str) -> dict:
    """A clean, typed copy of one result row; XferError naming `where` and the column otherwise."""
    for key in row:
        if key not in COLUMNS:
            raise XferError(f"{where}: unknown column {key!r} (columns: {','.join(COLUMNS)})")
    for key in COLUMNS:
        if key not in row or row[key] is None or row[key] == "":
            raise XferError(f"{where}: column {key!r} is empty or absent")
    out = {}
    for key in ("intermediate_task", "target_task", "language", "metric"):
        if not isinstance(row[key], str) or row[key] != row[key].strip():
            raise XferError(f"{where}: column {key!r}: {row[key]!r} is not a plain name")
        out[key] = row[key]
    for key in ("budget", "seed"):
        try:
            out[key] = _integer(row[key])
        except ValueError:
            raise XferError(f"{where}: column {key!r}: {row[key]!r} is not an integer") from None
    if out["budget"] < 0:
        raise XferError(f"{where}: column 'budget': {out['budget']} is negative")
    try:
        out["value"] = _number(row["value"])
    except ValueError:
        raise XferError(f"{where}: column 'value': {row['value']!r} is not a number") from None
    if not (math.isfinite(out["value"]) and 0.0 <= out["value"] <= 100.0):
        raise XferError(f"{where}: column 'value': {row['value']!r} is not a percentage in [0, 100]")
    task, lang, metric = out["target_task"], out["language"], out["metric"]
    if task not in TASK_METRICS:
        raise XferError(f"{where}: column 'target_task': unknown task {task!r} (known: {' '.join(TASK_METRICS)})")
    if metric not in TASK_METRICS[task]:
        raise XferError(f"{where}: column 'metric': {metric!r} is not a metric of {task} "
                        f"(its metrics: {' '.join(TASK_METRICS[task])})")
    if lang not in TASK_LANGUAGES[task] and lang != AVG:
        raise XferError(f"{where}: column 'language': {lang!r} is not a language of {task} "
                        f"(XTREME's: {' '.join(TASK_LANGUAGES[task])}; or {AVG!r}: the task's average)")
    return out


def _mixing(run: tuple) -> str:
    itask, budget, task = run
    return (f"{itask}@{budget} {task}: both language {AVG!r} (the task's average) and per-language rows; "
            f"give one or the other")


def _sort_key(row: dict) -> tuple:
    return tuple(row[k] for k in COLUMNS[:-1])


def read_results_csv(path) -> list[dict]:
    """The rows of a results.csv, typed (budget and seed int, value float) and checked."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise XferError(f"{path}: empty file (expected the header {','.join(COLUMNS)})")
            for name in header:
                if name not in COLUMNS:
                    raise XferError(f"{path}:1: unknown column {name!r} (columns: {','.join(COLUMNS)})")
            for name in COLUMNS:
                if header.count(name) != 1:
                    raise XferError(f"{path}:1: column {name!r} appears {header.count(name)} times, expected once")
            rows, first_seen, kind_seen = [], {}, {}
            for fields in reader:
                line = reader.line_num
                if not fields:
                    continue
                if len(fields) != len(header):
                    raise XferError(f"{path}:{line}: {len(fields)} fields, expected {len(header)}")
                row = _check_row(dict(zip(header, fields)), f"{path}:{line}")
                key = _sort_key(row)
                if key in first_seen:
                    raise XferError(f"{path}:{line}: duplicate result for {'/'.join(map(str, key))} "
                                    f"(first on line {first_seen[key]})")
                first_seen[key] = line
                run = (row["intermediate_task"], row["budget"], row["target_task"])
                is_avg = row["language"] == AVG
                first = kind_seen.setdefault(run, (is_avg, line))
                if first[0] != is_avg:
                    raise XferError(f"{path}:{line}: {_mixing(run)} (line {first[1]} has the other kind)")
                rows.append(row)
    except OSError as e:
        raise XferError(f"{path}: cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise XferError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except csv.Error as e:
        raise XferError(f"{path}: not valid CSV: {e}") from None
    return rows


def write_results_csv(rows: Iterable[dict], path) -> None:
    """Write `rows` with exactly the results columns, sorted by every column but the value."""
    clean = sorted((_check_row(row, f"result row {i}") for i, row in enumerate(rows, 1)), key=_sort_key)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in clean:
            writer.writerow([*(row[k] for k in COLUMNS[:-1]), repr(row["value"])])



def _check_cell(cell: Any, where: str) -> Cell:
    if not isinstance(cell, Cell):
        raise XferError(f"{where}: expected a Cell, got {type(cell).__name__}")
    row = {**{k: getattr(cell, k) for k in COLUMNS[:5]}, "metric": TASK_METRICS.get(cell.target_task, ("?",))[0],
           "value": 0.0}
    return Cell(*(_check_row(row, where)[k] for k in COLUMNS[:5]))


def _cells(rows: list[dict], shared_baseline: Iterable[str] = ()) -> dict[Cell, dict[str, float]]:
    """{cell: {metric: value}}; conflicting duplicates are errors, and so is a budget-0 baseline that differs
    between the intermediate tasks of `shared_baseline` (a sweep's: its budget 0 is one shared run). Every other
    intermediate task is its own system (a published table's row), with its own budget-0 numbers."""
    shared = set(shared_baseline)
    values: dict[Cell, dict[str, float]] = {}
    baseline: dict[tuple, tuple[str, float]] = {}
    for i, row in enumerate(rows, 1):
        cell = Cell(*(row[k] for k in COLUMNS[:5]))
        metrics = values.setdefault(cell, {})
        old = metrics.setdefault(row["metric"], row["value"])
        if old != row["value"]:
            raise XferError(f"result row {i}: {cell.intermediate_task}@{cell.budget} {cell.label()} "
                            f"{row['metric']} is both {old!r} and {row['value']!r}")
        if cell.budget == 0 and cell.intermediate_task in shared:
            key = (cell.seed, cell.target_task, cell.language, row["metric"])
            first = baseline.setdefault(key, (cell.intermediate_task, row["value"]))
            if first[1] != row["value"]:
                raise XferError(f"result row {i}: the budget-0 baseline {cell.label()} {row['metric']} is "
                                f"{first[1]!r} for {first[0]} but {row['value']!r} for {cell.intermediate_task}; "
                                f"it is one shared run and must be identical")
    return values


def cell_values(rows: Iterable[dict], shared_baseline: Iterable[str] = ()) -> dict[Cell, dict[str, float]]:
    """{cell: {metric: value}} of result rows, checked (see `_cells`)."""
    return _cells([_check_row(row, f"result row {i}") for i, row in enumerate(rows, 1)], shared_baseline)


def _expected_cells(values: dict[Cell, dict[str, float]], expected: Iterable[Cell] | None) -> set[Cell]:
    """Every cell the report needs: each (intermediate task, budget) with its seeds (`expected` None: every seed
    seen anywhere), crossed with the same (task, language) pairs, so the rows stay comparable: a pair that
    some row lacks counts as missing there. A task that a row gives as `avg` is expected there as `avg` only;
    a row that gives nothing for a task that others give only as `avg` is missing `avg`."""
    if expected is None:
        given = set(values)
        all_seeds = {c.seed for c in given}
        seeds = {(c.intermediate_task, c.budget): all_seeds for c in given}
    else:
        given = {_check_cell(cell, f"expected cell {i}") for i, cell in enumerate(expected, 1)}
        for cell in sorted(values, key=_cell_key):
            if cell not in given:
                raise XferError(f"result for {cell.intermediate_task}@{cell.budget} {cell.label()} is not an "
                                f"expected cell of this sweep")
        seeds = {}
        for c in given:
            seeds.setdefault((c.intermediate_task, c.budget), set()).add(c.seed)
    kinds: dict[tuple, set[bool]] = {}
    for c in given:
        kinds.setdefault((c.intermediate_task, c.budget, c.target_task), set()).add(c.language == AVG)
    for run, kind in sorted(kinds.items()):
        if len(kind) == 2:
            raise XferError(_mixing(run))
    per_language: dict[str, set[str]] = {}
    for c in given:
        langs = per_language.setdefault(c.target_task, set())
        if c.language != AVG:
            langs.add(c.language)
    out = set()
    for (itask, budget), ss in seeds.items():
        for task, langs in per_language.items():
            if kinds.get((itask, budget, task)) == {True} or not langs:
                langs = {AVG}
            out |= {Cell(itask, budget, s, task, lang) for s in ss for lang in langs}
    return out


def table_cells(rows: Iterable[dict]) -> list[Cell]:
    """The cells one results table implies on its own: each of its (intermediate task, budget) rows with every
    seed that the table uses, on every (task, language) pair it has. Given as expected cells for several tables
    reported together, each table keeps its own seeds (published numbers are usually seed 0)."""
    clean = [_check_row(row, f"result row {i}") for i, row in enumerate(rows, 1)]
    return sorted(_expected_cells(_cells(clean), None), key=_cell_key)


def _cell_key(cell: Cell) -> tuple:
    return (cell.intermediate_task, cell.budget, cell.seed, cell.target_task, cell.language)


def _pair_key(pair: tuple[str, str]) -> tuple:
    return (_TASK_ORDER[pair[0]], pair[1])

