"""Benchmark: inference throughput of length-sorted, token-budget batches (`xfer.formats.common.infer`) against
the inference before it (dataset order, `eval_batch_size` rows a batch padded to the longest), on the same
model and rows, measured in the same run; and that both give the same predictions.

Data: classification pairs with the XNLI length model of `xfer.hub_stats`, and tagging sentences with the PAN-X
one (random token ids); model: an XLM-R-architecture encoder with a classification or tagging head (default 4
layers, hidden 256). Prints rows/s of each path and their ratio (best of `--repeats`, alternating).

    python bench/predict_throughput.py [--layers 4 --hidden 256 --rows 4000 --repeats 3]
    python bench/predict_throughput.py --device cuda --layers 24 --hidden 1024 --heads 16 --rows 20000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from xfer import hub_stats  # noqa: E402
from xfer.formats import common  # noqa: E402

OLD_ROWS = 64  # eval_batch_size, the old path's rows per batch


def make_model(args, head: str, labels: int):
    from transformers import (AutoModelForSequenceClassification, AutoModelForTokenClassification,
                              XLMRobertaConfig)

    config = XLMRobertaConfig(vocab_size=args.vocab, hidden_size=args.hidden, num_hidden_layers=args.layers,
                              num_attention_heads=args.heads, intermediate_size=4 * args.hidden,
                              max_position_embeddings=514, num_labels=labels, pad_token_id=1)
    torch.manual_seed(0)
    cls = AutoModelForSequenceClassification if head == "classification" else AutoModelForTokenClassification
    return cls.from_config(config, attn_implementation="sdpa")


@torch.inference_mode()
def old_predict(model, features, pad, device) -> list[np.ndarray]:
    """The inference before sorting: dataset order, OLD_ROWS rows a batch, padded to each batch's longest."""
    model.to(device).eval()
    out = []
    for start in range(0, len(features), OLD_ROWS):
        rows = features[start:start + OLD_ROWS]
        batch = {k: v.to(device) for k, v in pad(rows).items()}
        with common.autocast(device):
            logits = model(**batch).logits.float().cpu().numpy()
        out += [logits[j, :len(r["input_ids"])] if logits.ndim == 3 else logits[j] for j, r in enumerate(rows)]
    return out


def compare(args, head: str, task: str, labels: int, device) -> None:
    lengths = hub_stats.lengths(task, args.rows, seed=1, max_length=256)
    rng = np.random.default_rng(1)
    features = [{"input_ids": [0] + rng.integers(5, args.vocab, size=int(n) - 2).tolist() + [2]} for n in lengths]
    model = make_model(args, head, labels)
    pad = common.collate(1)
    per_token = ("logits",) if head == "tagging" else ()
    best = {"old": 0.0, "new": 0.0}
    for _ in range(args.repeats):
        start = time.perf_counter()
        old = old_predict(model, features, pad, device)
        best["old"] = max(best["old"], len(features) / (time.perf_counter() - start))
        start = time.perf_counter()
        new = common.infer(model, features, pad, OLD_ROWS * 256, device, common.logits, per_token)["logits"]
        best["new"] = max(best["new"], len(features) / (time.perf_counter() - start))
    same = all(np.array_equal(a.argmax(-1), b.argmax(-1)) for a, b in zip(old, new))
    gap = max(float(np.abs(a - b).max()) for a, b in zip(old, new))
    print(f"{head:<15} {best['old']:>10,.0f} {best['new']:>10,.0f} {best['new'] / best['old']:>7.2f}x   "
          f"same predictions: {same}; largest output difference {gap:.1e}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--rows", type=int, default=4_000)
    ap.add_argument("--vocab", type=int, default=8_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    from xfer import model as models

    device = models.device(args.device)
    print(f"model: {args.layers} layers, hidden {args.hidden}; device {device}; {args.rows} rows; "
          f"old: dataset order, {OLD_ROWS} rows a batch; new: sorted, {OLD_ROWS * 256} positions a batch")
    print(f"{'head':<15} {'old rows/s':>10} {'new rows/s':>10} {'ratio':>8}")
    compare(args, "classification", "xnli", 3, device)
    compare(args, "tagging", "panx", 7, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
