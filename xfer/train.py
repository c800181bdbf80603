"""The training loop: exactly N optimizer steps of AdamW with linear warm-up and decay.

Batches are a pure function of (seed, step): every epoch is a fresh seeded permutation of the data, the data
is cycled when the budget asks for more steps than one epoch holds, and the torch RNG (dropout) is reseeded
at every step. A run resumed from a checkpoint at step k therefore takes exactly the steps an uninterrupted
run would have taken. Multi-task training (`TaskMixture`) keeps that property: the task each step trains on
is drawn from a seeded stream too. Optimizer state is saved as safetensors tensors, never pickled.
"""

from __future__ import annotations

import math
import signal
from dataclasses import dataclass
from typing import Callable, Collection, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from xfer.config import Hparams
from xfer.errors import XferError

NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")


@dataclass
class Batches:
    """Deterministic micro-batches: `batch(i)` is the i-th micro-batch of the seeded, cycled order."""

    size: int
    batch_size: int
    seed: int

    @property
    def per_epoch(self) -> int:
        return math.ceil(self.size / self.batch_size)

    def indices(self, i: int) -> np.ndarray:
        epoch, j = divmod(i, self.per_epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(self.size)
        return order[j * self.batch_size:(j + 1) * self.batch_size]


class TaskMixture:
    """Multi-task micro-batches: every optimizer step trains on one task, drawn with probability proportional
    to its training-set size capped at `cap` (examples-proportional mixing). The task of each step comes from a
    seeded stream of uniform draws, and each task's micro-batches follow its own seeded `Batches` order, advanced
    only on the steps that drew it: what step s trains on is a function of (seed, s) alone, so a resumed run
    takes the steps an uninterrupted one would. A batch carries the task's name under "task"."""

    STREAM = 0x6D6978  # keeps the task draws apart from any other stream seeded with `seed`

    def __init__(self, datasets: dict[str, Sequence], collates: dict[str, Callable[[list], dict]],
                 sizes: dict[str, int], cap: int | None, seed: int, total_steps: int, hp: Hparams):
        self.names = list(datasets)
        self.datasets, self.collates, self.grad_accum = datasets, collates, hp.grad_accum
        capped = np.array([min(sizes[n], cap) if cap else sizes[n] for n in self.names], dtype=np.float64)
        if not (capped > 0).all():
            empty = self.names[int(np.argmin(capped))]
            raise XferError(f"mixture member {empty!r} has no training examples")
        self.weights = capped / capped.sum()
        draws = np.random.default_rng([seed, self.STREAM]).random(total_steps)
        self.schedule = np.minimum(np.searchsorted(np.cumsum(self.weights), draws, side="right"),
                                   len(self.names) - 1)
        self.rank = np.zeros(total_steps, dtype=np.int64)  # how often the step's task was drawn before it
        counts = np.zeros(len(self.names), dtype=np.int64)
        for step, task in enumerate(self.schedule):
            self.rank[step] = counts[task]
            counts[task] += 1
        self.batches = [Batches(len(datasets[n]), hp.batch_size,
                                int(np.random.SeedSequence([seed, i]).generate_state(1)[0]))
                        for i, n in enumerate(self.names)]

    def task(self, step: int) -> str:
        return self.names[int(self.schedule[step])]

    def draws(self, steps: int) -> dict[str, int]:
        """How many of the first `steps` steps train on each task."""
        counts = np.bincount(self.schedule[:steps], minlength=len(self.names))
        return {name: int(n) for name, n in zip(self.names, counts)}

    def batch(self, step: int, micro: int) -> dict:
        t = int(self.schedule[step])
        name, data = self.names[t], self.datasets[self.names[t]]
        rows = [data[int(i)] for i in self.batches[t].indices(int(self.rank[step]) * self.grad_accum + micro)]
        return {**self.collates[name](rows), "task": name}


def steps_per_epoch(size: int, hp: Hparams) -> int:
    """Optimizer steps of one epoch over `size` features."""
    return math.ceil(size / (hp.batch_size * hp.grad_accum))


def steps_for_epochs(size: int, hp: Hparams) -> int:
    """Optimizer steps of a target phase: the task's epochs, capped by `max_steps`."""
    steps = max(1, math.ceil(steps_per_epoch(size, hp) * (hp.epochs or 1)))
    return min(steps, hp.max_steps) if hp.max_steps else steps


def optimizer(model: torch.nn.Module, hp: Hparams) -> torch.optim.AdamW:
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if name.endswith(NO_DECAY) else decay).append(param)
    groups = [{"params": decay, "weight_decay": hp.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=hp.lr, eps=hp.adam_eps)


def lr_at(step: int, total: int, hp: Hparams) -> float:
    warmup = int(hp.warmup * total)
    if step < warmup:
        return hp.lr * (step + 1) / warmup
    return hp.lr * max(0.0, (total - step) / max(1, total - warmup))


def optimizer_tensors(opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """The optimizer's state as a flat dict of tensors, for safetensors."""
    flat = {}
    for index, state in opt.state_dict()["state"].items():
        for name, value in state.items():
            flat[f"{index}.{name}"] = torch.as_tensor(value).detach().cpu().clone()
    return flat


def load_optimizer_tensors(opt: torch.optim.Optimizer, flat: dict[str, torch.Tensor]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in flat.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": opt.state_dict()["param_groups"]})


class StopFlag:
    """Set by SIGTERM (preemption, pod deletion); the loop checkpoints and stops at the next step."""

    def __init__(self) -> None:
        self.set = False

    def __enter__(self) -> StopFlag:
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread: no signal handling
            self._previous = None
        return self

    def _handle(self, signum, frame) -> None:
        self.set = True

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def train(
    model: torch.nn.Module,
    dataset: Dataset | Sequence | TaskMixture,
    collate: Callable[[list], dict],
    hp: Hparams,
    total_steps: int,
    seed: int,
    device: torch.device,
    *,
    start_step: int = 0,
    optimizer_state: dict[str, torch.Tensor] | None = None,
    checkpoint_every: int | None = None,
    on_checkpoint: Callable[[int, torch.nn.Module, torch.optim.Optimizer], None] | None = None,
    on_step: Callable[[int, float], None] | None = None,
    stop: StopFlag | None = None,
    evaluate_at: Collection[int] = (),
    on_eval: Callable[[int, torch.nn.Module], None] | None = None,
) -> dict[str, float]:
    """Train in place for steps [start_step, total_steps); returns {"loss": mean loss of the last steps}.

    `dataset` is a sequence of features batched by `collate`, or a `TaskMixture` (which batches itself).

    `on_checkpoint(step, model, opt)` is called every `checkpoint_every` steps (not at the end) and when
    `stop` is set, after which the loop returns early with {"stopped_at": step}.
    `on_eval(step, model)` is called once `step` optimizer steps are done, for each step in `evaluate_at`
    (the last step included); the model is put back in training mode afterwards. It leaves the training
    trajectory unchanged: the torch RNG is reseeded at every step and evaluation takes no gradient.
    """
    model.to(device).train()
    opt = optimizer(model, hp)
    if optimizer_state:
        load_optimizer_tensors(opt, optimizer_state)
    if isinstance(dataset, TaskMixture):
        draw = dataset.batch
    else:
        batches = Batches(len(dataset), hp.batch_size, seed)

        def draw(step: int, micro: int) -> dict:
            return collate([dataset[int(i)] for i in batches.indices(step * hp.grad_accum + micro)])
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast(
        "cpu", enabled=False)
    recent: list[float] = []
    for step in range(start_step, total_steps):
        torch.manual_seed(seed * 1_000_003 + step)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, total_steps, hp)
        step_loss = 0.0
        for micro in range(hp.grad_accum):
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in draw(step, micro).items()}
            with autocast:
                loss = model(**batch).loss / hp.grad_accum
            loss.backward()
            step_loss += loss.item()
        torch.nn.utils.clip_grad_norm_(model.parameters(), hp.max_grad_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        recent = (recent + [step_loss])[-50:]
        if on_step:
            on_step(step + 1, step_loss)
        done = step + 1
        if on_eval and done in evaluate_at:
            on_eval(done, model)
            model.train()
        if stop is not None and stop.set and done < total_steps:
            if on_checkpoint:
                on_checkpoint(done, model, opt)
            return {"stopped_at": done}
        if on_checkpoint and checkpoint_every and done % checkpoint_every == 0 and done < total_steps:
            on_checkpoint(done, model, opt)
    return {"loss": float(np.mean(recent)) if recent else float("nan")}
