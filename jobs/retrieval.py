"""Retrieval evaluation straight from the intermediate encoder (no target training): for every language,
mean-pool one hidden layer and retrieve the nearest English sentence by cosine similarity (Tatoeba), or mine
sentence pairs with a threshold chosen on the language's sample gold (BUCC; `results.json` records each
language's threshold under "thresholds"), and each test example's score
(`examples/<task>/test-<lang>.safetensors`). Sentences are embedded in length-sorted batches, stopping the
encoder at the pooled layer (bf16 on CUDA). SIGTERM ends the job at once (exit 75): it has no training to
keep, and its retry starts over."""

from __future__ import annotations

import json
import shutil

from xfer import determinism, example_scores, formats, tasks, tokens
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
    scores, thresholds = {}, {}
    counts = tokens.TokenCounts()
    with counts.watching(encoder):
        for lang in p["languages"]:
            rows = ctx.data.load(task, task.test, lang)
            dev = (task.lang_dev, ctx.data.load(task, task.lang_dev, lang)) if task.retrieval == "bucc" else None
            scores[lang], predicted = fmt.evaluate(encoder, task, task.test, rows, tokenizer, hp, ctx.device,
                                                   layer=p["layer"], lang=lang, dev=dev)
            fmt.write_predictions(predicted, predictions / f"test-{lang}.tsv")
            example_scores.write(example_scores.compute(task, task.test, rows, predicted, lang),
                                 out / example_scores.relpath(task.name, lang))
            if dev is not None:
                thresholds[lang] = predicted.threshold
    results = {"job": job.id, "task": task.name, "layer": p["layer"], "metrics": scores,
               "tokens": counts.as_dict()}
    if thresholds:
        results["thresholds"] = thresholds
    (out / "results.json").write_text(json.dumps(results, indent=1))
    ctx.store.commit(job.output, out, meta={"job": job.id, "kind": job.kind, "environment": determinism.environment()})
    shutil.rmtree(out, ignore_errors=True)
