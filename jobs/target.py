"""Target-task fine-tuning and zero-shot evaluation, with model selection.

A target job trains once for a group of target tasks whose training is identical (`xfer.plan.target_groups`:
XQuAD and MLQA both fine-tune on SQuAD v1.1; most groups hold one task). From the intermediate encoder (its
head dropped) or the pretrained model, fine-tune on the group's English training data for its epochs. At a
few points of that training (`xfer.selection`: the end of every epoch, at most `selection.max_points`)
evaluate, for each task of the group with its own scorer, the English dev set, each language's dev set where
the task has one (`Task.lang_dev`; a language whose dev data cannot be loaded has no oracle) and each
language's test set, keeping the scores in memory and no extra checkpoint. The default selection is shared:
the point with the best English dev score, the mean over the group's tasks of each task's criterion (for one
task, its criterion; XQuAD and MLQA score the same SQuAD dev predictions, by SQuAD's and MLQA's rules).
Commits `results.json`: `steps`, `train_loss` and, under `tasks` {task: ...}, for each task

- `metrics` {lang: {metric: percent}}: test scores at the default point (ties -> the earlier point), and
  `dev`, the task's English dev scores there;
- `oracle` {lang: {metric: percent}}: test scores at the point with the best dev score in that language (an
  upper bound; absent for languages without a dev set);
- `selection`: the points, the chosen ones, and every point's scores of that task (`history`);

and each task's predictions of the default selection in XTREME's submission layout
(`predictions/<task>/test-<lang>.*`).
"""

from __future__ import annotations

import json
import shutil

from xfer import formats, selection, tasks
from xfer import model as models
from xfer.config import Hparams
from xfer.context import log
from xfer.errors import XferError
from xfer.train import steps_for_epochs, steps_per_epoch, train


def run(job, ctx) -> None:
    p = job.params
    group = [tasks.get(name) for name in p["tasks"]]
    lead = group[0]  # the group's tasks train identically (same format, labels, data, hyperparameters)
    fmt = formats.get(lead.format)
    hp = Hparams(**p["hparams"])
    model_dir = models.resolve(p["model"], ctx.store, ctx.cache)
    tokenizer = models.load_tokenizer(model_dir)
    net = models.build(lead.format, model_dir, num_labels=fmt.num_labels(lead), seed=p["seed"])

    features = fmt.train_features(lead, lead.train, ctx.data.load(lead, lead.train), tokenizer, hp)
    steps = steps_for_epochs(len(features), hp)
    max_points = p.get("selection", {}).get("max_points", selection.DEFAULT_MAX_POINTS)
    points = selection.evaluation_points(steps, steps_per_epoch(len(features), hp), max_points)

    english_dev = ctx.data.load(lead, lead.dev) if lead.dev is not None else None
    language_dev = {task.name: {} for task in group}
    no_dev = {task.name: {} for task in group}
    test = {}
    for task in group:
        langs = p["tasks"][task.name]["languages"]
        for lang in langs:
            if task.lang_dev is None:
                no_dev[task.name][lang] = f"{task.name} has no target-language dev split"
                continue
            try:
                language_dev[task.name][lang] = ctx.data.load(task, task.lang_dev, lang)
            except XferError as exc:
                no_dev[task.name][lang] = str(exc)
                log.debug("%s: no oracle for %s/%s: %s", job.id, task.name, lang, exc)
        test[task.name] = {lang: ctx.data.load(task, task.test, lang) for lang in langs}

    history: list[dict] = []  # per evaluation point: {task: {"step", "dev", "lang_dev", "test"}}
    kept: dict = {}  # {task: {lang: test predictions}} of the best English-dev point so far

    def english_scores() -> list[float] | None:
        """The shared selection criterion at each point: the mean over the group of each task's criterion."""
        if english_dev is None:
            return None
        metrics = {t.name: t.metrics for t in group}
        return [selection.group_dev_score({name: r[name]["dev"] for name in metrics}, metrics) for r in history]

    def evaluate(step: int, model) -> None:
        records, predictions = {}, {}
        # the group shares its English dev set: predict it once, score it by each task's rules
        dev_predicted = None if english_dev is None else fmt.predict_rows(model, lead, lead.dev, english_dev,
                                                                          tokenizer, hp, ctx.device)
        for task in group:
            record = records[task.name] = {"step": step, "dev": {}, "lang_dev": {}, "test": {}}
            if english_dev is not None:
                record["dev"] = fmt.score(task, task.dev, english_dev, dev_predicted)
            for lang, rows in language_dev[task.name].items():
                record["lang_dev"][lang], _ = fmt.evaluate(model, task, task.lang_dev, rows, tokenizer, hp,
                                                           ctx.device, lang=lang)
            predictions[task.name] = {}
            for lang, rows in test[task.name].items():
                record["test"][lang], predictions[task.name][lang] = fmt.evaluate(
                    model, task, task.test, rows, tokenizer, hp, ctx.device, lang=lang)
        history.append(records)
        scores = english_scores()
        if scores is None or selection.best_point(scores) == len(history) - 1:
            kept.clear()
            kept.update(predictions)
        log.debug("%s step %d: dev %s", job.id, step, {name: r["dev"] for name, r in records.items()})

    result = train(net, features, fmt.collate(tokenizer), hp, steps, p["seed"], ctx.device,
                   on_step=lambda done, _: ctx.progress(done, steps), evaluate_at=set(points), on_eval=evaluate)
    assert [r[lead.name]["step"] for r in history] == points, "an evaluation point was not reached"
    scores = english_scores()
    criterion = f"mean of {', '.join(lead.metrics)} on the dev set" if len(group) == 1 else \
        "mean over " + ", ".join(f"{t.name} (mean of {', '.join(t.metrics)})" for t in group) + " on the dev set"

    out = ctx.work / job.id
    shutil.rmtree(out, ignore_errors=True)
    per_task = {}
    for task in group:
        mine = [r[task.name] for r in history]
        chosen = selection.select(points, scores, {lang: [selection.dev_score(r["lang_dev"][lang], task.metrics)
                                                          for r in mine] for lang in language_dev[task.name]})
        default, at = chosen["default"], {r["step"]: r for r in mine}  # the default is the group's, shared
        predictions = out / "predictions" / task.name
        predictions.mkdir(parents=True)
        for lang in p["tasks"][task.name]["languages"]:
            fmt.write_predictions(kept[task.name][lang], predictions / f"test-{lang}.tsv")  # QA writes .json
        per_task[task.name] = {
            "dev": at[default]["dev"], "metrics": at[default]["test"],
            "oracle": {lang: at[step]["test"][lang] for lang, step in chosen["oracle"].items()},
            "selection": {
                "criterion": f"{criterion}; ties -> the earlier point",
                "points": points,
                "default": default,
                "default_on": "English dev set" if english_dev is not None else "last point (no English dev set)",
                "shared_with": [t.name for t in group if t is not task],
                "oracle": chosen["oracle"],
                "no_language_dev": no_dev[task.name],
                "history": mine,
            }}
    (out / "results.json").write_text(json.dumps({
        "job": job.id, "seed": p["seed"], "steps": steps, "train_loss": result["loss"], "tasks": per_task},
        indent=1))
    ctx.store.commit(job.output, out, meta={"job": job.id, "kind": job.kind})
    shutil.rmtree(out, ignore_errors=True)
