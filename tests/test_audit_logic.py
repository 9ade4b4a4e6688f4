"""Pure logic of the audit: range predicates, segment choice, canonical encoding, bisection."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from chariot.audit.canonical import Canonical, digest, ordered_digest, row_text
from chariot.audit.compare import Comparison, Findings
from chariot.audit.forms import postgres_canonical
from chariot.audit.segments import (
    Segment,
    choose_segments,
    keys_condition,
    positional,
    range_condition,
    segments_from_boundaries,
)
from chariot.audit.sides import Checksum, Side
from chariot.audit.values import encode as encode_value

keys2 = st.tuples(st.integers(-5, 5), st.integers(-5, 5))
keys3 = st.tuples(st.integers(-3, 3), st.integers(-3, 3), st.text(alphabet="aAb ", max_size=3))


def _evaluate(condition: str, params: list[Any], key: tuple[Any, ...]) -> bool:
    """Evaluate the generated SQL text in Python: the same boolean structure, our operators."""
    text = "True" if condition == "1 = 1" else condition
    for value in params:
        text = text.replace("%s", repr(value), 1)
    text = text.replace(" = ", " == ").replace(" OR ", " or ").replace(" AND ", " and ")
    return bool(eval(text, {}, {f"c{i}": value for i, value in enumerate(key)}))  # noqa: S307


@given(
    st.lists(keys3, min_size=1, max_size=3),
    st.one_of(st.none(), keys3),
    st.one_of(st.none(), keys3),
)
def test_range_condition_selects_exactly_lo_exclusive_to_hi_inclusive(
    keys: list[tuple[Any, ...]], lo: tuple[Any, ...] | None, hi: tuple[Any, ...] | None
) -> None:
    params, param = positional()
    condition = range_condition(["c0", "c1", "c2"], Segment(lo, hi), param)
    for key in keys:
        expected = (lo is None or key > lo) and (hi is None or key <= hi)
        assert _evaluate(condition, params, key) == expected


@given(
    st.lists(keys2, min_size=1, max_size=20, unique=True), st.lists(keys2, max_size=8, unique=True)
)
def test_segments_from_boundaries_cover_every_key_exactly_once(
    keys: list[tuple[int, int]], boundaries: list[tuple[int, int]]
) -> None:
    segments = segments_from_boundaries(sorted(boundaries))
    for key in keys:
        owners = []
        for segment in segments:
            params, param = positional()
            if _evaluate(range_condition(["c0", "c1"], segment, param), params, key):
                owners.append(segment)
        assert len(owners) == 1


@given(st.lists(keys2, min_size=1, max_size=6, unique=True), keys2)
def test_keys_condition_matches_only_the_listed_keys(
    keys: list[tuple[int, int]], probe: tuple[int, int]
) -> None:
    params, param = positional()
    condition = keys_condition(["c0", "c1"], keys, param)
    assert _evaluate(condition, params, probe) == (probe in keys)


@given(st.integers(1, 500), st.floats(0.001, 1.0), st.integers(0, 10))
def test_choose_segments_is_a_sorted_reproducible_sample(
    count: int, fraction: float, seed: int
) -> None:
    segments = [Segment((i,), (i + 1,)) for i in range(count)]
    chosen = choose_segments(segments, fraction, seed=seed)
    assert chosen == sorted(set(chosen))
    assert len(chosen) == (count if fraction >= 1 else max(1, math.ceil(count * fraction)))
    assert chosen == choose_segments(segments, fraction, seed=seed)
    assert choose_segments(segments, None) == list(range(count))


@given(st.sampled_from([Decimal(f"{tenths / 10:.1f}") for tenths in range(-99, 100)]))
def test_graph_float_rating_encodes_like_the_source_decimal(rating: Decimal) -> None:
    # ratings are decimal(2,1): one place
    as_float, as_decimal = (encode_value("decimal", r, scale=1) for r in (float(rating), rating))
    assert as_float == as_decimal == str(rating)


def test_values_of_the_wrong_type_never_encode_like_right_ones() -> None:
    assert encode_value("decimal", 3.45, scale=1) != encode_value("decimal", Decimal("3.5"))
    assert encode_value("decimal", "3.5") != "3.5"
    assert encode_value("int", 5.0) != encode_value("int", 5)
    assert encode_value("int", True) != encode_value("int", 1)
    assert encode_value("text", None) == "N" != encode_value("text", "N")
    assert encode_value("text", "") != encode_value("text", None)
    # genres: a split on "|"
    assert encode_value("textset", ["b", "a", "a"], delimiter="|") == encode_value("text", "a|b")


@given(st.text(), st.text())
def test_length_prefixes_keep_field_boundaries(first: str, second: str) -> None:
    """Moving characters from one text field to the next never gives the same row text."""
    moved = (first + second[:1], second[1:])
    if moved != (first, second):
        row = [1, 2, Decimal("3.5"), 4]
        assert row_text(_ratings(), tuple(row)) == row_text(_ratings(), row)
        assert encode_value("text", first) + "," + encode_value("text", second) != (
            encode_value("text", moved[0]) + "," + encode_value("text", moved[1])
        )


class ListSide(Side):
    """A side over an in-memory list of (key, digest): exercises the bisection logic."""

    def __init__(self, rows: dict[tuple[int], int]) -> None:
        self.data = dict(sorted(rows.items()))
        self.checksums = 0
        self.rows_digested = 0

    def _in(self, segment: Segment) -> list[tuple[tuple[int], int]]:
        return [
            (key, value)
            for key, value in self.data.items()
            if (segment.lo is None or key > segment.lo)
            and (segment.hi is None or key <= segment.hi)
        ]

    def checksum(self, segment: Segment) -> Checksum:
        self.checksums += 1
        rows = self._in(segment)
        return Checksum(len(rows), sum(value for _, value in rows))

    def digests(self, segment: Segment) -> list[tuple[Any, int]]:
        found = self._in(segment)
        self.rows_digested += len(found)
        return found

    def split_key(self, segment: Segment, offset: int) -> tuple[int] | None:
        rows = self._in(segment)
        return rows[offset][0] if 0 <= offset < len(rows) else None

    def keys_in(self, segment: Segment, limit: int | None = None) -> list[Any]:
        return [key for key, _ in self._in(segment)][:limit]

    def fetch_values(self, keys: Any) -> list[tuple[Any, ...]]:
        return []


@given(
    st.dictionaries(st.integers(0, 3000), st.integers(0, 2**60), min_size=0, max_size=400),
    st.lists(st.integers(0, 3000), max_size=12),
    st.lists(st.integers(3001, 4000), max_size=3),
    st.lists(st.integers(0, 3000), max_size=3),
)
def test_bisection_finds_exactly_the_changed_keys(
    source_rows: dict[int, int], changed: list[int], added: list[int], removed: list[int]
) -> None:
    source, sink = _source_and_sink(source_rows, changed, added, removed)
    for spread_rows in (0, 10_000):  # always halving; and reading both halves when both differ
        findings = _compare_lists(source, sink, spread_rows=spread_rows)
        assert set(findings.missing) == source.keys() - sink.keys()
        assert set(findings.extra) == sink.keys() - source.keys()
        assert set(findings.differing) == {
            k for k in source.keys() & sink.keys() if source[k] != sink[k]
        }


def _compare_lists(
    source: dict[tuple[int], int], sink: dict[tuple[int], int], **options: Any
) -> Findings:
    comparison = Comparison(
        ListSide(source), ListSide(sink), leaf_rows=8, range_rows=10_000, **options
    )
    findings = Findings()
    whole = Segment(None, None)
    comparison.segment(
        whole, comparison.source.checksum(whole), comparison.sink.checksum(whole), findings
    )
    comparison.close()
    return findings


def test_spread_differences_are_read_once_and_a_lone_one_is_still_bisected() -> None:
    source = {(k,): k for k in range(4096)}
    spread = {key: value + (1 if key[0] % 40 == 0 else 0) for key, value in source.items()}
    lone = {key: value + (1 if key[0] == 1234 else 0) for key, value in source.items()}
    read: dict[str, int] = {}
    for name, sink in (("spread", spread), ("lone", lone)):
        comparison = Comparison(ListSide(source), ListSide(sink), leaf_rows=64)
        whole = Segment(None, None)
        findings = Findings()
        comparison.segment(
            whole, comparison.source.checksum(whole), comparison.sink.checksum(whole), findings
        )
        comparison.close()
        assert len(findings.differing) == (103 if name == "spread" else 1)
        sink_side = comparison.sink
        assert isinstance(sink_side, ListSide)
        read[name] = sink_side.rows_digested
        read[name + " checksums"] = sink_side.checksums
    # Spread: the whole and its lower half are checksummed, then each row's digest read once
    # (halving on would checksum 2 + 4 + ... ranges before reading the same digests).
    assert (read["spread"], read["spread checksums"]) == (4096, 2)
    assert read["lone"] <= 64  # one difference: still found by halving, not by reading all


def _ratings() -> Canonical:
    from chariot.project.streams import default_streams

    return postgres_canonical(next(s for s in default_streams() if s.name == "ratings"))


TAG_TEXT = st.text(alphabet="aB;,:0N\n ", max_size=6)
TAG_ROWS = st.lists(
    st.tuples(st.integers(0, 3), st.integers(-2, 2), TAG_TEXT, st.integers(-(2**63), 2**63 - 1)),
    min_size=1,
    max_size=12,
    unique_by=lambda row: row[:3],
)


@given(TAG_ROWS, st.data())
def test_an_ordered_checksum_changes_with_any_single_value(
    rows: list[tuple[int, int, str, int]], data: st.DataObject
) -> None:
    """A segment's ordered checksum hashes its rows' texts joined in key order: changing any
    one value of any row (text with separators in it, a big integer) changes it."""
    tags = _tags()
    rows = sorted(rows)
    before = ordered_digest(row_text(tags, row) for row in rows)
    at = data.draw(st.integers(0, len(rows) - 1))
    column = data.draw(st.integers(0, 3))
    replacement = data.draw(TAG_TEXT if column == 2 else st.integers(-(2**63), 2**63 - 1))
    changed = list(rows[at])
    changed[column] = replacement
    if tuple(changed) == rows[at]:
        return
    after = [*rows[:at], tuple(changed), *rows[at + 1 :]]
    assert ordered_digest(row_text(tags, row) for row in after) != before
    # And a row moved into a neighbour's text (a dropped row, or two rows merged) too.
    assert ordered_digest(row_text(tags, row) for row in rows[1:]) != before


class OrderedListSide(ListSide):
    """The same rows, with a checksum that is not a sum (an ordered form's MD5)."""

    def checksum(self, segment: Segment) -> Checksum:
        self.checksums += 1
        rows = self._in(segment)
        return Checksum(len(rows), ordered_digest(f"{key[0]}:{value}" for key, value in rows))


@given(
    st.dictionaries(st.integers(0, 3000), st.integers(0, 2**60), min_size=0, max_size=400),
    st.lists(st.integers(0, 3000), max_size=12),
    st.lists(st.integers(3001, 4000), max_size=3),
    st.lists(st.integers(0, 3000), max_size=3),
)
def test_bisection_with_ordered_checksums_reads_both_halves_and_finds_exactly_the_changes(
    source_rows: dict[int, int], changed: list[int], added: list[int], removed: list[int]
) -> None:
    source, sink = _source_and_sink(source_rows, changed, added, removed)
    for spread_rows in (0, 10_000):
        comparison = Comparison(
            OrderedListSide(source),
            OrderedListSide(sink),
            leaf_rows=8,
            range_rows=10_000,
            spread_rows=spread_rows,
            additive=False,
        )
        findings = Findings()
        whole = Segment(None, None)
        comparison.segment(
            whole, comparison.source.checksum(whole), comparison.sink.checksum(whole), findings
        )
        comparison.close()
        assert set(findings.missing) == source.keys() - sink.keys()
        assert set(findings.extra) == sink.keys() - source.keys()
        assert set(findings.differing) == {
            k for k in source.keys() & sink.keys() if source[k] != sink[k]
        }


def test_short_bounded_rows_get_ordered_checksums_and_long_ones_digest_sums() -> None:
    from chariot.project.streams import default_streams

    for stream in default_streams():
        assert postgres_canonical(stream).ordered  # ints, decimals, varchar(255): short rows
    assert not _tags_with("text").ordered  # a TEXT column: a segment's text could be huge
    assert not _tags_with("varchar(5000)").ordered


def _tags() -> Canonical:
    from chariot.project.streams import default_streams

    return postgres_canonical(next(s for s in default_streams() if s.name == "tags"))


def _tags_with(tag_type: str) -> Canonical:
    from dataclasses import replace

    stream = _tags().stream
    columns = tuple(
        replace(c, source_type=tag_type) if c.name == "tag" else c for c in stream.columns
    )
    return postgres_canonical(replace(stream, columns=columns))


def _source_and_sink(
    source_rows: dict[int, int], changed: list[int], added: list[int], removed: list[int]
) -> tuple[dict[tuple[int], int], dict[tuple[int], int]]:
    """The source's rows, and a sink's copy with ``changed`` keys altered, ``added`` keys
    that the source lacks and ``removed`` keys gone."""
    source = {(k,): v for k, v in source_rows.items()}
    sink = dict(source)
    for key in changed:
        if (key,) in sink:
            sink[(key,)] += 1
    for key in added:
        sink[(key,)] = digest(str(key))
    for key in removed:
        sink.pop((key,), None)
    return source, sink
