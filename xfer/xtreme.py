"""XTREME's scoring rules in one place: which metrics make each task's score, the four task categories,
and the two headline averages (`avg_over_tasks`, XTREME's `all_task`; `avg_over_categories`, the
leaderboard's "Avg").

A task's score is the unweighted mean over its languages of its metric, or for the QA tasks
(mean EM + mean F1) / 2. A headline average exists only when every task it needs is present; otherwise it
is None and the mean over what is present is given separately, labelled partial, with the missing tasks.

`score_folder` scores a prediction folder laid out as XTREME's official submission against a label folder
(`<task>/test-<lang>.tsv`, `.json` for QA), reading the same file formats and computing the same metrics
as google-research/xtreme `evaluate.py`; `xfer xtreme-score` (registered by `add_commands`) prints it. By
default a task is scored over all its XTREME languages; `languages="labels"` scores the languages the label
folder has, and marks the result as a language subset. `export_labels` (`xfer xtreme-labels`) writes a
sweep config's gold test labels in that label layout, through each format's `write_labels`.
POS and NER F1 come from the installed seqeval (>= 1.0), whose reading of un-prefixed POS tags differs
from the seqeval 0.0.12 behind XTREME's 2020 POS figures (see `xfer.metrics.seqeval_scores`); token
accuracy is reported beside it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Mapping

from xfer import languages as L
from xfer.errors import XferError

log = logging.getLogger(__name__)

# The metrics that make each task's score, in XTREME's task order; two metrics (QA) -> their mean.
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "xnli": ("accuracy",),
    "pawsx": ("accuracy",),
    "udpos": ("f1",),
    "panx": ("f1",),
    "xquad": ("exact_match", "f1"),
    "mlqa": ("exact_match", "f1"),
    "tydiqa": ("exact_match", "f1"),
    "bucc2018": ("f1",),
    "tatoeba": ("accuracy",),
}

# The leaderboard's four categories.
CATEGORIES: dict[str, tuple[str, ...]] = {
    "classification": ("xnli", "pawsx"),
    "structured_prediction": ("udpos", "panx"),
    "question_answering": ("xquad", "mlqa", "tydiqa"),
    "retrieval": ("bucc2018", "tatoeba"),
}


def task_score(task: str, metric_means: Mapping[str, float]) -> float:
    """A task's score from its per-metric means over languages (QA: (EM + F1) / 2)."""
    if task not in TASK_METRICS:
        raise XferError(f"unknown XTREME task {task!r} (known: {' '.join(TASK_METRICS)})")
    missing = [m for m in TASK_METRICS[task] if m not in metric_means]
    if missing:
        raise XferError(f"{task}: metric {missing[0]!r} is missing (needs {', '.join(TASK_METRICS[task])})")
    values = [float(metric_means[m]) for m in TASK_METRICS[task]]
    return sum(values) / len(values)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def headline(task_scores: Mapping[str, float | None]) -> dict:
    """The two headline averages from task -> score (None or absent = missing).

    Returns {"avg_over_tasks": float | None, "avg_over_categories": float | None, "missing": [tasks],
    "partial": {name: {"value", "tasks", "missing"}}}; a partial entry exists for each headline average
    that is None while at least one task is present (its value is the same mean over what is present:
    over the present tasks, or over the categories with all their tasks present).
    """
    unknown = [t for t in task_scores if t not in TASK_METRICS]
    if unknown:
        raise XferError(f"unknown XTREME task {unknown[0]!r} (known: {' '.join(TASK_METRICS)})")
    present = [t for t in TASK_METRICS if task_scores.get(t) is not None]
    missing = [t for t in TASK_METRICS if t not in present]
    out: dict = {"avg_over_tasks": None, "avg_over_categories": None, "missing": missing, "partial": {}}
    if not present:
        return out
    over_tasks = _mean([float(task_scores[t]) for t in present])
    complete = {c: _mean([float(task_scores[t]) for t in ts]) for c, ts in CATEGORIES.items()
                if all(t in present for t in ts)}
    if not missing:
        out["avg_over_tasks"] = over_tasks
        out["avg_over_categories"] = _mean(list(complete.values()))
        return out
    out["partial"]["avg_over_tasks"] = {"value": over_tasks, "tasks": present, "missing": missing}
    if complete:
        out["partial"]["avg_over_categories"] = {
            "value": _mean(list(complete.values())), "categories": list(complete),
            "tasks": [t for c in complete for t in CATEGORIES[c]], "missing": missing}
    return out


