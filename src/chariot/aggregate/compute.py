"""Statistics of one partition's ratings, vectorised with numpy (definitions: statistics.py).

Ratings arrive as integer tenths (``rating * 10``, exact for ``numeric(2,1)``), so sums and
sums of squares are exact integers: the mean and the sample variance are one rounding away
from the exact rational, with no catastrophic cancellation. Every group (movie or user) is
entirely inside its partition, so the median is simply the middle of the sorted ratings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chariot.aggregate.statistics import HALF_STARS_TENTHS


@dataclass(frozen=True)
class GroupStats:
    """Per-group statistics, one array element per group (key), keys ascending."""

    keys: np.ndarray  # int32
    count: np.ndarray  # int64
    sum_tenths: np.ndarray  # int64
    mean: np.ndarray  # float64
    stddev: np.ndarray  # float64, NaN where count == 1 (stored as NULL)
    first: np.ndarray  # int64, min timestamp
    last: np.ndarray  # int64, max timestamp

    def __len__(self) -> int:
        return len(self.keys)


@dataclass(frozen=True)
class MovieStats(GroupStats):
    min_tenths: np.ndarray  # int16
    max_tenths: np.ndarray  # int16
    median: np.ndarray  # float64
    histogram: np.ndarray  # int32, shape (groups, 10)
    bayesian: np.ndarray  # float64


def user_stats(keys: np.ndarray, tenths: np.ndarray, timestamps: np.ndarray) -> GroupStats:
    """Per-user count, mean, sample stddev, first and last rating time."""
    order = np.argsort(keys, kind="stable")
    return _group_stats(keys[order], tenths[order].astype(np.int64), timestamps[order])[0]


def movie_stats(
    keys: np.ndarray,
    tenths: np.ndarray,
    timestamps: np.ndarray,
    *,
    prior_weight: float,
    prior_mean: float,
) -> MovieStats:
    """Everything ``user_stats`` gives, plus min, max, median, histogram, Bayesian average."""
    order = np.lexsort((tenths, keys))  # by key, then rating: medians and extremes by position
    sorted_tenths = tenths[order].astype(np.int64)
    base, starts = _group_stats(keys[order], sorted_tenths, timestamps[order])
    ends = starts + base.count - 1
    lower = starts + (base.count - 1) // 2
    upper = starts + base.count // 2
    return MovieStats(
        **base.__dict__,
        min_tenths=sorted_tenths[starts].astype(np.int16),
        max_tenths=sorted_tenths[ends].astype(np.int16),
        median=(sorted_tenths[lower] + sorted_tenths[upper]) / 20.0,
        histogram=_histogram(sorted_tenths, base.count),
        bayesian=(prior_mean * prior_weight + base.sum_tenths / 10.0) / (prior_weight + base.count),
    )


def _group_stats(
    keys: np.ndarray, tenths: np.ndarray, timestamps: np.ndarray
) -> tuple[GroupStats, np.ndarray]:
    """Statistics of key-sorted rows, and the index where each group starts."""
    if len(keys) == 0:
        empty_int, empty_float = np.empty(0, np.int64), np.empty(0, np.float64)
        stats = GroupStats(
            keys=np.empty(0, np.int32),
            count=empty_int,
            sum_tenths=empty_int,
            mean=empty_float,
            stddev=empty_float,
            first=empty_int,
            last=empty_int,
        )
        return stats, empty_int
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    count = np.diff(np.r_[starts, len(keys)]).astype(np.int64)
    sums = np.add.reduceat(tenths, starts)
    squares = np.add.reduceat(tenths * tenths, starts)
    stats = GroupStats(
        keys=keys[starts].astype(np.int32),
        count=count,
        sum_tenths=sums,
        mean=sums / (10.0 * count),
        stddev=_sample_stddev(count, sums, squares),
        first=np.minimum.reduceat(timestamps, starts).astype(np.int64),
        last=np.maximum.reduceat(timestamps, starts).astype(np.int64),
    )
    return stats, starts


def _sample_stddev(count: np.ndarray, sums: np.ndarray, squares: np.ndarray) -> np.ndarray:
    """sqrt((n*S2 - S1^2) / (n*(n-1))) / 10 from exact integer sums of tenths; NaN for n = 1."""
    numerator = (count * squares - sums * sums).astype(np.float64)
    denominator = (count * (count - 1)).astype(np.float64)
    variance = np.full(len(count), np.nan)
    np.divide(numerator, denominator, out=variance, where=count > 1)
    return np.sqrt(variance) / 10.0


def _histogram(sorted_tenths: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Counts of the ten half-star values per group; off-grid ratings fall in no bin."""
    groups = np.repeat(np.arange(len(count)), count)
    on_grid = (
        (sorted_tenths % 5 == 0)
        & (sorted_tenths >= HALF_STARS_TENTHS[0])
        & (sorted_tenths <= HALF_STARS_TENTHS[-1])
    )
    bins = sorted_tenths[on_grid] // 5 - 1
    flat = np.bincount(groups[on_grid] * 10 + bins, minlength=len(count) * 10)
    return flat.reshape(len(count), 10).astype(np.int32)
