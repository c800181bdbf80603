"""The training loop: exact step budgets, cycling data, bit-exact resume, SIGTERM checkpointing."""

import os
import signal
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from xfer.config import Hparams
from xfer.train import Batches, StopFlag, load_optimizer_tensors, lr_at, optimizer_tensors, steps_for_epochs, train


class Regressor(torch.nn.Module):
    """A small model with dropout, so resuming must restore the RNG stream too."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Dropout(0.3), torch.nn.Linear(16, 1))
        self.seen = []

    def forward(self, x, y):
        self.seen.append(x[:, 0].tolist())
        return SimpleNamespace(loss=torch.nn.functional.mse_loss(self.net(x).squeeze(-1), y))


DATA = [{"x": torch.randn(4, generator=torch.Generator().manual_seed(i)), "y": torch.tensor(float(i % 3))}
        for i in range(10)]
HP = Hparams(lr=1e-2, batch_size=4, warmup=0.2)


def collate(rows):
    return {"x": torch.stack([r["x"] for r in rows]), "y": torch.stack([r["y"] for r in rows])}


def test_budget_is_exact_and_data_cycles():
    model = Regressor()
    train(model, DATA, collate, HP, total_steps=7, seed=3, device=torch.device("cpu"))
    assert len(model.seen) == 7  # 7 optimizer steps, grad_accum 1: 7 batches, ~3 epochs of 10 rows
    firsts = {v for batch in model.seen for v in batch}
    assert firsts == {float(r["x"][0]) for r in DATA}  # every row was used


def test_batches_are_seeded_permutations():
    b = Batches(size=10, batch_size=4, seed=1)
    assert b.per_epoch == 3
    epoch0 = np.concatenate([b.indices(i) for i in range(3)])
    epoch1 = np.concatenate([b.indices(i) for i in range(3, 6)])
    assert sorted(epoch0) == list(range(10)) == sorted(epoch1)
    assert list(epoch0) != list(epoch1)
    assert list(Batches(10, 4, 1).indices(4)) == list(b.indices(4))


def test_resume_from_checkpoint_is_bit_exact():
    full = Regressor()
    train(full, DATA, collate, HP, total_steps=9, seed=5, device=torch.device("cpu"))

    saved = {}

    def checkpoint(step, model, opt):
        if step == 6:
            saved["model"] = {k: v.clone() for k, v in model.state_dict().items()}
            saved["opt"] = optimizer_tensors(opt)

    first = Regressor()
    train(first, DATA, collate, HP, total_steps=9, seed=5, device=torch.device("cpu"),
          checkpoint_every=3, on_checkpoint=checkpoint)
    resumed = Regressor()
    resumed.load_state_dict(saved["model"])
    train(resumed, DATA, collate, HP, total_steps=9, seed=5, device=torch.device("cpu"),
          start_step=6, optimizer_state=saved["opt"])
    for key, value in full.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    assert resumed.seen == full.seen[6:]


class TwoHeads(torch.nn.Module):
    """A shared trunk with dropout and one head per task, as a multi-task intermediate model is."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.trunk = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Dropout(0.3))
        self.heads = torch.nn.ModuleDict({"a": torch.nn.Linear(16, 1), "b": torch.nn.Linear(16, 1)})
        self.seen = []

    def forward(self, task, x, y):
        self.seen.append((task, x[:, 0].tolist()))
        return SimpleNamespace(loss=torch.nn.functional.mse_loss(self.heads[task](self.trunk(x)).squeeze(-1), y))


def _mixture(total_steps):
    from xfer.train import TaskMixture

    other = [{"x": -r["x"], "y": r["y"] + 1} for r in DATA[:6]]
    return TaskMixture({"a": DATA, "b": other}, {"a": collate, "b": collate}, {"a": 10, "b": 6}, cap=None,
                       seed=5, total_steps=total_steps, hp=HP)


def test_mixture_resume_from_checkpoint_is_bit_exact():
    full = TwoHeads()
    train(full, _mixture(12), None, HP, total_steps=12, seed=5, device=torch.device("cpu"))
    assert {task for task, _ in full.seen} == {"a", "b"}  # both tasks are drawn in 12 steps

    saved = {}

    def checkpoint(step, model, opt):
        if step == 7:
            saved["model"] = {k: v.clone() for k, v in model.state_dict().items()}
            saved["opt"] = optimizer_tensors(opt)

    first = TwoHeads()
    train(first, _mixture(12), None, HP, total_steps=12, seed=5, device=torch.device("cpu"),
          checkpoint_every=7, on_checkpoint=checkpoint)
    resumed = TwoHeads()
    resumed.load_state_dict(saved["model"])
    train(resumed, _mixture(12), None, HP, total_steps=12, seed=5, device=torch.device("cpu"),
          start_step=7, optimizer_state=saved["opt"])
    for key, value in full.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    assert resumed.seen == full.seen[7:]


def test_optimizer_tensors_round_trip():
    model = Regressor()
    train(model, DATA, collate, HP, total_steps=2, seed=0, device=torch.device("cpu"))
    opt = torch.optim.AdamW(model.parameters())
    model(**collate(DATA[:2])).loss.backward()
    opt.step()
    flat = optimizer_tensors(opt)
    assert all(isinstance(v, torch.Tensor) for v in flat.values()) and any(k.endswith("exp_avg") for k in flat)
    other = torch.optim.AdamW(model.parameters())
    load_optimizer_tensors(other, flat)
    for key, value in optimizer_tensors(other).items():
        assert torch.equal(value, flat[key])


def test_schedule_warms_up_then_decays_to_zero():
    hp = Hparams(lr=1.0, warmup=0.1)
    lrs = [lr_at(s, 100, hp) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:])) and lrs[-1] == pytest.approx(1 / 90)


def test_steps_for_epochs():
    assert steps_for_epochs(100, Hparams(batch_size=8, epochs=2)) == 26
    assert steps_for_epochs(100, Hparams(batch_size=8, grad_accum=2, epochs=1)) == 7
    assert steps_for_epochs(100, Hparams(batch_size=8, epochs=2, max_steps=5)) == 5


def test_sigterm_commits_a_checkpoint_and_stops():
    calls = []

    def checkpoint(step, model, opt):
        calls.append(step)

    def on_step(done, loss):
        if done == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    with StopFlag() as stop:
        result = train(Regressor(), DATA, collate, HP, total_steps=50, seed=0, device=torch.device("cpu"),
                       checkpoint_every=100, on_checkpoint=checkpoint, on_step=on_step, stop=stop)
    assert result == {"stopped_at": 2} and calls == [2]
    assert signal.getsignal(signal.SIGTERM) is not StopFlag._handle