# ---- scoring a prediction folder laid out as XTREME's official submission (google-research/xtreme
# evaluate.py): <task>/test-<lang>.tsv, or .json for the QA tasks, in both the prediction and label folders.

QA_TASKS = ("xquad", "mlqa", "tydiqa")


# The languages each task's score averages over (XTREME's TASK2LANGS, in its order).
TASK_LANGUAGES: dict[str, tuple[str, ...]] = {
    "xnli": L.XNLI, "pawsx": L.PAWSX, "udpos": L.UDPOS, "panx": L.PANX, "xquad": L.XQUAD, "mlqa": L.MLQA,
    "tydiqa": L.TYDIQA, "bucc2018": L.BUCC2018, "tatoeba": L.TATOEBA,
}


def task_languages(task: str) -> tuple[str, ...]:
    """The languages a task's score averages over (XTREME's TASK2LANGS, in its order)."""
    return TASK_LANGUAGES[task]


def _suffix(task: str) -> str:
    return "json" if task in QA_TASKS else "tsv"


def _read_lines(path: Path) -> list[str]:
    """evaluate.py's read_label: every line of the file, stripped (universal newlines, UTF-8)."""
    try:
        with open(path, encoding="utf-8") as f:
            return [line.strip() for line in f]
    except UnicodeDecodeError as exc:
        raise XferError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise XferError(f"{path}: cannot read ({exc.strerror})") from None


