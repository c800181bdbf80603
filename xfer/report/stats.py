"""Statistics over seeds: mean, sample standard deviation and a percentile-bootstrap 95% interval of one value
per seed (seeds resampled with replacement, fixed RNG seed)."""

from __future__ import annotations

import math
import statistics
from functools import lru_cache

BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0  # fixed: the same results give the same intervals


@lru_cache(maxsize=None)
def _resamples(n: int):
    """Bootstrap resamples of n seeds: indices, shape (BOOTSTRAP_RESAMPLES, n), from a fixed RNG seed. Every
    statistic of a row uses the same resamples: the seeds are resampled jointly."""
    import numpy as np

    return np.random.default_rng(BOOTSTRAP_SEED).integers(0, n, size=(BOOTSTRAP_RESAMPLES, n))


def seed_statistics(values: list[float | None]) -> tuple[float | None, float | None, list[float] | None]:
    """(mean, sample standard deviation, percentile-bootstrap 95% interval) of one value per seed.

    Any None (a missing cell) -> all None; one seed -> (value, None, None): no spread can be estimated."""
    if not values or any(v is None for v in values):
        return None, None, None
    mean = math.fsum(values) / len(values)
    if len(values) == 1:
        return mean, None, None
    import numpy as np

    means = np.asarray(values, dtype=float)[_resamples(len(values))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return mean, statistics.stdev(values), [float(low), float(high)]

