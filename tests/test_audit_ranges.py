"""Segment ranges as each database selects them, and the key walk that counts a large table.

PostgreSQL selects a segment with row comparisons (``row_range_condition``: one index
range, rows in key order); the rows it selects must be exactly those Python's tuple order
puts in the segment, for composite keys with text in byte order too. A large table is
counted by its key walk instead of a COUNT(*) first: the counts must be the same.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from chariot.audit import tables
from chariot.audit.postgres import PostgresSide
from chariot.audit.segments import Segment, key_in_segment, positional, row_range_condition
from chariot.config import Settings
from chariot.connections import postgres_connection
from tests.audit_support import audit, differences, mysql, postgres, result, seed_and_sync

pytestmark = pytest.mark.integration

# Byte order differs from most locales' order on these (case, accents, digits, spaces).
WORDS = ["", " ", "0", "9", "A", "Z", "a", "z", "aa", "ab", "é", "éa", "Ω", "zz", "a b"]


def collated_range(columns: list[str], segment: Segment) -> tuple[str, list[Any]]:
    """Text bounds compared in byte order, as ``PostgresSide.where`` does."""
    values, param = positional()

    def collated(value: Any) -> str:
        return param(value) + (' COLLATE "C"' if isinstance(value, str) else "")

    return row_range_condition(columns, segment, collated), values


def test_row_comparison_selects_exactly_the_segment(sql_settings: Settings) -> None:
    pg = sql_settings.postgres
    postgres(pg, "CREATE SCHEMA {s}")
    postgres(
        pg,
        'CREATE TABLE {s}.keyed (a integer, b text COLLATE "C", c bigint, PRIMARY KEY (a, b, c))',
    )
    keys = [(a, b, c) for a in (-1, 0, 1, 2) for b in WORDS for c in (-5, 0, 7)]
    with postgres_connection(pg, autocommit=True) as connection:
        with connection.cursor() as cursor:
            cursor.executemany(f'INSERT INTO "{pg.schema_name}".keyed VALUES (%s, %s, %s)', keys)
        chooser = random.Random(7)
        bounds: list[Any] = [None, *keys, (1, "b", 0), (3, "", 0), (-2, "zz", 9)]
        for _ in range(300):
            lo, hi = chooser.choice(bounds), chooser.choice(bounds)
            segment = Segment(lo, hi)
            where, values = collated_range(['"a"', '"b"', '"c"'], segment)
            found = connection.execute(
                f'SELECT a, b, c FROM "{pg.schema_name}".keyed WHERE {where} '
                'ORDER BY a, b COLLATE "C", c',
                values,
            ).fetchall()
            # Python orders str by code point: UTF-8 byte order, the C collation's.
            expected = sorted(k for k in keys if key_in_segment(k, segment))
            assert [tuple(row) for row in found] == expected, segment


def test_postgres_segment_reads_use_the_key_index_in_key_order(sql_settings: Settings) -> None:
    """The plan of an ordered segment checksum: an index scan, no sort (a sort of a
    segment's texts spilled to disk with the default work_mem)."""
    from chariot.audit.forms import postgres_canonical
    from chariot.project.streams import default_streams

    pg = sql_settings.postgres
    postgres(pg, "CREATE SCHEMA {s}")
    postgres(
        pg,
        "CREATE TABLE {s}.ratings (user_id integer, movie_id integer, rating numeric(2,1), "
        '"timestamp" bigint, PRIMARY KEY (user_id, movie_id))',
    )
    postgres(
        pg,
        "INSERT INTO {s}.ratings SELECT u, m, 3.5, u * m FROM generate_series(1, 400) u, "
        "generate_series(1, 500) m",
    )
    postgres(pg, "ANALYZE {s}.ratings")
    stream = next(s for s in default_streams() if s.name == "ratings")
    side = PostgresSide(sql_settings, postgres_canonical(stream))
    try:
        segment = Segment((100, 7), (200, 3))
        where, params = side.where(segment)
        plan = "\n".join(
            row[0]
            for row in side.query(
                f"EXPLAIN SELECT {', '.join(side.key_columns)} FROM {side.table} "
                f"WHERE {where} ORDER BY {side.order}",
                params,
            )
        )
        assert "Index" in plan and "Sort" not in plan, plan
        assert side.checksum(segment).count == (500 - 7) + 99 * 500 + 3
    finally:
        side.close()


def test_a_large_table_is_counted_by_its_key_walk_alike(
    sql_settings: Settings, movielens_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_and_sync(sql_settings, movielens_dir, ["postgres"], mode="keyset")
    # Rows the reader rejects are counted as the source's rows less the loadable ones.
    assert mysql(sql_settings.mysql, "UPDATE ratings SET rating = 7.0 WHERE userId = 1") > 0
    counted = audit(sql_settings, sinks=("postgres",), tables=("ratings",), summaries=False)
    monkeypatch.setattr(tables, "LARGE_TABLE_ROWS", 0)
    walked = audit(sql_settings, sinks=("postgres",), tables=("ratings",), summaries=False)
    for report in (counted, walked):
        assert differences(report) == {("ratings", "postgres"): (0, 232, 0)}
    first, second = result(counted, "ratings", "postgres"), result(walked, "ratings", "postgres")
    assert second.rejected_known == first.rejected_known == 232
    assert (second.source_rows, second.sink_rows) == (first.source_rows, first.sink_rows)
    # Default segments of the walk's size: every 50,000th key bounds one.
    assert second.segments == 3
