"""Target-task fine-tuning and zero-shot evaluation, with model selection.

From the intermediate encoder (its head dropped) or the pretrained model, fine-tune on the task's English
training data for the task's epochs. At a few points of that training (`xfer.selection`: the end of every
epoch, at most `selection.max_points`) evaluate the English dev set, each language's dev set where the task has
one (`Task.lang_dev`; a language whose dev data cannot be loaded has no oracle) and each language's test set,
keeping the scores in memory and no extra checkpoint. Commits `results.json`:

- `metrics` {lang: {metric: percent}}: test scores at the point with the best English dev score (the default
  selection; ties -> the earlier point), and `dev`, the English dev scores there;
- `oracle` {lang: {metric: percent}}: test scores at the point with the best dev score in that language (an
  upper bound; absent for languages without a dev set);
- `selection`: the points, the chosen ones, and every point's scores (`history`);

and the predictions of the default selection in XTREME's submission layout (`predictions/<task>/test-<lang>.*`).
"""

from __future__ import annotations

import json
import math
import shutil

from xfer import formats, selection, tasks
from xfer import model as models
from xfer.config import Hparams
from xfer.context import log
from xfer.errors import XferError
from xfer.train import steps_for_epochs, train


def run(job, ctx) -> None:
    p = job.params
    task = tasks.get(p["task"])
    fmt = formats.get(task.format)
    hp = Hparams(**p["hparams"])
    langs = list(p["languages"])
    model_dir = models.resolve(p["model"], ctx.store, ctx.cache)
    tokenizer = models.load_tokenizer(model_dir)
    net = models.build(task.format, model_dir, num_labels=fmt.num_labels(task), seed=p["seed"])

    features = fmt.train_features(task, task.train, ctx.data.load(task, task.train), tokenizer, hp)
    steps = steps_for_epochs(len(features), hp)
    per_epoch = math.ceil(len(features) / (hp.batch_size * hp.grad_accum))
    max_points = p.get("selection", {}).get("max_points", selection.DEFAULT_MAX_POINTS)
    points = selection.evaluation_points(steps, per_epoch, max_points)

    english_dev = ctx.data.load(task, task.dev) if task.dev is not None else None
    language_dev, no_dev = {}, {}
    for lang in langs:
        if task.lang_dev is None:
            no_dev[lang] = f"{task.name} has no target-language dev split"
            continue
        try:
            language_dev[lang] = ctx.data.load(task, task.lang_dev, lang)
        except XferError as exc:
            no_dev[lang] = str(exc)
            log.debug("%s: no oracle for %s: %s", job.id, lang, exc)
    test = {lang: ctx.data.load(task, task.test, lang) for lang in langs}

    history: list[dict] = []  # one record of scores per evaluation point
    kept: dict = {}  # the test predictions of the best English-dev point so far

    def english_scores() -> list[float] | None:
        return None if english_dev is None else [selection.dev_score(r["dev"], task.metrics) for r in history]

    def evaluate(step: int, model) -> None:
        record = {"step": step, "dev": {}, "lang_dev": {}, "test": {}}
        if english_dev is not None:
            record["dev"], _ = fmt.evaluate(model, task, task.dev, english_dev, tokenizer, hp, ctx.device)
        for lang, rows in language_dev.items():
            record["lang_dev"][lang], _ = fmt.evaluate(model, task, task.lang_dev, rows, tokenizer, hp, ctx.device,
                                                       lang=lang)
        predictions = {}
        for lang, rows in test.items():
            record["test"][lang], predictions[lang] = fmt.evaluate(model, task, task.test, rows, tokenizer, hp,
                                                                   ctx.device, lang=lang)
        history.append(record)
        scores = english_scores()
        if scores is None or selection.best_point(scores) == len(history) - 1:
            kept.clear()
            kept.update(predictions)
        log.debug("%s step %d: dev %s", job.id, step, record["dev"])

    result = train(net, features, fmt.collate(tokenizer), hp, steps, p["seed"], ctx.device,
                   on_step=lambda done, _: ctx.progress(done, steps), evaluate_at=set(points), on_eval=evaluate)
    assert [r["step"] for r in history] == points, "an evaluation point was not reached"
    chosen = selection.select(points, english_scores(),
                              {lang: [selection.dev_score(r["lang_dev"][lang], task.metrics) for r in history]
                               for lang in language_dev})
    at = {r["step"]: r for r in history}
    default = at[chosen["default"]]

    out = ctx.work / job.id
    shutil.rmtree(out, ignore_errors=True)
    predictions = out / "predictions" / task.name
    predictions.mkdir(parents=True)
    for lang in langs:
        fmt.write_predictions(kept[lang], predictions / f"test-{lang}.tsv")  # QA writes .json
    (out / "results.json").write_text(json.dumps({
        "job": job.id, "task": task.name, "seed": p["seed"], "steps": steps, "train_loss": result["loss"],
        "dev": default["dev"], "metrics": default["test"],
        "oracle": {lang: at[step]["test"][lang] for lang, step in chosen["oracle"].items()},
        "selection": {
            "criterion": f"mean of {', '.join(task.metrics)} on the dev set; ties -> the earlier point",
            "points": points,
            "default": chosen["default"],
            "default_on": "English dev set" if english_dev is not None else "last point (no English dev set)",
            "oracle": chosen["oracle"],
            "no_language_dev": no_dev,
            "history": history,
        }}, indent=1))
    ctx.store.commit(job.output, out, meta={"job": job.id, "kind": job.kind})
    shutil.rmtree(out, ignore_errors=True)
