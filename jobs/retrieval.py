"""Retrieval evaluation straight from the intermediate encoder (no target training): for every language,
mean-pool one hidden layer and retrieve the nearest English sentence by cosine similarity."""

from __future__ import annotations

import json
import shutil

from xfer import formats, tasks
from xfer import model as models
from xfer.config import Hparams


def run(job, ctx) -> None:
    p = job.params
    task = tasks.get(p["task"])
    fmt = formats.get(task.format)
    hp = Hparams(**p["hparams"])  # max_length and batch_size
    model_dir = models.resolve(p["model"], ctx.store, ctx.cache)
    tokenizer = models.load_tokenizer(model_dir)
    encoder = models.build("retrieval", model_dir)
    out = ctx.work / job.id
    shutil.rmtree(out, ignore_errors=True)
    predictions = out / "predictions" / task.name
    predictions.mkdir(parents=True)
    scores = {}
    for lang in p["languages"]:
        rows = ctx.data.load(task, task.test, lang)
        scores[lang], nearest = fmt.evaluate(encoder, task, task.test, rows, tokenizer, hp, ctx.device,
                                             layer=p["layer"], lang=lang)
        fmt.write_predictions(nearest, predictions / f"test-{lang}.tsv")
    (out / "results.json").write_text(json.dumps({"job": job.id, "task": task.name, "layer": p["layer"],
                                                  "metrics": scores}, indent=1))
    ctx.store.commit(job.output, out, meta={"job": job.id, "kind": job.kind})
    shutil.rmtree(out, ignore_errors=True)
