"""The training loop: exactly N optimizer steps of AdamW with linear warm-up and decay.

Batches are a pure function of (seed, step) (`xfer.batching.TrainBatches`: length-grouped by default, every
epoch one seeded pass over the data, the data cycled when the budget asks for more steps than one epoch
holds), and the torch RNG (dropout) is reseeded at every step. A run resumed from a checkpoint at step k
therefore takes exactly the steps an uninterrupted run would have taken, and reports the same loss (the
checkpoint carries the recent step losses). Multi-task training (`TaskMixture`) keeps that property: the task
each step trains on is drawn from a seeded stream too. Optimizer state is saved as safetensors tensors, never
pickled.

Kept off the step's critical path: on CUDA, batches are collated and pinned by a background thread a few
steps ahead (on the CPU they are collated inline: a second thread would only take cores from the step);
losses are accumulated on the device and read only at checkpoints, every `CHECK_EVERY` steps (a NaN/inf
loss then fails the job, nothing is reported from it) and at the end; AdamW is fused (one kernel over all
parameters, on the CPU and CUDA) and TF32 is on for float32 matmuls on CUDA (`xfer.model.device`). SIGTERM
(`xfer.preemption`) commits a checkpoint at the next step boundary and raises `Preempted`.
"""

from __future__ import annotations

import math
import queue
import threading
from typing import Callable, Collection, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from xfer import preemption
from xfer.batching import TrainBatches, lengths_of
from xfer.config import Hparams
from xfer.errors import Preempted, XferError

NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
LOSS_WINDOW = 50  # the reported loss is the mean over the last this many steps
CHECK_EVERY = 100  # steps between checks that the loss is finite (one device sync each)
PREFETCH = 4  # micro-batches collated ahead of the step (CUDA)
FUSED_ADAMW = ("cpu", "cuda")  # devices with a fused AdamW kernel


