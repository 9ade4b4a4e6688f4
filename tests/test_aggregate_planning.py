"""Partition boundaries (planning.py): pure properties, then sampled planning on a real
PostgreSQL table giving exactly the summaries of a full recomputation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chariot.aggregate import planning
from chariot.aggregate.planning import KeyRange, cut_ranges, sample_percent
from chariot.aggregate.runner import run_aggregation
from chariot.aggregate.verify import check_summaries
from chariot.config import Settings
from chariot.seed.synthetic import load_ratings_into_postgres
from tests.test_aggregate_support import query, with_run

keyed_counts = st.dictionaries(
    st.integers(min_value=-(2**40), max_value=2**40), st.integers(min_value=1, max_value=500)
)


def _owner(ranges: list[KeyRange], key: int) -> list[int]:
    return [
        i
        for i, r in enumerate(ranges)
        if (r.key_after is None or key > r.key_after)
        and (r.key_through is None or key <= r.key_through)
    ]


@given(keyed_counts, st.integers(min_value=1, max_value=3_000), st.sampled_from([1.0, 2.5, 50.0]))
def test_ranges_tile_the_key_space_and_never_split_a_key(
    counted: dict[int, int], partition_rows: int, scale: float
) -> None:
    keys = sorted(counted)
    ranges = cut_ranges(keys, [counted[k] for k in keys], partition_rows, scale)
    assert ranges[0].key_after is None and ranges[-1].key_through is None
    for before, after in zip(ranges, ranges[1:], strict=False):
        assert before.key_through is not None and after.key_after == before.key_through
        if after.key_through is not None:
            assert after.key_through > before.key_through
    # any key at all, sampled or not, is in exactly one range
    for key in [*keys, *(k + 1 for k in keys), -(2**41), 2**41]:
        assert len(_owner(ranges, key)) == 1
    assert abs(sum(r.rows for r in ranges) - sum(counted.values()) * scale) <= len(ranges)


@given(keyed_counts, st.integers(min_value=1, max_value=3_000))
def test_exact_counts_give_ranges_of_partition_rows_give_or_take_one_key(
    counted: dict[int, int], partition_rows: int
) -> None:
    keys = sorted(counted)
    ranges = cut_ranges(keys, [counted[k] for k in keys], partition_rows)
    assert sum(r.rows for r in ranges) == sum(counted.values())
    heaviest = max(counted.values(), default=0)
    for r in ranges[:-1]:
        assert abs(r.rows - partition_rows) < heaviest or r.rows == 0
    assert len(ranges) <= sum(counted.values()) // partition_rows + 1


def test_no_keys_is_one_unbounded_range() -> None:
    assert cut_ranges([], [], 10) == [KeyRange(None, None, 0)]


@given(st.one_of(st.none(), st.floats(min_value=0, max_value=1e12)))
def test_sample_percent_is_exact_when_small_or_unknown_else_a_share(rows: float | None) -> None:
    percent = sample_percent(rows)
    if rows is None or rows < planning.SAMPLE_ABOVE_ROWS:
        assert percent == 100.0
    else:
        assert planning.SAMPLE_MIN_PERCENT <= percent <= 100.0
        assert rows * percent / 100 >= min(rows, planning.SAMPLE_ROWS) * 0.99


@pytest.mark.integration
def test_a_sampled_plan_tiles_the_keys_and_the_summaries_stay_exact(
    sql_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """60,000 ratings planned from a ~17% page sample: ranges still cover every key, the
    estimates are near the truth, and a run over them equals the plain-SQL recomputation."""
    load_ratings_into_postgres(sql_settings.postgres, 60_000, seed=5)
    query(sql_settings.postgres, "ANALYZE {schema}.ratings")
    monkeypatch.setattr(planning, "SAMPLE_ABOVE_ROWS", 1_000)
    monkeypatch.setattr(planning, "SAMPLE_ROWS", 10_000)
    settings = with_run(sql_settings, partition_rows=5_000)
    result = run_aggregation(settings, workers=2, executor="process", graph=False)
    assert result.partitions_done_now == result.partitions_total
    check = check_summaries(settings, neo4j=False)
    assert check.ok, check.model_dump_json(indent=1)
    for kind, key in (("movie_stats", "movie_id"), ("user_stats", "user_id")):
        parts = query(
            sql_settings.postgres,
            "SELECT key_after, key_through, rows_planned, rows_in "
            "FROM {schema}._chariot_agg_partitions WHERE run_id = %s AND kind = %s "
            "ORDER BY partition_id",
            (result.run_id, kind),
        )
        assert parts[0][0] is None and parts[-1][1] is None
        assert all(after[0] == before[1] for before, after in zip(parts, parts[1:], strict=False))
        assert sum(p[3] for p in parts) == 60_000  # every rating read exactly once
        planned = sum(p[2] for p in parts)
        assert planned != 60_000  # estimated from the sample, not counted
        assert 0.7 * 60_000 < planned < 1.3 * 60_000, (kind, planned)
        assert 4 <= len(parts) <= 30, (kind, key, parts)
