"""Target-task fine-tuning and zero-shot evaluation.

From the intermediate encoder (its head dropped) or the pretrained model, fine-tune on the task's English
training data for the task's epochs, score the English dev set, then evaluate zero-shot on every language of
the task. Commits `results.json` ({"metrics": {lang: {metric: percent}}, ...}) and the predictions in
XTREME's submission layout (`predictions/<task>/test-<lang>.tsv|json`).
"""

from __future__ import annotations

import json
import shutil

from xfer import formats, tasks
from xfer import model as models
from xfer.config import Hparams
from xfer.context import log
from xfer.train import steps_for_epochs, train


def run(job, ctx) -> None:
    p = job.params
    task = tasks.get(p["task"])
    fmt = formats.get(task.format)
    hp = Hparams(**p["hparams"])
    model_dir = models.resolve(p["model"], ctx.store, ctx.cache)
    tokenizer = models.load_tokenizer(model_dir)
    net = models.build(task.format, model_dir, num_labels=fmt.num_labels(task), seed=p["seed"])

    features = fmt.train_features(task, task.train, ctx.data.load(task, task.train), tokenizer, hp)
    steps = steps_for_epochs(len(features), hp)
    result = train(net, features, fmt.collate(tokenizer), hp, steps, p["seed"], ctx.device,
                   on_step=lambda done, _: ctx.progress(done, steps))

    dev = {}
    if task.dev is not None:
        dev, _ = fmt.evaluate(net, task, task.dev, ctx.data.load(task, task.dev), tokenizer, hp, ctx.device)
    out = ctx.work / job.id
    shutil.rmtree(out, ignore_errors=True)
    predictions = out / "predictions" / task.name
    predictions.mkdir(parents=True)
    scores = {}
    for lang in p["languages"]:
        rows = ctx.data.load(task, task.test, lang)
        scores[lang], predicted = fmt.evaluate(net, task, task.test, rows, tokenizer, hp, ctx.device, lang=lang)
        fmt.write_predictions(predicted, predictions / f"test-{lang}.tsv")
        log.debug("%s %s %s", job.id, lang, scores[lang])
    (out / "results.json").write_text(json.dumps({
        "job": job.id, "task": task.name, "seed": p["seed"], "steps": steps, "train_loss": result["loss"],
        "dev": dev, "metrics": scores}, indent=1))
    ctx.store.commit(job.output, out, meta={"job": job.id, "kind": job.kind})
    shutil.rmtree(out, ignore_errors=True)
