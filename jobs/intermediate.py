"""Intermediate-task training: exactly `budget` optimizer steps on an English task, from the base model.

A task reading several splits (ANLI+) trains on their concatenation; a task whose labels come from its data
(CCG supertags) takes the sorted tag set of its training data, recorded in `xfer.json` and the model config.
A mixture (`params["mixture"]`) trains one shared encoder with one head per member task, each step on one
task drawn in proportion to the (capped) training-set sizes (`xfer.train.TaskMixture`); its budget counts
the steps over the whole mixture.

Every `checkpoint_every` steps the model and optimizer state are committed to the store (safetensors); a
restarted job resumes from the last committed checkpoint and takes the same steps an uninterrupted run
would. SIGTERM (preemption) commits a checkpoint and exits with code 75 so the orchestrator retries.
On success the model (encoder and head) and its English dev score are committed to `job.output`.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace

from safetensors.torch import load_file, load_model, save_file, save_model

from xfer import formats, multitask, tasks
from xfer import model as models
from xfer.config import Hparams
from xfer.context import log
from xfer.errors import Preempted, XferError
from xfer.train import StopFlag, TaskMixture, optimizer_tensors, train

STEP_DIR = re.compile(r"step-(\d{8})$")


def checkpoint_prefix(job, step: int) -> str:
    return f"jobs/{job.id}/checkpoints/step-{step:08d}"


def latest_checkpoint(store, job) -> int:
    """The highest committed checkpoint step of the job (0 if none)."""
    steps = set()
    for key in store.list(f"jobs/{job.id}/checkpoints/"):
        parts = key.split("/")
        match = STEP_DIR.match(parts[-2]) if len(parts) >= 2 else None
        if match and parts[-1] == "_COMPLETE":
            steps.add(int(match.group(1)))
    for step in sorted(steps, reverse=True):
        if store.is_committed(checkpoint_prefix(job, step)):
            return step
    return 0


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
    start, opt_state = latest_checkpoint(ctx.store, job), None
    if start:
        local = work / "resume"
        ctx.store.fetch(checkpoint_prefix(job, start), local)
        load_model(net, local / "model.safetensors")
        opt_state = load_file(local / "optimizer.safetensors")
        log.info("%s: resuming from committed checkpoint at step %d", job.id, start)

    newest = [start]  # the committed checkpoint to drop once a newer one is committed

    def commit_checkpoint(step, model, opt) -> None:
        folder = work / f"step-{step:08d}"
        folder.mkdir(parents=True)
        save_model(model, folder / "model.safetensors")
        save_file(optimizer_tensors(opt), folder / "optimizer.safetensors")
        (folder / "state.json").write_text(json.dumps({"step": step, "job": job.id}))
        ctx.store.commit(checkpoint_prefix(job, step), folder, meta={"job": job.id, "step": step})
        if newest[0]:
            ctx.store.uncommit(checkpoint_prefix(job, newest[0]))
        newest[0] = step
        shutil.rmtree(folder)

    features = {name: [f for split, rows in loaded
                       for f in formats.get(task.format).train_features(task, split, rows, tokenizer, hp)]
                for name, (task, loaded) in members.items()}
    budget = p["budget"]
    if mixture:
        data = TaskMixture(features, {name: formats.get(task.format).collate(tokenizer)
                                      for name, (task, _) in members.items()},
                           {name: sum(len(rows) for _, rows in loaded) for name, (_, loaded) in members.items()},
                           mixture["cap"], p["seed"], budget, hp)
        collate = None
    else:
        data, collate = features[p["task"]], fmt.collate(tokenizer)
    with StopFlag() as stop:
        result = train(net, data, collate, hp, budget, p["seed"], ctx.device,
                       start_step=start, optimizer_state=opt_state,
                       checkpoint_every=ctx.config.intermediate.checkpoint_every,
                       on_checkpoint=commit_checkpoint, stop=stop,
                       on_step=lambda done, _: ctx.progress(done, budget))
    if "stopped_at" in result:
        raise Preempted(f"{job.id}: stopped by SIGTERM at step {result['stopped_at']}; checkpoint committed")

    info = {"job": job.id, "task": p["task"], "budget": budget, "seed": p["seed"], "resumed_from": start,
            "train_loss": result["loss"]}
    if mixture:
        info["dev"] = {name: _dev_scores(net.heads[name], task, tokenizer, hp, ctx)
                       for name, (task, _) in members.items()}
        info["mixture"] = {**mixture, "weights": dict(zip(data.names, data.weights.tolist())),
                           "draws": data.draws(budget)}
    else:
        info["dev"] = _dev_scores(net, task, tokenizer, hp, ctx)
    labels = {name: list(task.labels) for name, (task, _) in members.items() if task.labels_from_data}
    if labels:
        info["labels"] = labels
    out = work / "output"
    models.save(net.cpu(), tokenizer, out)
    (out / "xfer.json").write_text(json.dumps(info, indent=1))
    ctx.store.commit(job.output, out, meta={"job": job.id, "kind": job.kind})
    for key in ctx.store.list(f"jobs/{job.id}/checkpoints/"):
        if key.endswith("/_COMPLETE"):
            ctx.store.uncommit(key.rsplit("/", 1)[0])
    shutil.rmtree(work, ignore_errors=True)
