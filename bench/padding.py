"""Benchmark: how much of what the sweep computes is real tokens, before and after length-aware batching.

Part 1, per format, on length distributions modelled on the real datasets (`xfer.hub_stats`: lognormal token
counts per model input, median and spread set to measured XLM-R means; QA inputs cut into 384/128 doc-stride
windows; multiple choice padded to its longest choice): real / computed token positions of

    training   old: random batches of 32 padded to the longest      new: xfer.batching.TrainBatches (length)
    inference  old: dataset order, 64 rows a batch                  new: xfer.batching.inference_batches

Part 2, the whole paper sweep (configs/paper.yaml without CCG, XLM-R Large, modelled data), through the cost
model of `xfer plan --cost` (`xfer.cost`): the old path (random batches, dataset-order inference, every
target-language dev set and every test set at every evaluation point) against the new defaults (length
grouping, sorted inference, English dev at each point, tests only at the chosen point): token positions
computed, real/computed, and GPU-hours at the stated MFU.

    python bench/padding.py [--mfu 0.25] [--peak-tflops 989]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from xfer import batching, cost, hub_stats, tasks  # noqa: E402
from xfer.config import Hparams, parse  # noqa: E402
from xfer.plan import build_plan  # noqa: E402

OLD_EVAL_ROWS = 64  # the old inference: `eval_batch_size` rows of the dataset, in order
FORMATS = [  # (format, training task, evaluation task)
    ("classification", "mnli", "xnli"),
    ("tagging", "panx", "panx"),
    ("span_qa", "squad", "xquad"),
    ("multiple_choice", "hellaswag", "hellaswag"),
]


def old_inference(shapes, rows_per_batch: int = OLD_EVAL_ROWS) -> cost.Positions:
    """The inference before sorting: consecutive rows of the dataset, padded to each batch's longest."""
    out = cost.Positions()
    for start in range(0, len(shapes), rows_per_batch):
        batch = shapes[start:start + rows_per_batch]
        width = max(w for _, w in batch)
        rows = sum(r for r, _ in batch)
        out.add(cost.Positions(float(sum(r * w for r, w in batch)), float(rows * width), float(rows * width ** 2)))
    return out


def modelled(task_name: str, role: str, hp: Hparams) -> list:
    return cost.modelled_shapes(tasks.get(task_name), role, "en", hp)[0]


def per_format() -> None:
    print("real / computed token positions per format (modelled lengths; 1 epoch of training, 1 pass of "
          "inference)")
    print(f"{'format':<16} {'training old':>12} {'new':>6} {'ratio':>6}   {'inference old':>13} {'new':>6} "
          f"{'ratio':>6}")
    for fmt, train_task, eval_task in FORMATS:
        defaults = tasks.get(eval_task).defaults if tasks.get(eval_task).target else {}
        hp = Hparams(**{"batch_size": 32, "max_length": 256, **defaults})
        shapes = modelled(train_task, "train", hp)
        micro = len(shapes) // hp.batch_size
        old_t = cost.training_positions(shapes, hp.model_copy(update={"batching": "random"}), micro)
        new_t = cost.training_positions(shapes, hp, micro)
        eval_shapes = modelled(eval_task, "test" if tasks.get(eval_task).target else "dev", hp)
        old_i = old_inference(eval_shapes)
        new_i = cost.inference_positions(eval_shapes, hp.eval_batch_size * hp.max_length)
        e = [p.real / p.computed for p in (old_t, new_t, old_i, new_i)]
        print(f"{fmt:<16} {e[0]:>12.3f} {e[1]:>6.3f} {e[1] / e[0]:>5.2f}x   {e[2]:>13.3f} {e[3]:>6.3f} "
              f"{e[3] / e[2]:>5.2f}x")


def paper(mfu: float, peak: float) -> None:
    raw = yaml.safe_load((ROOT / "configs" / "paper.yaml").read_text())
    drop = [t for t in raw["intermediate"]["tasks"] if tasks.get(t).user_files]
    raw["intermediate"]["tasks"] = [t for t in raw["intermediate"]["tasks"] if t not in drop]
    for mixture in raw["intermediate"].get("mixtures", []):
        mixture["tasks"] = [t for t in mixture["tasks"] if t not in drop]
    raw["intermediate"].pop("files", None)
    new_cfg = parse(yaml.safe_dump(raw), "paper.yaml (without ccg)")
    # the old protocol evaluated every target-language dev set and every test set at every point: the cost
    # model's oracle pass counts the former and min(points, 1 + languages) test passes, i.e. every point
    old_raw = {**raw, "selection": {"oracle": True}}
    old_raw["intermediate"] = {**raw["intermediate"], "hparams": {**raw["intermediate"]["hparams"],
                                                                  "batching": "random"}}
    old_raw["target_hparams"] = {"batching": "random"}
    old_cfg = parse(yaml.safe_dump(old_raw), "paper.yaml (old path)")

    def totals(cfg, inference) -> tuple[cost.Positions, float, dict]:
        saved = cost.inference_positions
        cost.inference_positions = inference
        try:
            lines, meta = cost.estimate(cfg, build_plan(cfg))
        finally:
            cost.inference_positions = saved
        out, flops, parts = cost.Positions(), 0.0, {}
        for line in lines:
            out.add(line.positions)
            flops += line.flops
            if line.part != "training":
                parts.setdefault("evaluation", cost.Positions()).add(line.positions)
            else:
                parts.setdefault("training", cost.Positions()).add(line.positions)
        return out, flops, parts

    old, old_flops, old_parts = totals(old_cfg, lambda shapes, budget: old_inference(shapes))
    new, new_flops, new_parts = totals(new_cfg, cost.inference_positions)
    hours = lambda f: f / (mfu * peak * 1e12) / 3600  # noqa: E731
    print()
    print("the paper sweep (configs/paper.yaml without ccg; XLM-R Large; modelled data), old path vs new defaults")
    print(f"{'':<24} {'old':>14} {'new':>14} {'old/new':>8}")
    print(f"{'computed positions':<24} {old.computed / 1e9:>13.1f}G {new.computed / 1e9:>13.1f}G "
          f"{old.computed / new.computed:>7.2f}x")
    for part in ("training", "evaluation"):
        o, n = old_parts[part], new_parts[part]
        print(f"{'  ' + part:<24} {o.computed / 1e9:>13.1f}G {n.computed / 1e9:>13.1f}G {o.computed / n.computed:>7.2f}x")
    print(f"{'real / computed':<24} {old.real / old.computed:>14.3f} {new.real / new.computed:>14.3f}")
    for part in ("training", "evaluation"):
        o, n = old_parts[part], new_parts[part]
        print(f"{'  ' + part:<24} {o.real / o.computed:>14.3f} {n.real / n.computed:>14.3f}")
    print(f"{'GPU-hours':<24} {hours(old_flops):>14.1f} {hours(new_flops):>14.1f} {old_flops / new_flops:>7.2f}x"
          f"   (at {mfu:.0%} MFU of {peak:g} TFLOP/s)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mfu", type=float, default=0.25)
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    args = ap.parse_args()
    np.seterr(all="raise")
    per_format()
    paper(args.mfu, args.peak_tflops)
    return 0


if __name__ == "__main__":
    sys.exit(main())
