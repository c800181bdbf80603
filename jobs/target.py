"""Target-task fine-tuning and zero-shot evaluation, with model selection.

A target job trains once for a group of target tasks whose training is identical (`xfer.plan.target_groups`:
XQuAD and MLQA both fine-tune on SQuAD v1.1; most groups hold one task). From the intermediate encoder (its
head dropped) or the pretrained model, fine-tune on the group's English training data for its epochs.

Model selection (`xfer.selection`) without waste. At a few points of training (the end of every epoch, at most
`selection.max_points`) the English dev set is evaluated, once for the whole group (each task scores the
shared predictions by its own rules), and with `selection.oracle` every language's dev set too (a language
whose dev set is the English dev set reuses its scores; a language whose dev data cannot be loaded has no
oracle). Every set is tokenised once per job. The models of the points a selection may still choose are kept
as snapshots on local disk; after training, each test set is evaluated only at the points chosen for it: the
default point (the best English dev score; the mean over the group's tasks of each task's criterion; ties ->
the earlier point; the last point without an English dev set) and, with the oracle pass, each language's own
best point. The results are the ones evaluating every test set at every point would give
(`selection.test_at_every_point` does exactly that, for studying checkpoints, and records every point's test
scores).

Preemption-safe: every `target_checkpoint_every` steps, and on SIGTERM (during training, an evaluation or
the final test pass), the model, optimizer, recent losses, evaluation history and kept snapshots are
committed as a checkpoint (`xfer.checkpoint`); a retry resumes from it to the same results.json as an
uninterrupted run (an evaluation that SIGTERM interrupted is redone).

Commits `results.json`: `steps`, `train_loss`, `tokens`, `training_data` (what preparing the training
features found: QA answers repaired or dropped) and, under `tasks` {task: ...}, for each task
- `metrics` {lang: {metric: percent}}: test scores at the default point, and `dev`, its English dev scores;
- `oracle` {lang: {metric: percent}}: test scores at each language's best dev point (empty without the
  oracle pass);
- `selection`: the points, the chosen ones, whether the oracle pass ran (`oracle_pass`), and every point's
  dev scores of that task (`history`);
and each task's test predictions at the default point in XTREME's submission layout
(`predictions/<task>/test-<lang>.*`), with each test example's score beside them
(`examples/<task>/test-<lang>.safetensors`, `xfer.example_scores`: what the report's paired bootstrap resamples).
"""

from __future__ import annotations

import json
import logging
import shutil

from xfer import determinism, example_scores, formats, preemption, selection, tasks, tokens
from xfer import model as models
from xfer.checkpoint import Checkpoints, Snapshots
from xfer.config import Hparams, Selection
from xfer.errors import Preempted, XferError
from xfer.train import steps_for_epochs, steps_per_epoch, train

log = logging.getLogger("xfer")


def _same_as_english_dev(p: dict, task, lang: str) -> bool:
    """Whether a language's dev set is the English dev set itself (PAWS-X, PAN-X, UD-POS in English)."""
    return (task.dev is not None and task.lang_dev is not None
            and p["tasks"][task.name]["data"]["lang_dev"].get(lang) == p["data"]["dev"]
            and dict(task.dev.columns) == dict(task.lang_dev.columns) and task.dev.labels_are == task.lang_dev.labels_are)


