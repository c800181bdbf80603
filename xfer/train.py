"""The training loop: exactly N optimizer steps of AdamW with linear warm-up and decay.

Batches are a pure function of (seed, step): every epoch is a fresh seeded permutation of the data, the data
is cycled when the budget asks for more steps than one epoch holds, and the torch RNG (dropout) is reseeded
at every step. A run resumed from a checkpoint at step k therefore takes exactly the steps an uninterrupted
run would have taken. Optimizer state is saved as safetensors tensors, never pickled.
"""

from __future__ import annotations

import math
import signal
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from xfer.config import Hparams

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


def steps_for_epochs(size: int, hp: Hparams) -> int:
    """Optimizer steps of a target phase: the task's epochs, capped by `max_steps`."""
    per_epoch = math.ceil(size / (hp.batch_size * hp.grad_accum))
    steps = max(1, math.ceil(per_epoch * (hp.epochs or 1)))
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
    dataset: Dataset | Sequence,
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
) -> dict[str, float]:
    """Train in place for steps [start_step, total_steps); returns {"loss": mean loss of the last steps}.

    `on_checkpoint(step, model, opt)` is called every `checkpoint_every` steps (not at the end) and when
    `stop` is set, after which the loop returns early with {"stopped_at": step}.
    """
    model.to(device).train()
    opt = optimizer(model, hp)
    if optimizer_state:
        load_optimizer_tensors(opt, optimizer_state)
    batches = Batches(len(dataset), hp.batch_size, seed)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast(
        "cpu", enabled=False)
    recent: list[float] = []
    for step in range(start_step, total_steps):
        torch.manual_seed(seed * 1_000_003 + step)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, total_steps, hp)
        step_loss = 0.0
        for micro in range(hp.grad_accum):
            rows = [dataset[int(i)] for i in batches.indices(step * hp.grad_accum + micro)]
            batch = {k: v.to(device) for k, v in collate(rows).items()}
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
        if stop is not None and stop.set and done < total_steps:
            if on_checkpoint:
                on_checkpoint(done, model, opt)
            return {"stopped_at": done}
        if on_checkpoint and checkpoint_every and done % checkpoint_every == 0 and done < total_steps:
            on_checkpoint(done, model, opt)
    return {"loss": float(np.mean(recent)) if recent else float("nan")}
