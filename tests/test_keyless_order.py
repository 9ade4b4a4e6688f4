"""Which batches a first load may COPY while its table has no key: integer keys that strictly
increase row after row (``chariot.sinks.postgres._increasing_int_keys``), decided alike from
rows and from the Arrow reader's columns."""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from chariot.batch import Batch
from chariot.sinks.postgres import _increasing_int_keys
from tests.movielens_project import RATINGS, TAGS

keys = st.lists(st.tuples(st.integers(-(2**63), 2**63 - 1), st.integers(0, 3)), max_size=12)


def _expected(pairs: list[tuple[int, int]]) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    if not pairs or any(a >= b for a, b in zip(pairs, pairs[1:], strict=False)):
        return None
    return pairs[0], pairs[-1]


def _rows(pairs: list[tuple[int, int]]) -> list[tuple[object, ...]]:
    return [(user, movie, Decimal("1.0"), 0) for user, movie in pairs]


@settings(deadline=None)  # a machine shared by many: no wall-clock limit
@given(keys)
def test_rows_are_copied_key_less_only_in_strictly_increasing_key_order(
    pairs: list[tuple[int, int]],
) -> None:
    assert _increasing_int_keys(Batch(RATINGS, _rows(pairs), (0, 0))) == _expected(pairs)


@settings(deadline=None)  # a machine shared by many: no wall-clock limit
@given(keys)
def test_arrow_columns_decide_as_the_rows_do(pairs: list[tuple[int, int]]) -> None:
    columns = pa.table(
        {
            "user_id": pa.array([p[0] for p in pairs], pa.int64()),
            "movie_id": pa.array([p[1] for p in pairs], pa.int64()),
            "rating": pa.array([Decimal("1.0")] * len(pairs), pa.decimal128(2, 1)),
            "rated_at": pa.array([0] * len(pairs), pa.int64()),
        }
    )
    batch = Batch(RATINGS, None, (0, 0), columns=columns)
    assert _increasing_int_keys(batch) == _expected(pairs)
    assert batch._rows is None  # decided without building the rows


def test_a_key_that_is_not_all_integers_is_never_copied_key_less() -> None:
    batch = Batch(TAGS, [(1, 1, "a", 1), (1, 1, "b", 2)], (1, 1, "b"))
    assert _increasing_int_keys(batch) is None
    assert _increasing_int_keys(Batch(RATINGS, [(1, True, Decimal("1.0"), 0)], (1, 1))) is None