def run(job, ctx) -> None:
    p = job.params
    group = [tasks.get(name) for name in p["tasks"]]
    lead = group[0]  # the group's tasks train identically (same format, labels, data, hyperparameters)
    fmt = formats.get(lead.format)
    hp = Hparams(**p["hparams"])
    how = Selection(**p.get("selection", {}))
    model_dir = models.resolve(p["model"], ctx.store, ctx.cache)
    tokenizer = models.load_tokenizer(model_dir)
    net = models.build(lead.format, model_dir, num_labels=fmt.num_labels(lead), seed=p["seed"])

    features = fmt.train_features(lead, lead.train, ctx.data.load(lead, lead.train), tokenizer, hp)
    steps = steps_for_epochs(len(features), hp)
    points = selection.evaluation_points(steps, steps_per_epoch(len(features), hp), how.max_points)

    # every evaluation set, tokenised once: (rows, encoded)
    english_dev = None
    if lead.dev is not None:
        rows = ctx.data.load(lead, lead.dev)
        english_dev = (rows, fmt.eval_set(lead, lead.dev, rows, tokenizer, hp))
    language_dev = {task.name: {} for task in group}  # {task: {lang: (rows, encoded) | None (= English dev)}}
    no_dev = {task.name: {} for task in group}
    for task in group:
        for lang in (p["tasks"][task.name]["languages"] if how.oracle else ()):
            if task.lang_dev is None:
                no_dev[task.name][lang] = f"{task.name} has no target-language dev split"
            elif _same_as_english_dev(p, task, lang):
                language_dev[task.name][lang] = None
            else:
                try:
                    rows = ctx.data.load(task, task.lang_dev, lang)
                except XferError as exc:
                    no_dev[task.name][lang] = str(exc)
                    log.debug("%s: no oracle for %s/%s: %s", job.id, task.name, lang, exc)
                    continue
                language_dev[task.name][lang] = (rows, fmt.eval_set(task, task.lang_dev, rows, tokenizer, hp))
    test_sets: dict = {}

    def test_set(task, lang):
        if (task.name, lang) not in test_sets:
            rows = ctx.data.load(task, task.test, lang)
            test_sets[task.name, lang] = (rows, fmt.eval_set(task, task.test, rows, tokenizer, hp))
        return test_sets[task.name, lang]

    def test_scores(task, lang, model):
        rows, encoded = test_set(task, lang)
        predicted = fmt.predict(model, task, encoded, tokenizer, hp, ctx.device)
        return fmt.score(task, task.test, rows, predicted, lang), predicted

    work = ctx.work / job.id
    shutil.rmtree(work, ignore_errors=True)
    checkpoints = Checkpoints(ctx.store, job.id, work / "checkpoint")
    snapshots = Snapshots(work / "snapshots")
    resumed = checkpoints.resume(net)
    snapshots.restore(resumed)
    history: list[dict] = resumed.state.get("history", [])  # per point: {task: {"step", "dev", "lang_dev"}}
    counts = tokens.TokenCounts(resumed.state.get("tokens"))

    def english_scores() -> list[float] | None:
        """The shared selection criterion at each point: the mean over the group of each task's criterion."""
        if english_dev is None:
            return None
        metrics = {t.name: t.metrics for t in group}
        return [selection.group_dev_score({name: r[name]["dev"] for name in metrics}, metrics) for r in history]

    def language_scores(task) -> dict[str, list[float]]:
        return {lang: [selection.dev_score(r[task.name]["lang_dev"][lang], task.metrics) for r in history]
                for lang in language_dev[task.name]}

    def choosable() -> set[int]:
        done = [r[lead.name]["step"] for r in history]
        kept = selection.still_choosable(done, english_scores(), {})
        for task in group:
            kept |= selection.still_choosable(done, None, language_scores(task))
        return kept

    def evaluate(step: int, model) -> None:
        records = {}
        dev_predicted = None if english_dev is None else fmt.predict(model, lead, english_dev[1], tokenizer, hp,
                                                                     ctx.device)
        for task in group:
            record = records[task.name] = {"step": step, "dev": {}, "lang_dev": {}}
            if english_dev is not None:
                record["dev"] = fmt.score(task, task.dev, english_dev[0], dev_predicted)
            for lang, data in language_dev[task.name].items():
                if data is None:
                    record["lang_dev"][lang] = dict(record["dev"])
                else:
                    predicted = fmt.predict(model, task, data[1], tokenizer, hp, ctx.device)
                    record["lang_dev"][lang] = fmt.score(task, task.lang_dev, data[0], predicted, lang)
            if how.test_at_every_point:
                record["test"] = {lang: test_scores(task, lang, model)[0]
                                  for lang in p["tasks"][task.name]["languages"]}
        history.append(records)
        kept = choosable()
        if step in kept and step < steps:
            snapshots.keep(step, model)
        snapshots.prune(kept)
        log.debug("%s step %d: dev %s", job.id, step, {name: r["dev"] for name, r in records.items()})

    def commit_checkpoint(step, model, opt, recent_losses) -> None:
        checkpoints.commit(step, model, opt, {"recent_losses": recent_losses, "history": history,
                                              "tokens": counts.as_dict()}, snapshots.files())

    def test_pass() -> tuple[dict, dict]:
        """Each test set at the points chosen for it, the final model first, then each kept snapshot.
        Returns ({task: its results.json section}, {task: {lang: test predictions at the default point}})."""
        scores = english_scores()
        chosen = {task.name: selection.select(points, scores, language_scores(task)) for task in group}
        wanted: dict[int, dict] = {}  # step -> {(task name, lang): whether it is the task's default point}
        for task in group:
            for lang, step in chosen[task.name]["oracle"].items():
                wanted.setdefault(step, {})[task.name, lang] = False
            for lang in p["tasks"][task.name]["languages"]:
                wanted.setdefault(chosen[task.name]["default"], {})[task.name, lang] = True
        if any(step != steps for step in wanted):
            snapshots.keep(steps, net)  # the final model, while snapshots take its place
        test, kept = {}, {task.name: {} for task in group}
        by_name = {task.name: task for task in group}
        for step in sorted(wanted, reverse=True):
            if step != steps:
                snapshots.load(step, net)
            for (name, lang), is_default in wanted[step].items():
                test[name, step, lang], predicted = test_scores(by_name[name], lang, net)
                if is_default:
                    kept[name][lang] = predicted
        criterion = f"mean of {', '.join(lead.metrics)} on the dev set" if len(group) == 1 else \
            "mean over " + ", ".join(f"{t.name} (mean of {', '.join(t.metrics)})" for t in group) + " on the dev set"
        per_task = {}
        for task in group:
            mine = [r[task.name] for r in history]
            default = chosen[task.name]["default"]
            per_task[task.name] = {
                "dev": next(r["dev"] for r in mine if r["step"] == default),
                "metrics": {lang: test[task.name, default, lang] for lang in p["tasks"][task.name]["languages"]},
                "oracle": {lang: test[task.name, step, lang] for lang, step in chosen[task.name]["oracle"].items()},
                "selection": {
                    "criterion": f"{criterion}; ties -> the earlier point",
                    "points": points,
                    "default": default,
                    "default_on": "English dev set" if scores is not None else "last point (no English dev set)",
                    "shared_with": [t.name for t in group if t is not task],
                    "oracle_pass": how.oracle,
                    "oracle": chosen[task.name]["oracle"],
                    "no_language_dev": no_dev[task.name],
                    "test_evaluated_at": sorted({s for (n, s, _) in test if n == task.name}),
                    "history": mine,
                }}
        return per_task, kept

    with counts.watching(net), preemption.deferred():
        evaluated = {r[lead.name]["step"] for r in history}
        if resumed.step in points and resumed.step not in evaluated:  # SIGTERM had interrupted it: redo it
            evaluate(resumed.step, net)
        result = train(net, features, fmt.collate(tokenizer), hp, steps, p["seed"], ctx.device,
                       start_step=resumed.step, optimizer_state=resumed.optimizer,
                       recent_losses=resumed.recent_losses,
                       checkpoint_every=ctx.config.target_checkpoint_every, on_checkpoint=commit_checkpoint,
                       on_step=lambda done: ctx.progress(done, steps), evaluate_at=set(points), on_eval=evaluate)
        assert [r[lead.name]["step"] for r in history] == points, "an evaluation point was not reached"
        try:
            per_task, kept = test_pass()
        except Preempted:  # keep the finished training: the retry only runs the test pass
            if steps in snapshots.steps():
                snapshots.load(steps, net)
            snapshots.prune(choosable() - {steps})
            if resumed.step < steps:
                commit_checkpoint(steps, net, None, result["recent_losses"])
            raise

    out = work / "output"
    for task in group:
        predictions = out / "predictions" / task.name
        predictions.mkdir(parents=True)
        for lang in p["tasks"][task.name]["languages"]:
            fmt.write_predictions(kept[task.name][lang], predictions / f"test-{lang}.tsv")  # QA writes .json
            rows = test_set(task, lang)[0]  # and each test example's score, for the paired bootstrap
            example_scores.write(example_scores.compute(task, task.test, rows, kept[task.name][lang], lang),
                                 out / example_scores.relpath(task.name, lang))
    (out / "results.json").write_text(json.dumps({
        "job": job.id, "seed": p["seed"], "steps": steps, "train_loss": result["loss"],
        "tokens": counts.as_dict(), "training_data": getattr(features, "notes", {}), "tasks": per_task}, indent=1))
    ctx.store.commit(job.output, out, meta={"job": job.id, "kind": job.kind, "environment": determinism.environment()})
    checkpoints.clear()
    shutil.rmtree(work, ignore_errors=True)
