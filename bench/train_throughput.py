"""Benchmark: real tokens per second of the training loop, against the loop before length grouping and against
Hugging Face's Trainer (defaults, and `train_sampling_strategy="group_by_length"`), on the same model and data,
measured in the same run.

Data: classification pairs whose token counts follow the MNLI length model of `xfer.hub_stats` (lognormal,
median 35, clipped to 256), random token ids; model: an XLM-R-architecture classifier (default 4 layers,
hidden 256, 4 heads, feed-forward 1024), randomly initialised. Every variant trains the same number of steps
of batch 32 (AdamW, linear schedule, grad clipping 1.0); real tokens are counted at the encoder's forward
(`xfer.tokens`), time and tokens from the end of the warm-up steps to the last step (each variant's best of
`--repeats`). Variants:

    old      the training loop of xfer before this change (per-step permutation of the whole dataset, a sync
             per micro-step, HF's DataCollatorWithPadding, random batches), kept below as the baseline
    hf       transformers.Trainer, its defaults (random sampling)
    hf-group transformers.Trainer with train_sampling_strategy="group_by_length"
    new      xfer.train.train (length-grouped batches, fused AdamW, no per-step sync; prefetched collation on CUDA)

    python bench/train_throughput.py [--layers 4 --hidden 256 --steps 120 --rows 20000 --repeats 2]
    python bench/train_throughput.py --device cuda --layers 24 --hidden 1024 --heads 16   # on a GPU
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from xfer import hub_stats, tokens  # noqa: E402
from xfer.config import Hparams  # noqa: E402


def make_data(rows: int, vocab: int, seed: int = 0) -> list[dict]:
    lengths = hub_stats.lengths("mnli", rows, seed=seed, max_length=256)
    rng = np.random.default_rng(seed)
    return [{"input_ids": [0] + rng.integers(5, vocab, size=int(n) - 2).tolist() + [2],
             "labels": int(rng.integers(0, 3))} for n in lengths]


def make_model(args, vocab: int):
    from transformers import AutoModelForSequenceClassification, XLMRobertaConfig

    config = XLMRobertaConfig(vocab_size=vocab, hidden_size=args.hidden, num_hidden_layers=args.layers,
                              num_attention_heads=args.heads, intermediate_size=4 * args.hidden,
                              max_position_embeddings=514, num_labels=3, pad_token_id=1)
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_config(config, attn_implementation="sdpa")


def tokenizer(vocab: int):
    from xfer.tiny import train_tokenizer

    tok = train_tokenizer([f"w{i} w{i + 1} w{i + 2}" for i in range(400)], vocab_size=300)
    assert tok.pad_token_id == 1
    return tok


class Clock:
    """The wall time and the real tokens of the steps after the first `warmup` ones: read at the end of step
    `warmup` and of the last step (after a device sync), so the tokens counted are exactly those of the timed
    steps - length-grouped batches differ widely in size, and Trainer's first batch is its longest."""

    def __init__(self, warmup: int, steps: int, counts: tokens.TokenCounts, device: torch.device):
        self.warmup, self.steps, self.counts, self.device = warmup, steps, counts, device
        self.ticks, self.marks = 0, []

    def tick(self, *_):
        self.ticks += 1
        if self.ticks in (self.warmup, self.steps):
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            self.marks.append((time.perf_counter(), self.counts.as_dict()["train"]))

    def rate(self) -> tuple[float, float]:
        """(real tokens per second, real / computed) over the timed steps."""
        (t0, c0), (t1, c1) = self.marks
        real, computed = c1["real"] - c0["real"], c1["computed"] - c0["computed"]
        return real / (t1 - t0), real / computed


# --- the old loop (xfer.train.train before length grouping), the baseline ---------------------------


