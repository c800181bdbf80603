"""Intermediate-task training: exactly `budget` optimizer steps on an English task, from the base model.

Every `checkpoint_every` steps the model and optimizer state are committed to the store (safetensors); a
restarted job resumes from the last committed checkpoint and takes the same steps an uninterrupted run
would. SIGTERM (preemption) commits a checkpoint and exits with code 75 so the orchestrator retries.
On success the model (encoder and head) and its English dev score are committed to `job.output`.
"""

from __future__ import annotations

import json
import re
import shutil

from safetensors.torch import load_file, load_model, save_file, save_model

from xfer import formats, tasks
from xfer import model as models
from xfer.config import Hparams
from xfer.context import log
from xfer.errors import Preempted
from xfer.train import StopFlag, optimizer_tensors, train

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


def run(job, ctx) -> None:
    p = job.params
    task = tasks.get(p["task"])
    fmt = formats.get(task.format)
    hp = Hparams(**p["hparams"])
    base_dir = models.resolve(p["model"], ctx.store, ctx.cache)
    tokenizer = models.load_tokenizer(base_dir)
    net = models.build(task.format, base_dir, num_labels=fmt.num_labels(task), seed=p["seed"])

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

    rows = ctx.data.load(task, task.train)
    features = fmt.train_features(task, task.train, rows, tokenizer, hp)
    budget = p["budget"]
    with StopFlag() as stop:
        result = train(net, features, fmt.collate(tokenizer), hp, budget, p["seed"], ctx.device,
                       start_step=start, optimizer_state=opt_state,
                       checkpoint_every=ctx.config.intermediate.checkpoint_every,
                       on_checkpoint=commit_checkpoint, stop=stop,
                       on_step=lambda done, _: ctx.progress(done, budget))
    if "stopped_at" in result:
        raise Preempted(f"{job.id}: stopped by SIGTERM at step {result['stopped_at']}; checkpoint committed")

    dev = {}
    if task.dev is not None:
        dev, _ = fmt.evaluate(net, task, task.dev, ctx.data.load(task, task.dev), tokenizer, hp, ctx.device)
    out = work / "output"
    models.save(net.cpu(), tokenizer, out)
    (out / "xfer.json").write_text(json.dumps({
        "job": job.id, "task": task.name, "budget": budget, "seed": p["seed"], "resumed_from": start,
        "train_loss": result["loss"], "dev": dev}, indent=1))
    ctx.store.commit(job.output, out, meta={"job": job.id, "kind": job.kind})
    for key in ctx.store.list(f"jobs/{job.id}/checkpoints/"):
        if key.endswith("/_COMPLETE"):
            ctx.store.uncommit(key.rsplit("/", 1)[0])
    shutil.rmtree(work, ignore_errors=True)