class TaskMixture:
    """Multi-task micro-batches: every optimizer step trains on one task, drawn with probability proportional
    to its training-set size capped at `cap` (examples-proportional mixing). The task of each step comes from a
    seeded stream of uniform draws, and each task's micro-batches follow its own seeded `TrainBatches` order,
    advanced only on the steps that drew it: what step s trains on is a function of (seed, s) alone, so a
    resumed run takes the steps an uninterrupted one would. A batch carries the task's name under "task"."""

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
        self.batches = [batches_for(datasets[n], hp, int(np.random.SeedSequence([seed, i]).generate_state(1)[0]))
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


def batches_for(dataset: Sequence, hp: Hparams, seed: int) -> TrainBatches:
    """The batch order of a dataset of features under `hp` (length-grouped unless `hp.batching` is random, or
    the features hold no token ids to measure)."""
    grouping = getattr(hp, "batching", "length")
    if not len(dataset) or not isinstance(dataset[0], Mapping) or "input_ids" not in dataset[0]:
        grouping = "random"
    lengths = lengths_of(dataset) if grouping == "length" else None
    return TrainBatches(len(dataset), hp.batch_size, seed, lengths, grouping)


def steps_per_epoch(size: int, hp: Hparams) -> int:
    """Optimizer steps of one epoch over `size` features."""
    return math.ceil(size / (hp.batch_size * hp.grad_accum))


def steps_for_epochs(size: int, hp: Hparams) -> int:
    """Optimizer steps of a target phase: the task's epochs, capped by `max_steps`."""
    steps = max(1, math.ceil(steps_per_epoch(size, hp) * (hp.epochs or 1)))
    return min(steps, hp.max_steps) if hp.max_steps else steps


def optimizer(model: torch.nn.Module, hp: Hparams, device: torch.device | None = None) -> torch.optim.AdamW:
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if name.endswith(NO_DECAY) else decay).append(param)
    groups = [{"params": decay, "weight_decay": hp.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = device is not None and device.type in FUSED_ADAMW
    return torch.optim.AdamW(groups, lr=hp.lr, eps=hp.adam_eps, **({"fused": True} if fused else {}))


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


class Inline:
    """`make(k)` for k in [start, stop), made on demand in the calling thread: on the CPU the step and the
    collation share the same cores, so a second thread only contends with the step's own threads."""

    def __init__(self, make: Callable[[int], dict], start: int, stop: int):
        self._make, self._next, self._stop = make, start, stop

    def next(self) -> dict:
        if self._next >= self._stop:
            raise StopIteration
        self._next += 1
        return self._make(self._next - 1)

    def close(self) -> None:
        pass


class Prefetch:
    """`make(k)` for k in [start, stop), produced in order by a background thread `depth` items ahead (pinned
    for a non-blocking copy when `pin`). An exception in `make` is raised by `next`."""

    _END = object()

    def __init__(self, make: Callable[[int], dict], start: int, stop: int, pin: bool, depth: int = PREFETCH):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._fill, args=(make, start, stop, pin), daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _fill(self, make, start: int, stop: int, pin: bool) -> None:
        try:
            for k in range(start, stop):
                batch = make(k)
                if pin:
                    batch = {key: v.pin_memory() if torch.is_tensor(v) else v for key, v in batch.items()}
                if not self._put(batch):
                    return
        except BaseException as exc:  # handed to the consumer
            self._put(exc)
            return
        self._put(self._END)

    def next(self) -> dict:
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        if item is self._END:
            raise StopIteration
        return item

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=5)


def _finite_or_fail(bad: torch.Tensor, step: int) -> None:
    if bool(bad.item()):
        raise XferError(f"the training loss became NaN or infinite by step {step}: the run diverged "
                        "(lower the learning rate?); no score is reported from it")


def train(
    model: torch.nn.Module,
    dataset: Dataset | Sequence | TaskMixture,
    collate: Callable[[list], dict] | None,
    hp: Hparams,
    total_steps: int,
    seed: int,
    device: torch.device,
    *,
    start_step: int = 0,
    optimizer_state: dict[str, torch.Tensor] | None = None,
    recent_losses: Sequence[float] = (),
    checkpoint_every: int | None = None,
    on_checkpoint: Callable[[int, torch.nn.Module, torch.optim.Optimizer, list[float]], None] | None = None,
    on_step: Callable[[int], None] | None = None,
    evaluate_at: Collection[int] = (),
    on_eval: Callable[[int, torch.nn.Module], None] | None = None,
) -> dict[str, float]:
    """Train in place for steps [start_step, total_steps); returns {"loss": mean of the last `LOSS_WINDOW`
    step losses}.

    `dataset` is a sequence of features batched by `collate`, or a `TaskMixture` (which batches itself).
    `recent_losses`: a resumed run's loss window, as its checkpoint recorded it.

    `on_checkpoint(step, model, opt, recent_losses)` is called every `checkpoint_every` steps (not at the
    end), and once SIGTERM has arrived (at the next step boundary, or when it interrupts `on_eval`), after
    which `Preempted` is raised. `on_eval(step, model)` is called once `step` optimizer steps are done, for each
    step in `evaluate_at` (the last step included); the model is put back in training mode afterwards. It
    leaves the training trajectory unchanged: the torch RNG is reseeded at every step and evaluation takes no
    gradient.
    """
    model.to(device).train()
    opt = optimizer(model, hp, device)
    if optimizer_state:
        load_optimizer_tensors(opt, optimizer_state)
    if isinstance(dataset, TaskMixture):
        def make(k: int) -> dict:
            return dataset.batch(*divmod(k, hp.grad_accum))
    else:
        batches = batches_for(dataset, hp, seed)

        def make(k: int) -> dict:
            return collate([dataset[int(i)] for i in batches.indices(k)])

    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast(
        "cpu", enabled=False)
    window = torch.full((LOSS_WINDOW,), float("nan"), device=device)  # step s's loss at s % LOSS_WINDOW
    for offset, loss in enumerate(recent_losses):
        step = start_step - len(recent_losses) + offset
        window[step % LOSS_WINDOW] = float(loss)
    bad = torch.zeros((), dtype=torch.bool, device=device)
    params = [p for p in model.parameters() if p.requires_grad]

    def losses_so_far(done: int) -> list[float]:
        steps = range(max(0, done - LOSS_WINDOW), done)
        values = window.tolist()
        return [values[s % LOSS_WINDOW] for s in steps if not math.isnan(values[s % LOSS_WINDOW])]  # nan: unknown

    checkpointed = [start_step]

    def checkpoint(done: int) -> None:
        _finite_or_fail(bad, done)
        if on_checkpoint and checkpointed[0] != done:
            on_checkpoint(done, model, opt, losses_so_far(done))
            checkpointed[0] = done

    first, stop = start_step * hp.grad_accum, total_steps * hp.grad_accum
    feed = Prefetch(make, first, stop, pin=True) if device.type == "cuda" else Inline(make, first, stop)
    try:
        with preemption.deferred():
            for step in range(start_step, total_steps):
                torch.manual_seed(seed * 1_000_003 + step)
                for group in opt.param_groups:
                    group["lr"] = lr_at(step, total_steps, hp)
                step_loss = torch.zeros((), device=device)
                for _ in range(hp.grad_accum):
                    batch = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v
                             for k, v in feed.next().items()}
                    with autocast:
                        loss = model(**batch).loss / hp.grad_accum
                    loss.backward()
                    step_loss += loss.detach().float()
                torch.nn.utils.clip_grad_norm_(params, hp.max_grad_norm)
                opt.step()
                opt.zero_grad(set_to_none=True)
                window[step % LOSS_WINDOW] = step_loss
                bad |= ~torch.isfinite(step_loss)
                done = step + 1
                if on_step:
                    on_step(done)
                if done % CHECK_EVERY == 0:
                    _finite_or_fail(bad, done)
                if on_eval and done in evaluate_at:
                    try:
                        on_eval(done, model)
                    except Preempted:  # the evaluation at `done` is redone on resume
                        checkpoint(done)
                        raise
                    model.train()
                if preemption.requested():
                    checkpoint(done)
                    raise Preempted(f"stopped by SIGTERM at step {done} of {total_steps}"
                                    + ("; checkpoint committed" if on_checkpoint else ""))
                if checkpoint_every and done % checkpoint_every == 0 and done < total_steps:
                    checkpoint(done)
    finally:
        feed.close()
    _finite_or_fail(bad, total_steps)
    recent = losses_so_far(total_steps)
    return {"loss": float(np.mean(recent)) if recent else float("nan"), "recent_losses": recent}
