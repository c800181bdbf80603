"""The training loop: exact step budgets, cycling data, length-grouped batches, bit-exact resume (the reported
loss included), SIGTERM checkpointing, NaN losses failing the run, batches prefetched in order."""

import os
import signal
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from xfer import preemption
from xfer.batching import TrainBatches
from xfer.config import Hparams
from xfer.errors import Preempted, XferError
from xfer.train import Prefetch, load_optimizer_tensors, lr_at, optimizer_tensors, steps_for_epochs, train


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


def test_random_batches_are_seeded_permutations():
    b = TrainBatches(size=10, batch_size=4, seed=1, grouping="random")
    assert b.per_epoch == 3
    epoch0 = np.concatenate([b.indices(i) for i in range(3)])
    epoch1 = np.concatenate([b.indices(i) for i in range(3, 6)])
    assert sorted(epoch0) == list(range(10)) == sorted(epoch1)
    assert list(epoch0) != list(epoch1)
    assert list(TrainBatches(10, 4, 1, grouping="random").indices(4)) == list(b.indices(4))
    # the plain random batches are the permutation cut in order (xfer's batches before length grouping)
    order = np.random.default_rng([1, 0]).permutation(10)
    assert [list(b.indices(i)) for i in range(3)] == [list(order[:4]), list(order[4:8]), list(order[8:])]


def test_length_grouped_batches_are_unbiased_passes_of_similar_lengths():
    rng = np.random.default_rng(0)
    lengths = np.clip(rng.lognormal(3.5, 0.6, size=5000).astype(int), 5, 256)
    grouped = TrainBatches(5000, 32, seed=7, lengths=lengths)
    plain = TrainBatches(5000, 32, seed=7, grouping="random")
    assert grouped.per_epoch == plain.per_epoch == 157
    for epoch in range(2):
        seen = np.concatenate([grouped.indices(epoch * 157 + j) for j in range(157)])
        assert sorted(seen) == list(range(5000))  # every example exactly once per epoch
    assert [list(grouped.indices(i)) for i in range(157)] != [list(grouped.indices(i)) for i in range(157, 314)]
    # a pure function of (seed, i): a fresh instance (a resumed run) draws the same batches, in any order
    fresh = TrainBatches(5000, 32, seed=7, lengths=lengths)
    assert all(list(fresh.indices(i)) == list(grouped.indices(i)) for i in (200, 3, 156, 157))

    def real_over_computed(b):
        batches = [b.indices(i) for i in range(b.per_epoch)]
        return sum(lengths[x].sum() for x in batches) / sum(lengths[x].max() * len(x) for x in batches)

    assert real_over_computed(grouped) > 0.9 > 0.6 > real_over_computed(plain)
    # batch lengths do not follow the position in the epoch: the sorted pools' batches are shuffled
    widths = [lengths[grouped.indices(i)].max() for i in range(50)]
    assert widths != sorted(widths, reverse=True)


def test_resume_from_checkpoint_is_bit_exact():
    full = Regressor()
    train(full, DATA, collate, HP, total_steps=9, seed=5, device=torch.device("cpu"))

    saved = {}

    def checkpoint(step, model, opt, recent_losses):
        if step == 6:
            saved["model"] = {k: v.clone() for k, v in model.state_dict().items()}
            saved["opt"] = optimizer_tensors(opt)
            saved["losses"] = recent_losses

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


def test_a_resumed_run_reports_the_loss_of_an_uninterrupted_one():
    """The reported loss is the mean over the last steps; a run resumed inside that window reads the steps
    before the checkpoint from it."""
    full = train(Regressor(), DATA, collate, HP, total_steps=9, seed=5, device=torch.device("cpu"))
    saved = {}

    def checkpoint(step, model, opt, recent_losses):
        saved.update(model={k: v.clone() for k, v in model.state_dict().items()}, opt=optimizer_tensors(opt),
                     losses=list(recent_losses))

    train(Regressor(), DATA, collate, HP, total_steps=9, seed=5, device=torch.device("cpu"), checkpoint_every=4,
          on_checkpoint=checkpoint)
    assert len(saved["losses"]) == 8  # the checkpoint at step 8 carries the losses of steps 0..7
    resumed = Regressor()
    resumed.load_state_dict(saved["model"])
    result = train(resumed, DATA, collate, HP, total_steps=9, seed=5, device=torch.device("cpu"), start_step=8,
                   optimizer_state=saved["opt"], recent_losses=saved["losses"])
    assert result["loss"] == full["loss"] and result["recent_losses"] == full["recent_losses"]
    # without the checkpoint's losses, the window would hold only the resumed step
    alone = Regressor()
    alone.load_state_dict(saved["model"])
    assert train(alone, DATA, collate, HP, total_steps=9, seed=5, device=torch.device("cpu"), start_step=8,
                 optimizer_state=saved["opt"])["recent_losses"] == full["recent_losses"][-1:]


def test_a_nan_loss_fails_the_run():
    hp = Hparams(lr=1e30, batch_size=4, warmup=0.0, max_grad_norm=1e30)
    with pytest.raises(XferError, match="NaN or infinite by step 20"):
        train(Regressor(), [{"x": r["x"] * 1e30, "y": r["y"]} for r in DATA], collate, hp, total_steps=20, seed=0,
              device=torch.device("cpu"))


def test_prefetch_yields_in_order_and_raises_the_producer_s_error():
    def make(k):
        if k == 5:
            raise ValueError("bad row 5")
        return {"k": torch.tensor(k)}

    feed = Prefetch(make, 2, 9, pin=False, depth=2)
    assert [int(feed.next()["k"]) for _ in range(3)] == [2, 3, 4]
    with pytest.raises(ValueError, match="bad row 5"):
        feed.next()
    feed.close()
    done = Prefetch(lambda k: {"k": k}, 0, 2, pin=False)
    assert [done.next()["k"] for _ in range(2)] == [0, 1]
    with pytest.raises(StopIteration):
        done.next()
    done.close()


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

    def checkpoint(step, model, opt, recent_losses):
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

    def checkpoint(step, model, opt, recent_losses):
        calls.append((step, len(recent_losses)))

    def on_step(done):
        if done == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    with preemption.handling_sigterm():
        with pytest.raises(Preempted, match="at step 2 of 50; checkpoint committed"):
            train(Regressor(), DATA, collate, HP, total_steps=50, seed=0, device=torch.device("cpu"),
                  checkpoint_every=100, on_checkpoint=checkpoint, on_step=on_step)
    assert calls == [(2, 2)]
    assert signal.getsignal(signal.SIGTERM) is before


def test_sigterm_outside_the_loop_stops_at_once():
    with preemption.handling_sigterm():
        with pytest.raises(Preempted, match="SIGTERM before any checkpoint"):
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the handler runs between bytecodes
                pass
