"""How long the report's paired bootstrap takes at the paper's scale: synthetic per-example scores with XTREME's
test-set sizes (every language of the nine tasks, ~0.5M examples per cell) for a baseline and `--cells` - 1
trained cells of one intermediate task (the paper's sweep: 10 intermediate entries x 5 budgets = 50, ~26M
examples), through `xfer.report.paired.paired_section` with `--resamples` resamples.

Prints the seconds of the summary (the report without the bootstrap) and of the bootstrap, their ratio, and, on one
XNLI-sized language, the speed-up of the matrix-product resampling over resampling by index (gathering each run's
values for every replicate), measured in the same run.

    python bench/report_paired.py                      # one trained cell against the baseline
    python bench/report_paired.py --cells 51           # the paper's sweep
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from xfer import example_scores as E
from xfer.report import Bootstrap, Cell, low_resource_set, summarize
from xfer.report.paired import paired_section
from xfer.report.table import cell_values
from xfer.xtreme import TASK_LANGUAGES, TASK_METRICS

# Test examples per language (sentences, questions, source sentences), XTREME's sizes to within a few percent;
# PAN-X and UD-POS vary by language: their totals over the languages are what matters here.
SIZE = {"xnli": 5010, "pawsx": 2000, "udpos": 1500, "panx": 6000, "xquad": 1190, "mlqa": 6000, "tydiqa": 560,
        "bucc2018": 9000, "tatoeba": 1000}
KIND = {"xnli": "accuracy", "pawsx": "accuracy", "tatoeba": "accuracy", "udpos": "tagging", "panx": "tagging",
        "xquad": "qa", "mlqa": "qa", "tydiqa": "qa", "bucc2018": "pairs"}


def scores(task: str, lang: str, rng, n: int) -> E.ExampleScores:
    kind = KIND[task]
    if kind == "accuracy":
        arrays = {"correct": (rng.random(n) < 0.7).astype(np.uint8)}
    elif kind == "qa":
        em = (rng.random(n) < 0.5).astype(np.float64)
        arrays = {"exact_match": em, "f1": np.where(em == 1, 1.0, rng.random(n))}
    elif kind == "pairs":
        predicted = (rng.random(n) < 0.9).astype(np.int32)
        arrays = {"true_positives": (predicted * (rng.random(n) < 0.7)).astype(np.int32), "predicted": predicted,
                  "gold": np.ones(n, np.int32)}
    else:
        gold = rng.poisson(2, n).astype(np.int32)
        predicted = np.maximum(0, gold + rng.integers(-1, 2, n)).astype(np.int32)
        tokens = rng.integers(5, 25, n).astype(np.int32)
        arrays = {"true_positives": rng.binomial(np.minimum(gold, predicted), 0.7).astype(np.int32),
                  "predicted": predicted, "gold": gold,
                  "tokens_correct": rng.binomial(tokens, 0.9).astype(np.int32), "tokens": tokens}
    names = {"accuracy": ("accuracy",), "qa": ("exact_match", "f1"), "pairs": ("precision", "recall", "f1"),
             "tagging": ("f1", "token_accuracy")}[kind]
    return E.ExampleScores(task, lang, kind, names, arrays, f"{task}/{lang}")


def by_index(values: np.ndarray, resamples: int, rng) -> np.ndarray:
    """The straightforward alternative: gather the values of every replicate's drawn examples and sum them."""
    picks = rng.integers(0, values.shape[0], size=(resamples, values.shape[0]))
    return np.stack([values[picks, j].sum(axis=1) for j in range(values.shape[1])], axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=2, help="runs: the baseline and cells - 1 trained budgets")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of XTREME's test-set sizes")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    rows, store = [], {}
    budgets = [0] + [10 * (i + 1) for i in range(args.cells - 1)]
    examples = 0
    for budget in budgets:
        for task, langs in TASK_LANGUAGES.items():
            for lang in langs:
                s = scores(task, lang, rng, max(2, int(SIZE[task] * args.scale)))
                examples += s.n
                store[Cell("paper", budget, 1, task, lang)] = s
                values = E.metrics(s)
                rows += [{"intermediate_task": "paper", "budget": budget, "seed": 1, "target_task": task,
                          "language": lang, "metric": m, "value": values[m]} for m in TASK_METRICS[task]]
    low = low_resource_set("panx-1k")
    start, cpu = time.perf_counter(), time.process_time()
    summary = summarize(rows, None, low)
    values = cell_values(rows)
    summarized, summarized_cpu = time.perf_counter() - start, time.process_time() - cpu
    start, cpu = time.perf_counter(), time.process_time()
    paired_section(summary, values, store.__getitem__, low, Bootstrap(args.resamples, 0))
    bootstrap, bootstrap_cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"{args.cells} runs, {examples:,} scored test examples ({examples // args.cells:,} per run), "
          f"{args.resamples:,} resamples")
    print(f"summary: {summarized:.1f} s ({summarized_cpu:.1f} s CPU); paired bootstrap: {bootstrap:.1f} s "
          f"({bootstrap_cpu:.1f} s CPU, all threads), {bootstrap / max(summarized, 1e-9):.0f}x the summary")

    n, runs = int(SIZE["xnli"] * args.scale), 10
    matrix = rng.random((n, runs))
    start = time.perf_counter()
    counts = np.bincount((rng.integers(0, n, size=(args.resamples, n)) + (np.arange(args.resamples) * n)[:, None])
                         .ravel(), minlength=args.resamples * n).reshape(args.resamples, n).astype(np.float64)
    counts @ matrix
    product = time.perf_counter() - start
    start = time.perf_counter()
    by_index(matrix, args.resamples, rng)
    gather = time.perf_counter() - start
    print(f"one XNLI language, {runs} runs: matrix product {product:.2f} s, by index {gather:.2f} s "
          f"({gather / product:.1f}x slower)")


if __name__ == "__main__":
    main()
