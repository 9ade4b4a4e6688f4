"""The numpy statistics against a plain-Python definition, on varied input (no servers)."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chariot.aggregate import compute, pgcopy

# Mostly half stars (MovieLens), sometimes any numeric(2,1) value such as 3.3 or 0.0.
rating_tenths = st.one_of(st.sampled_from(range(5, 51, 5)), st.integers(0, 99))
rows = st.lists(
    st.tuples(st.integers(1, 40), rating_tenths, st.integers(0, 2_000_000_000)),
    min_size=0,
    max_size=300,
)


def _columns(data: list[tuple[int, int, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    keys = np.array([row[0] for row in data], dtype=np.int32)
    tenths = np.array([row[1] for row in data], dtype=np.int16)
    stamps = np.array([row[2] for row in data], dtype=np.int64)
    return keys, tenths, stamps


def _by_key(data: list[tuple[int, int, int]]) -> dict[int, list[tuple[float, int]]]:
    groups: dict[int, list[tuple[float, int]]] = defaultdict(list)
    for key, tenths, stamp in data:
        groups[key].append((tenths / 10, stamp))
    return dict(sorted(groups.items()))


def _close(actual: float, expected: float) -> bool:
    return math.isclose(actual, expected, rel_tol=1e-12, abs_tol=1e-12)


@settings(max_examples=200, deadline=None)
@given(rows, st.floats(0, 100), st.sampled_from([0.5, 2.5, 3.5, 5.0]))
def test_movie_stats_match_the_definitions(
    data: list[tuple[int, int, int]], weight: float, prior: float
) -> None:
    stats = compute.movie_stats(*_columns(data), prior_weight=weight, prior_mean=prior)
    groups = _by_key(data)
    assert stats.keys.tolist() == list(groups)
    for index, (_key, ratings) in enumerate(groups.items()):
        values = [rating for rating, _ in ratings]
        assert stats.count[index] == len(values)
        assert _close(stats.mean[index], statistics.fmean(values))
        if len(values) == 1:
            assert math.isnan(stats.stddev[index])  # sample stddev of one rating: NULL
        else:
            assert _close(stats.stddev[index], statistics.stdev(values))
        assert stats.min_tenths[index] == round(min(values) * 10)
        assert stats.max_tenths[index] == round(max(values) * 10)
        assert _close(stats.median[index], statistics.median(values))
        expected_bins = [sum(1 for v in values if round(v * 10) == t) for t in range(5, 51, 5)]
        assert stats.histogram[index].tolist() == expected_bins
        assert stats.first[index] == min(stamp for _, stamp in ratings)
        assert stats.last[index] == max(stamp for _, stamp in ratings)
        assert _close(
            stats.bayesian[index], (prior * weight + sum(values)) / (weight + len(values))
        )


@settings(max_examples=100, deadline=None)
@given(rows)
def test_user_stats_match_the_definitions(data: list[tuple[int, int, int]]) -> None:
    stats = compute.user_stats(*_columns(data))
    groups = _by_key(data)
    assert stats.keys.tolist() == list(groups)
    for index, ratings in enumerate(groups.values()):
        values = [rating for rating, _ in ratings]
        assert stats.count[index] == len(values)
        assert _close(stats.mean[index], statistics.fmean(values))
        assert (
            math.isnan(stats.stddev[index])
            if len(values) == 1
            else _close(stats.stddev[index], statistics.stdev(values))
        )
        assert (stats.first[index], stats.last[index]) == (
            min(s for _, s in ratings),
            max(s for _, s in ratings),
        )


def test_variance_is_exact_where_floating_sums_cancel() -> None:
    """A million identical ratings: a naive float E[x^2] - E[x]^2 is not exactly 0."""
    keys = np.zeros(1_000_000, dtype=np.int32)
    tenths = np.full(1_000_000, 35, dtype=np.int16)
    stats = compute.user_stats(keys, tenths, np.zeros(1_000_000, dtype=np.int64))
    assert stats.stddev[0] == 0.0
    assert stats.mean[0] == 3.5


def test_encode_builds_a_fixed_width_binary_copy() -> None:
    data = pgcopy.encode([np.array([1, -2], np.int32), np.array([0.5, np.nan])], ["int4", "float8"])
    assert data.startswith(pgcopy.HEADER) and data.endswith(pgcopy.TRAILER)
    body = data[len(pgcopy.HEADER) : -len(pgcopy.TRAILER)]
    assert len(body) == 2 * (2 + 4 + 4 + 4 + 8)
    assert body[:10] == b"\x00\x02\x00\x00\x00\x04\x00\x00\x00\x01"
    with pytest.raises(ValueError):
        pgcopy.encode([np.array([1], np.int32), np.array([], np.float64)], ["int4", "float8"])
