"""Intermediate-task training: exactly `budget` optimizer steps on an English task, from the base model.

A task reading several splits (ANLI+) trains on their concatenation; a task whose labels come from its data
(CCG supertags) takes the sorted tag set of its training data, recorded in `xfer.json` and the model config.
A mixture (`params["mixture"]`) trains one shared encoder with one head per member task, each step on one
task drawn in proportion to the (capped) training-set sizes (`xfer.train.TaskMixture`); its budget counts
the steps over the whole mixture.

Every `checkpoint_every` steps the model, optimizer state and recent losses are committed to the store
(`xfer.checkpoint`); a restarted job resumes from the newest committed checkpoint that verifies and takes
the same steps, and reports the same loss, as an uninterrupted run. SIGTERM (preemption) commits a checkpoint
and exits with code 75 so the orchestrator retries; during the final dev evaluation it commits the finished
model as a checkpoint first. On success the model (encoder and head), its English dev score and the token
positions it computed (`tokens`) are committed to `job.output`.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

from xfer import determinism, formats, multitask, preemption, tasks, tokens
from xfer import model as models
from xfer.checkpoint import Checkpoints
from xfer.config import Hparams
from xfer.errors import Preempted, XferError
from xfer.train import TaskMixture, train


def _train_splits(ctx, name: str):
    """(task, [(split, rows)]) of a task's training data; labels read from the data where the task says so."""
    task = tasks.get(name)
    loaded = [(split, ctx.data.load(task, split)) for split in tasks.splits(task.train)]
    if task.labels_from_data:
        found = {tag for split, rows in loaded for sentence in rows[split.columns["tags"]] for tag in sentence}
        if not found:
            raise XferError(f"task {name!r}: its training data holds no labels")
        task = replace(task, labels=tuple(sorted(found)))
    return task, loaded


def _dev_scores(net, task, tokenizer, hp, ctx) -> dict:
    """English dev scores; over several dev splits (ANLI's rounds), each split's and their example-weighted
    mean (the pooled value for per-example metrics: accuracy, SQuAD EM/F1)."""
    fmt = formats.get(task.format)
    parts = {}
    for split in tasks.splits(task.dev):
        scores, predictions = fmt.evaluate(net, task, split, ctx.data.load(task, split), tokenizer, hp, ctx.device)
        parts[split.split] = (scores, len(predictions))
    if len(parts) <= 1:
        return next(iter(parts.values()))[0] if parts else {}
    total = sum(n for _, n in parts.values())
    pooled = {metric: sum(scores[metric] * n for scores, n in parts.values()) / total
              for metric in next(iter(parts.values()))[0]}
    return {**pooled, "splits": {name: scores for name, (scores, _) in parts.items()}}


def run(job, ctx) -> None:
    p = job.params
    hp = Hparams(**p["hparams"])
    mixture = p.get("mixture")
    members = {name: _train_splits(ctx, name) for name in (mixture["tasks"] if mixture else [p["task"]])}
    base_dir = models.resolve(p["model"], ctx.store, ctx.cache)
    tokenizer = models.load_tokenizer(base_dir)
    if mixture:
        net = multitask.build({name: (task.format, formats.get(task.format).num_labels(task))
                               for name, (task, _) in members.items()}, base_dir, seed=p["seed"])
    else:
        task = members[p["task"]][0]
        fmt = formats.get(task.format)
        net = models.build(task.format, base_dir, num_labels=fmt.num_labels(task), seed=p["seed"])
        if task.labels_from_data:  # the head's size and names travel with the checkpoint
            net.config.id2label = dict(enumerate(task.labels))
            net.config.label2id = {label: i for i, label in enumerate(task.labels)}

    work = ctx.work / job.id
    shutil.rmtree(work, ignore_errors=True)
    checkpoints = Checkpoints(ctx.store, job.id, work)
    resumed = checkpoints.resume(net)

    def commit_checkpoint(step, model, opt, recent_losses) -> None:
        checkpoints.commit(step, model, opt, {"recent_losses": recent_losses, "tokens": counts.as_dict()})

    features, notes = {}, {}
    for name, (task, loaded) in members.items():
        features[name] = []
        for split, rows in loaded:
            made = formats.get(task.format).train_features(task, split, rows, tokenizer, hp)
            features[name] += made
            if getattr(made, "notes", None):
                notes.setdefault(name, {})[split.split] = made.notes
    budget = p["budget"]
    if mixture:
        data = TaskMixture(features, {name: formats.get(task.format).collate(tokenizer)
                                      for name, (task, _) in members.items()},
                           {name: sum(len(rows) for _, rows in loaded) for name, (_, loaded) in members.items()},
                           mixture["cap"], p["seed"], budget, hp)
        collate = None
    else:
        data, collate = features[p["task"]], fmt.collate(tokenizer)
    counts = tokens.TokenCounts(resumed.state.get("tokens"))
    with counts.watching(net):
        result = train(net, data, collate, hp, budget, p["seed"], ctx.device,
                       start_step=resumed.step, optimizer_state=resumed.optimizer,
                       recent_losses=resumed.recent_losses,
                       checkpoint_every=ctx.config.intermediate.checkpoint_every,
                       on_checkpoint=commit_checkpoint, on_step=lambda done: ctx.progress(done, budget))
        info = {"job": job.id, "task": p["task"], "budget": budget, "seed": p["seed"], "resumed_from": resumed.step,
                "train_loss": result["loss"]}
        try:
            with preemption.deferred():
                if mixture:
                    info["dev"] = {name: _dev_scores(net.heads[name], task, tokenizer, hp, ctx)
                                   for name, (task, _) in members.items()}
                else:
                    info["dev"] = _dev_scores(net, task, tokenizer, hp, ctx)
        except Preempted:  # keep the finished training: the retry only evaluates
            if resumed.step < budget:
                commit_checkpoint(budget, net, None, result["recent_losses"])
            raise
    if mixture:
        info["mixture"] = {**mixture, "weights": dict(zip(data.names, data.weights.tolist())),
                           "draws": data.draws(budget)}
    labels = {name: list(task.labels) for name, (task, _) in members.items() if task.labels_from_data}
    if labels:
        info["labels"] = labels
    info["tokens"] = counts.as_dict()
    if notes:
        info["training_data"] = notes  # e.g. QA answers repaired or dropped
    out = work / "output"
    models.save(net.cpu(), tokenizer, out)
    (out / "xfer.json").write_text(json.dumps(info, indent=1))
    ctx.store.commit(job.output, out, meta={"job": job.id, "kind": job.kind, "environment": determinism.environment()})
    checkpoints.clear()
    shutil.rmtree(work, ignore_errors=True)
