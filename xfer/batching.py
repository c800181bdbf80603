"""Which examples go together in a batch, for training and for inference, so that little is padding.

Training (`TrainBatches`): batch `i` of the seeded, cycled order is a pure function of (seed, i), so a run
resumed at step k takes the very batches an uninterrupted run takes, and every epoch is one unbiased pass
over the data (each example exactly once, in a fresh seeded order). With `grouping="length"` (the default)
each epoch's permutation is cut into pools of `POOL_BATCHES` batches, each pool is sorted by length and cut
into batches, and the order of all the epoch's batches is shuffled (seeded): a batch holds examples of
similar length, so it is padded little (HF's `group_by_length` megabatches, plus the shuffle so that batch
length does not follow the position in the epoch). `grouping="random"` gives plain random batches, exactly
the batches of xfer before length grouping. An epoch's order is computed once and cached, not per step.

Inference (`inference_batches`): examples sorted by length, longest first, cut into batches of at most
`max_tokens` padded token positions whose examples are all at least `MIN_FILL` of the batch's longest;
callers put the outputs back in the original order.

`token_shape(feature)` is what a feature costs at the encoder: (rows, width) - a multiple-choice example is
one row per choice, all padded to its longest choice. Written by hand: the samplers of torch and HF are not
a pure function of the step (they are iterators over epochs), which bit-exact resume needs.
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import numpy as np

POOL_BATCHES = 50  # batches per length-sorted pool (HF's megabatch multiplier)
MIN_FILL = 0.95  # inference: an example joins a batch only if it is at least this share of the batch's width
GROUP_STREAM = 0x6C656E  # keeps the batch-order shuffle apart from the epoch permutation stream

Grouping = Literal["length", "random"]


def token_shape(feature: dict) -> tuple[int, int]:
    """(rows, width) a feature occupies in a batch: (1, tokens), or (choices, longest choice)."""
    ids = feature["input_ids"]
    if len(ids) and isinstance(ids[0], (list, tuple, np.ndarray)):
        return len(ids), max(len(choice) for choice in ids)
    return 1, len(ids)


def lengths_of(features: Sequence[dict]) -> np.ndarray:
    """The padded width of every feature (a multiple-choice example: its longest choice)."""
    return np.fromiter((token_shape(f)[1] for f in features), dtype=np.int64, count=len(features))


class TrainBatches:
    """Deterministic micro-batches: `indices(i)` is the i-th micro-batch of the seeded, cycled order."""

    def __init__(self, size: int, batch_size: int, seed: int, lengths: np.ndarray | None = None,
                 grouping: Grouping = "length"):
        if size < 1:
            raise ValueError("no training examples")
        if grouping == "length" and (lengths is None or len(lengths) != size):
            raise ValueError("length grouping needs one length per example")
        self.size, self.batch_size, self.seed, self.grouping = size, batch_size, seed, grouping
        self.lengths = None if lengths is None else np.asarray(lengths)
        self._epoch: int | None = None
        self._batches: list[np.ndarray] = []

    @property
    def per_epoch(self) -> int:
        return math.ceil(self.size / self.batch_size)

    def epoch(self, epoch: int) -> list[np.ndarray]:
        """The batches of one epoch, in order (computed once per epoch)."""
        if epoch != self._epoch:
            order = np.random.default_rng([self.seed, epoch]).permutation(self.size)
            if self.grouping == "random":
                batches = [order[j:j + self.batch_size] for j in range(0, self.size, self.batch_size)]
            else:
                pool = POOL_BATCHES * self.batch_size
                batches = []
                for start in range(0, self.size, pool):
                    chunk = order[start:start + pool]
                    chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
                    batches += [chunk[j:j + self.batch_size] for j in range(0, len(chunk), self.batch_size)]
                shuffle = np.random.default_rng([self.seed, epoch, GROUP_STREAM]).permutation(len(batches))
                batches = [batches[k] for k in shuffle]
            self._epoch, self._batches = epoch, batches
        return self._batches

    def indices(self, i: int) -> np.ndarray:
        epoch, j = divmod(i, self.per_epoch)
        return self.epoch(epoch)[j]


def inference_batches(shapes: Sequence[tuple[int, int]], max_tokens: int,
                      min_fill: float = MIN_FILL) -> list[np.ndarray]:
    """Batches of example indices, longest first, each at most `max_tokens` padded positions (rows x width x
    examples; an example larger than the budget gets a batch of its own), every example at least `min_fill`
    of the batch's width, so that at most 1 - min_fill of a batch is padding however few examples there are."""
    widths = np.array([w for _, w in shapes], dtype=np.int64)
    rows = np.array([r for r, _ in shapes], dtype=np.int64)
    order = np.argsort(-widths, kind="stable")
    batches, start = [], 0
    while start < len(order):
        width = max(1, int(widths[order[start]]))  # the longest of the batch: every row is padded to it
        end = start + 1
        used = int(rows[order[start]]) * width
        while (end < len(order) and used + int(rows[order[end]]) * width <= max_tokens
               and widths[order[end]] >= min_fill * width):
            used += int(rows[order[end]]) * width
            end += 1
        batches.append(order[start:end])
        start = end
    return batches