def old_train(model, dataset, collate, hp: Hparams, total_steps: int, seed: int, device, on_step) -> None:
    from xfer.train import lr_at, optimizer

    def indices(i: int) -> np.ndarray:  # every step permutes the whole dataset again
        per_epoch = math.ceil(len(dataset) / hp.batch_size)
        epoch, j = divmod(i, per_epoch)
        order = np.random.default_rng([seed, epoch]).permutation(len(dataset))
        return order[j * hp.batch_size:(j + 1) * hp.batch_size]

    model.to(device).train()
    opt = optimizer(model, hp)
    for step in range(total_steps):
        torch.manual_seed(seed * 1_000_003 + step)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, total_steps, hp)
        step_loss = 0.0
        batch = {k: v.to(device) for k, v in collate([dataset[int(i)] for i in indices(step)]).items()}
        loss = model(**batch).loss
        loss.backward()
        step_loss += loss.item()  # a sync per micro-step
        torch.nn.utils.clip_grad_norm_(model.parameters(), hp.max_grad_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        on_step(step + 1, step_loss)


def run_old(args, data, tok, hp, device) -> tuple[float, float]:
    from transformers import DataCollatorWithPadding

    model, counts = make_model(args, args.vocab), tokens.TokenCounts()
    clock = Clock(args.warmup, args.steps, counts, device)
    pad = DataCollatorWithPadding(tok, return_tensors="pt")
    with counts.watching(model):
        old_train(model, data, pad, hp, args.steps, 1, device, clock.tick)
    return clock.rate()


def run_new(args, data, tok, hp, device) -> tuple[float, float]:
    from xfer.formats.common import collate
    from xfer.train import train

    model, counts = make_model(args, args.vocab), tokens.TokenCounts()
    clock = Clock(args.warmup, args.steps, counts, device)
    with counts.watching(model):
        train(model, data, collate(tok.pad_token_id), hp, args.steps, 1, device, on_step=clock.tick)
    return clock.rate()


def run_hf(args, data, tok, hp, device, strategy: str) -> tuple[float, float]:
    from transformers import DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments

    model, counts = make_model(args, args.vocab), tokens.TokenCounts()
    clock = Clock(args.warmup, args.steps, counts, device)

    class Ticks(TrainerCallback):
        def on_step_end(self, *a, **k):
            clock.tick()

    with tempfile.TemporaryDirectory() as out:
        targs = TrainingArguments(
            output_dir=out, per_device_train_batch_size=hp.batch_size, max_steps=args.steps,
            learning_rate=hp.lr, weight_decay=hp.weight_decay, warmup_steps=hp.warmup, max_grad_norm=1.0,
            lr_scheduler_type="linear", logging_steps=10_000, save_strategy="no", report_to="none",
            disable_tqdm=True, use_cpu=device.type == "cpu", bf16=device.type == "cuda", seed=1,
            dataloader_num_workers=0, train_sampling_strategy=strategy)
        trainer = Trainer(model=model, args=targs, train_dataset=data, processing_class=tok,
                          data_collator=DataCollatorWithPadding(tok, return_tensors="pt"), callbacks=[Ticks()])
        with counts.watching(model):
            trainer.train()
    return clock.rate()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--warmup", type=int, default=4, help="steps excluded from the timing")
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--vocab", type=int, default=8_000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--only", nargs="*", default=["old", "hf", "hf-group", "new"])
    args = ap.parse_args()
    from xfer import model as models

    device = models.device(args.device)
    data = make_data(args.rows, args.vocab)
    tok = tokenizer(args.vocab)
    hp = Hparams(lr=1e-5, batch_size=32, max_length=256)
    runners = {"old": lambda: run_old(args, data, tok, hp, device),
               "hf": lambda: run_hf(args, data, tok, hp, device, "random"),
               "hf-group": lambda: run_hf(args, data, tok, hp, device, "group_by_length"),
               "new": lambda: run_new(args, data, tok, hp, device)}
    best: dict[str, tuple[float, float]] = {}
    for _ in range(args.repeats):  # alternate the variants, keep each one's fastest run
        for name in args.only:
            rate, efficiency = runners[name]()
            if name not in best or rate > best[name][0]:
                best[name] = (rate, efficiency)
    print(f"model: {args.layers} layers, hidden {args.hidden}, {args.heads} heads; device {device}; "
          f"{args.steps} steps ({args.warmup} untimed) of batch 32 on MNLI-like lengths ({args.rows} rows), "
          f"best of {args.repeats}")
    print(f"{'variant':<10} {'real tokens/s':>14} {'real/computed':>14} {'vs old':>8}")
    for name in args.only:
        rate, efficiency = best[name]
        print(f"{name:<10} {rate:>14,.0f} {efficiency:>14.3f} "
              f"{rate / best['old'][0] if 'old' in best else float('nan'):>7.2f}x")
    if "new" in best and "hf-group" in best:
        print(f"new / hf-group: {best['new'][0] / best['hf-group'][0]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