def _read_tags(path: Path) -> list[list[str]]:
    """evaluate.py's read_tag: one tag per line, a blank line ends a sentence (so two blank lines in a row
    make an empty sentence, as there)."""
    sentences, sentence = [], []
    for line in _read_lines(path):
        if line:
            sentence.append(line)
        else:
            sentences.append(sentence)
            sentence = []
    if sentence:
        sentences.append(sentence)
    return sentences


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise XferError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise XferError(f"{path}: malformed JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except OSError as exc:
        raise XferError(f"{path}: cannot read ({exc.strerror})") from None


def _read_qa_predictions(path: Path) -> dict[str, str]:
    data = _read_json(path)
    if not isinstance(data, dict):
        raise XferError(f"{path}: expected a JSON object {{question_id: answer_text}}, got {type(data).__name__}")
    for qid, answer in data.items():
        if not isinstance(answer, str):
            raise XferError(f"{path}: the answer to question {qid!r} is {type(answer).__name__}, not a string")
    return data


def _read_qa_labels(path: Path) -> dict[str, list[str]]:
    """SQuAD-format JSON: {"data": [article]} (or the list of articles itself, as evaluate.py accepts);
    article {"paragraphs": [{"qas": [{"id", "answers": [{"text"}]}]}]} -> question id -> gold texts."""
    data = _read_json(path)
    articles = data.get("data") if isinstance(data, dict) else data
    if not isinstance(articles, list):
        raise XferError(f"{path}: expected SQuAD-format JSON with a \"data\" list of articles")
    gold: dict[str, list[str]] = {}
    try:
        for a, article in enumerate(articles):
            for p, paragraph in enumerate(article["paragraphs"]):
                for qa in paragraph["qas"]:
                    qid = str(qa["id"])
                    texts = [answer["text"] for answer in qa["answers"]]
                    where = f"data[{a}].paragraphs[{p}] question {qid!r}"
                    if qid in gold:
                        raise XferError(f"{path}: {where}: duplicate question id")
                    if not texts or not all(isinstance(t, str) for t in texts):
                        raise XferError(f"{path}: {where}: needs at least one answer with a string \"text\"")
                    gold[qid] = texts
    except (KeyError, TypeError) as exc:
        missing = f"key {exc}" if isinstance(exc, KeyError) else str(exc)
        raise XferError(f"{path}: not SQuAD-format JSON ({missing})") from None
    if not gold:
        raise XferError(f"{path}: no questions")
    return gold


def _read_pairs(path: Path) -> set[tuple[str, str]]:
    pairs = set()
    for n, line in enumerate(_read_lines(path), 1):
        fields = line.split("\t")
        if len(fields) != 2 or not all(fields):
            raise XferError(f"{path}: line {n}: expected src_id<TAB>tgt_id, got {line!r}")
        pairs.add((fields[0], fields[1]))
    return pairs


def _read_indices(path: Path) -> list[int]:
    lines = _read_lines(path)
    for n, line in enumerate(lines, 1):
        if not line.isdigit():
            raise XferError(f"{path}: line {n}: expected a target sentence index, got {line!r}")
    return [int(line) for line in lines]


def _same_count(pred_path: Path, label_path: Path, predictions: list, labels: list, what: str) -> None:
    if len(predictions) != len(labels):
        raise XferError(f"{pred_path}: {len(predictions)} {what} but {label_path} has {len(labels)}")
    if not labels:
        raise XferError(f"{label_path}: no {what} to score")


def score_file(task: str, lang: str, prediction_file: Path, label_file: Path) -> dict[str, float]:
    """One language of one task: {metric: value in percent}, as evaluate.py's METRIC_FUNCTION (tagging
    also gets `token_accuracy`, which evaluate.py does not report)."""
    from xfer import bucc, metrics, mlqa

    def located(fn, *args):
        try:
            return fn(*args)
        except XferError as exc:
            raise XferError(f"{prediction_file}: {exc}") from None

    if task in ("xnli", "pawsx"):
        predictions, labels = _read_lines(prediction_file), _read_lines(label_file)
        _same_count(prediction_file, label_file, predictions, labels, "lines")
        return {"accuracy": metrics.accuracy(predictions, labels)}
    if task == "tatoeba":
        predictions, labels = _read_indices(prediction_file), _read_indices(label_file)
        _same_count(prediction_file, label_file, predictions, labels, "lines")
        return {"accuracy": metrics.accuracy(predictions, labels)}
    if task in ("udpos", "panx"):
        predictions, labels = _read_tags(prediction_file), _read_tags(label_file)
        _same_count(prediction_file, label_file, predictions, labels, "sentences")
        if not any(labels):
            raise XferError(f"{label_file}: no tags to score")
        scores = located(metrics.seqeval_scores, predictions, labels)
        return {"f1": scores["f1"], "precision": scores["precision"], "recall": scores["recall"],
                "token_accuracy": metrics.token_accuracy(predictions, labels)}
    if task in QA_TASKS:
        predictions, labels = _read_qa_predictions(prediction_file), _read_qa_labels(label_file)
        unanswered = sum(qid not in predictions for qid in labels)
        if unanswered:
            log.warning("%s: %d of %d questions unanswered (scored 0)", prediction_file, unanswered, len(labels))
        if task == "mlqa":
            return located(mlqa.scores, predictions, labels, lang)
        return located(metrics.squad_scores, predictions, labels)
    if task == "bucc2018":
        labels = _read_pairs(label_file)
        if not labels:
            raise XferError(f"{label_file}: no gold pairs to score")
        scores = bucc.pair_scores(_read_pairs(prediction_file), labels)
        return {"f1": scores["f1"], "precision": scores["precision"], "recall": scores["recall"]}
    raise XferError(f"unknown XTREME task {task!r} (known: {' '.join(TASK_METRICS)})")


LANGUAGE_MODES = ("all", "labels")


def _languages_to_score(task: str, folder: Path, labels: Path, languages: str) -> list[str]:
    """The languages a task is scored over, in XTREME's order: all its XTREME languages ("all"), or those
    with a label file ("labels"); each of them needs a prediction file, and (a label file being needed for
    every prediction file) the prediction and label folders then hold the same languages."""
    langs, suffix = task_languages(task), _suffix(task)
    found = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.name.startswith("test-"):
            continue
        lang, _, ext = path.name[len("test-"):].partition(".")
        if lang not in langs or ext != suffix:
            raise XferError(f"{path}: unexpected file; {task} predictions are test-<lang>.{suffix} "
                            f"for <lang> in {' '.join(langs)}")
        found.append(lang)
    if languages == "all":
        expected = list(langs)
        why = (f"{task} is averaged over all its {len(langs)} languages; --languages labels scores those "
               f"with label files")
    else:
        expected = [lang for lang in langs if lang in found or (labels / task / f"test-{lang}.{suffix}").is_file()]
        why = "--languages labels: every language with a label file is scored"
        if not expected:
            raise XferError(f"{labels / task}: no label files test-<lang>.{suffix} (and no predictions in {folder})")
    missing = [lang for lang in expected if lang not in found]
    if missing:
        raise XferError(f"{folder}: no predictions for {', '.join(f'test-{m}.{suffix}' for m in missing)} "
                        f"({why})")
    return expected


def score_task(task: str, predictions: Path, labels: Path, languages: str = "all") -> dict:
    """{metric: {lang: value}, "avg_<metric>": mean over languages, ..., "avg_metric": the task score}; with
    `languages="labels"` over the languages that have label files, plus "missing_languages" (the task's
    XTREME languages left out) where that is not all of them."""
    folder = predictions / task
    per_metric: dict[str, dict[str, float]] = {}
    scored = _languages_to_score(task, folder, labels, languages)
    for lang in scored:
        name = f"test-{lang}.{_suffix(task)}"
        label_file = labels / task / name
        if not label_file.is_file():
            raise XferError(f"{label_file}: missing (labels for {folder / name})")
        for metric, value in score_file(task, lang, folder / name, label_file).items():
            per_metric.setdefault(metric, {})[lang] = value
    out: dict = dict(per_metric)
    for metric, values in per_metric.items():
        out[f"avg_{metric}"] = _mean(list(values.values()))
    out["avg_metric"] = task_score(task, {m: out[f"avg_{m}"] for m in TASK_METRICS[task]})
    left_out = [lang for lang in task_languages(task) if lang not in scored]
    if left_out:
        out["missing_languages"] = left_out
    return out


def score_folder(predictions: Path, labels: Path, languages: str = "all") -> dict:
    """Score every task folder present in `predictions` against `labels`, as XTREME's evaluate.py does.

    Returns {"overall": headline() plus "categories" (each complete category's mean) and "languages", "tasks":
    {task: score_task(...)}}, values in percent. `languages`: "all" (the default, XTREME's rule: every XTREME
    language of a present task is scored) or "labels" (the languages with a label file in `labels`, e.g. a
    sweep's own, from `export_labels`); overall["languages"] is "subset" when some task was scored on fewer
    than all its XTREME languages, which makes every average a subset's, not comparable with XTREME's
    figures, and "all" otherwise. Stricter than evaluate.py where it would crash or silently
    skip: every language of a present task must have a prediction file and a label file, unknown task
    folders and stray test-* files are errors, as are line or sentence counts that differ, bucc2018 lines
    that are not two tab-separated ids, and tatoeba lines that are not an index (evaluate.py compares
    tatoeba lines as strings; xfer compares the integers, so "03" matches "3", and "[3]" is an error).
    """
    if languages not in LANGUAGE_MODES:
        raise XferError(f"languages={languages!r}: expected one of {', '.join(LANGUAGE_MODES)}")
    predictions, labels = Path(predictions), Path(labels)
    for folder, what in ((predictions, "predictions"), (labels, "labels")):
        if not folder.is_dir():
            raise XferError(f"{folder}: {what} folder not found")
    present = []
    for path in sorted(predictions.iterdir()):
        if not path.is_dir() or path.name.startswith("."):
            continue
        if path.name not in TASK_METRICS:
            raise XferError(f"{path}: unknown XTREME task folder (known: {' '.join(TASK_METRICS)})")
        present.append(path.name)
    if not present:
        raise XferError(f"{predictions}: no task folders (expected some of: {' '.join(TASK_METRICS)})")
    tasks = {task: score_task(task, predictions, labels, languages) for task in TASK_METRICS if task in present}
    overall = headline({task: scores["avg_metric"] for task, scores in tasks.items()})
    overall["categories"] = {c: _mean([tasks[t]["avg_metric"] for t in ts])
                             for c, ts in CATEGORIES.items() if all(t in tasks for t in ts)}
    overall["languages"] = "subset" if any("missing_languages" in s for s in tasks.values()) else "all"
    return {"overall": overall, "tasks": tasks}


# ---- the `xfer xtreme-score` command ----

def format_scores(result: dict) -> str:
    """A readable table: per task its score, each metric's average and per-language values, then the
    category scores and the two headline averages (or what is missing); a language subset is said so."""
    lines = []
    for task, scores in result["tasks"].items():
        subset = ""
        if "missing_languages" in scores:
            n = len(task_languages(task))
            subset = f" (language subset: {n - len(scores['missing_languages'])} of its {n} languages)"
        lines.append(f"{task}: {scores['avg_metric']:.2f}{subset}")
        metrics = [m for m, values in scores.items() if isinstance(values, dict)]
        for metric in metrics:
            if metric not in TASK_METRICS[task] and metric != "token_accuracy":
                continue
            line = f"  {metric} {scores[f'avg_{metric}']:.2f} |"
            for lang, value in scores[metric].items():
                item = f" {lang} {value:.2f}"
                if len(line) + len(item) > 100:
                    lines.append(line)
                    line = "     "
                line += item
            lines.append(line)
        others = [f"{m} {scores[f'avg_{m}']:.2f}" for m in metrics
                  if m not in TASK_METRICS[task] and m != "token_accuracy"]
        if others:
            lines.append(f"  ({', '.join(others)})")
    overall = result["overall"]
    lines.append("")
    if overall.get("languages") == "subset":
        lines.append("averages over a language subset (--languages labels): not comparable with XTREME's")
    for category, value in overall.get("categories", {}).items():
        lines.append(f"{category}: {value:.2f}")
    for name in ("avg_over_tasks", "avg_over_categories"):
        if overall[name] is not None:
            lines.append(f"{name}: {overall[name]:.2f}")
            continue
        partial = overall["partial"].get(name)
        missing = ", ".join(overall["missing"])
        if partial is None:
            lines.append(f"{name}: partial (missing: {missing}); no complete category")
        else:
            over = partial.get("categories", partial["tasks"])
            lines.append(f"{name}: partial (missing: {missing}) {partial['value']:.2f} over {', '.join(over)}")
    return "\n".join(lines)


def export_labels(config_ref: str, out: Path) -> dict[str, list[str]]:
    """Write the gold test labels of every target task and language of a sweep config, read through its
    data source as its jobs read them, into `out` in the label layout `score_folder` reads
    (`<task>/test-<lang>.tsv|json`, by each format's `write_labels`). `out` must be new or empty; it appears
    only once complete. Returns {task: languages written}, in XTREME's task order."""
    import secrets
    import shutil

    from xfer import config as configs
    from xfer import formats, tasks
    from xfer.data import DataSource

    config, _ = configs.load(config_ref)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise XferError(f"{out}: --out is a file, not a folder")
    if out.is_dir() and any(out.iterdir()):
        raise XferError(f"{out}: --out is not empty (give a new or empty folder)")
    data = DataSource(config.data)
    if config.data == "hub":  # the commits the sweep's jobs read (xfer/revisions.py)
        from xfer.plan import build_plan

        data.pin(build_plan(config).dataset_revisions())
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.parent / f".{out.name}.partial-{secrets.token_hex(4)}"
    partial.mkdir()
    written: dict[str, list[str]] = {}
    try:
        for name in (t for t in TASK_METRICS if t in config.targets):
            task = tasks.get(name)
            folder = partial / name
            folder.mkdir()
            written[name] = list(config.languages(name))
            for lang in written[name]:
                formats.get(task.format).write_labels(task, task.test, data.load(task, task.test, lang),
                                                      folder / f"test-{lang}.{_suffix(name)}")
        partial.replace(out)  # an empty `out` is replaced
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return written


def cmd_xtreme_labels(args) -> int:
    for task, langs in export_labels(args.config, Path(args.out)).items():
        print(f"{task}: {' '.join(langs)}")
    print(f"labels: {args.out}")
    return 0


def cmd_xtreme_score(args) -> int:
    result = score_folder(Path(args.predictions), Path(args.labels), args.languages)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(format_scores(result))
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("xtreme-score", help="score XTREME predictions (<task>/test-<lang>.tsv|json) as "
                                            "XTREME's evaluate.py does")
    p.add_argument("--predictions", required=True, metavar="DIR", help="folder of <task>/test-<lang> predictions")
    p.add_argument("--labels", required=True, metavar="DIR", help="folder of <task>/test-<lang> gold labels")
    p.add_argument("--languages", choices=LANGUAGE_MODES, default="all",
                   help="all: every XTREME language of a task (default, XTREME's rule); labels: the languages "
                        "with a label file (the result is marked as a language subset)")
    p.add_argument("--json", action="store_true", help="print the scores as JSON")
    p.set_defaults(func=cmd_xtreme_score)

    p = sub.add_parser("xtreme-labels", help="write a sweep config's gold test labels in the layout "
                                             "xtreme-score reads")
    p.add_argument("config", help="sweep config: a YAML path or a store URI")
    p.add_argument("--out", required=True, metavar="DIR", help="new or empty folder for <task>/test-<lang> labels")
    p.set_defaults(func=cmd_xtreme_labels)
