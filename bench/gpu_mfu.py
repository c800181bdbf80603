"""Benchmark (GPU): model FLOPs utilisation of xfer's training loop and inference on an XLM-R-Large-shaped
encoder in bf16, over real tokens, and the training throughput ratio to Hugging Face's Trainer defaults in the
same run. Needs CUDA; it is never run in CI.

MFU = FLOPs of the real tokens per second / the GPU's peak dense bf16 FLOP/s (`--peak-tflops`, default 989: H100
and H200 SXM), with FLOPs per token from `xfer.cost.flops` (Kaplan et al. 2020: 6 N per trained token, 2 N per
inferred one, N the non-embedding parameters, plus attention; padding is not counted as useful work).
Data: MNLI-like pairs (training; `xfer.hub_stats` length model) and XNLI-like pairs (inference).

    python bench/gpu_mfu.py                                  # XLM-R Large shape: 24 layers, hidden 1024
    python bench/gpu_mfu.py --batch-size 64 --steps 60       # other settings
    python bench/gpu_mfu.py --allow-cpu --layers 2 --hidden 64 --heads 2 --steps 6   # a smoke run on CPU
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import train_throughput as tt  # noqa: E402
from xfer import cost, hub_stats, tokens  # noqa: E402
from xfer.config import Hparams  # noqa: E402
from xfer.formats import common  # noqa: E402


def mfu(real_tokens: float, seconds: float, shape: cost.Shape, width: float, peak: float, training: bool) -> float:
    useful = cost.flops(cost.Positions(real_tokens, real_tokens, real_tokens * width), shape, training=training)
    return useful / seconds / (peak * 1e12)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--vocab", type=int, default=250_002)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=8)
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--eval-rows", type=int, default=20_000)
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    ap.add_argument("--allow-cpu", action="store_true", help="run on CPU (a smoke test of the script only)")
    args = ap.parse_args()
    if not torch.cuda.is_available() and not args.allow_cpu:
        print("gpu_mfu: needs a CUDA GPU (use --allow-cpu for a smoke run of the script)", file=sys.stderr)
        return 2
    from xfer import model as models

    device = models.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    shape = cost.Shape(args.layers, args.hidden, 4 * args.hidden)
    data = tt.make_data(args.rows, args.vocab)
    tok = tt.tokenizer(args.vocab)
    hp = Hparams(lr=1e-5, batch_size=args.batch_size, max_length=256)
    targs = argparse.Namespace(layers=args.layers, hidden=args.hidden, heads=args.heads, vocab=args.vocab,
                               steps=args.steps, warmup=args.warmup)
    print(f"device: {name}; model {args.layers} layers, hidden {args.hidden} ({shape.params / 1e6:.0f}M "
          f"non-embedding parameters), bf16 autocast; batch {args.batch_size}; peak {args.peak_tflops:g} TFLOP/s")

    results = {}
    for variant, run in (("xfer", tt.run_new), ("hf", lambda *a: tt.run_hf(*a, "random"))):
        seconds, counted = run(targs, data, tok, hp, device)
        real = counted["real"] * (args.steps - args.warmup) / args.steps
        width = counted["computed"] / max(1, args.steps * args.batch_size)  # mean padded width of a row
        results[variant] = (real / seconds, mfu(real, seconds, shape, width, args.peak_tflops, training=True),
                            counted["real"] / counted["computed"])
        if device.type == "cuda":
            torch.cuda.empty_cache()
    for variant, (rate, util, fill) in results.items():
        print(f"training  {variant:<5} {rate:>12,.0f} real tokens/s  MFU {util:6.1%}  real/computed {fill:.3f}")
    print(f"training  xfer / hf Trainer defaults: {results['xfer'][0] / results['hf'][0]:.2f}x")

    lengths = hub_stats.lengths("xnli", args.eval_rows, seed=1, max_length=256)
    rng = np.random.default_rng(1)
    features = [{"input_ids": [0] + rng.integers(5, args.vocab, size=int(n) - 2).tolist() + [2]} for n in lengths]
    net = tt.make_model(targs, args.vocab)
    counts = tokens.TokenCounts()
    with counts.watching(net):
        common.infer(net, features[:256], common.collate(1), 64 * 256, device, common.logits)  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        common.infer(net, features, common.collate(1), 64 * 256, device, common.logits)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    real = float(sum(len(f["input_ids"]) for f in features))
    width = float(np.mean(lengths))
    print(f"inference xfer  {real / seconds:>12,.0f} real tokens/s  MFU "
          f"{mfu(real, seconds, shape, width, args.peak_tflops, training=False):6.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
