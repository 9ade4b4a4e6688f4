"""Pure logic of the audit beside a follower: which differences are rows still in flight.

No server: transactions are built by hand, foreign-key lookups are dictionaries.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from chariot.audit.compare import Findings
from chariot.audit.in_flight import (
    Changed,
    ListedRange,
    LogWindow,
    changed_after,
    collect,
    normal_key,
    set_aside,
    set_aside_ranges,
    with_foreign_key_actions,
)
from chariot.audit.report import AuditReport, SummariesAudit, TableAudit
from chariot.audit.segments import Segment
from chariot.batch import Key
from chariot.cdc.fold import StreamIndex
from chariot.cdc.position import LogPosition
from chariot.cdc.reader import Change, SourceTransaction
from chariot.streams import Column, Reference, Stream


def _stream(
    name: str, columns: tuple[str, ...], key: tuple[str, ...], references: Any = ()
) -> Stream:
    return Stream(
        name=name,
        source_table=name,
        columns=tuple(Column(c, c, "int") for c in columns),
        key=key,
        references=tuple(references),
    )


RATINGS = _stream("ratings", ("userId", "movieId", "rating"), ("userId", "movieId"))
INDEX = StreamIndex([RATINGS])


def _at(offset: int, within: int = 0) -> LogPosition:
    return LogPosition("binlog.000001", offset, within=within)


def _transaction(end: int, *changes: Change, start: int | None = None) -> SourceTransaction:
    return SourceTransaction(
        list(changes), _at(end), start=_at(start if start is not None else end - 10)
    )


def _rating(user: int, movie: int, value: int = 3) -> dict[str, Any]:
    return {"userId": user, "movieId": movie, "rating": value}


def _window(*transactions: SourceTransaction) -> LogWindow:
    window = LogWindow()
    collect(window, transactions, INDEX)
    return window


def _insert(row: dict[str, Any], table: str = "ratings") -> Change:
    return Change(table, "insert", None, row)


def _update(before: dict[str, Any], after: dict[str, Any], table: str = "ratings") -> Change:
    return Change(table, "update", before, after)


def _delete(row: dict[str, Any], table: str = "ratings") -> Change:
    return Change(table, "delete", row, None)


# -- which keys changed after a position --------------------------------------------------------


def test_keys_changed_after_the_position_are_the_before_and_after_images_keys() -> None:
    window = _window(
        _transaction(100, _insert(_rating(1, 1))),  # before the position: applied
        _transaction(200, _update(_rating(2, 2), _rating(2, 3))),  # a key change
        _transaction(300, _delete(_rating(4, 4)), _update(_rating(5, 5), _rating(5, 5, 4))),
    )

    changed = changed_after(window, INDEX, "ratings", _at(100))

    assert changed.keys == {(2, 2), (2, 3), (4, 4), (5, 5)}
    assert changed.deleted == [(4, 4)]
    assert changed.moved_from == [(2, 2)] and changed.moved_to == [(2, 3)]


def test_a_position_inside_a_chunked_transaction_skips_the_changes_it_covers() -> None:
    giant = _transaction(
        500, _insert(_rating(1, 1)), _insert(_rating(1, 2)), _insert(_rating(1, 3)), start=400
    )
    window = _window(giant)

    assert changed_after(window, INDEX, "ratings", _at(400, within=2)).keys == {(1, 3)}
    assert changed_after(window, INDEX, "ratings", _at(400)).keys == {(1, 1), (1, 2), (1, 3)}
    assert changed_after(window, INDEX, "ratings", _at(500)).keys == set()


def test_the_window_keeps_only_key_columns_and_stops_at_its_bound() -> None:
    window = LogWindow()
    transactions = [_transaction(100 * n, _insert(_rating(n, n))) for n in range(1, 6)]

    collect(window, transactions, INDEX, max_changes=3)

    assert len(window.transactions) == 3 and not window.complete and window.note
    assert window.transactions[0].changes[0].after == {"userId": 1, "movieId": 1}


def test_keys_read_by_different_drivers_match() -> None:
    aware = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert normal_key((aware, bytearray(b"ab"), 3)) == (dt.datetime(2024, 1, 2, 1, 4, 5), b"ab", 3)


# -- reclassification -------------------------------------------------------------------------


def test_only_changed_keys_are_set_aside_as_in_flight() -> None:
    findings = Findings(
        missing={(1, 1): 11, (9, 9): 99},
        extra={(2, 2): 22, (8, 8): 88},
        differing={(3, 3): False, (7, 7): True},
    )

    moved = set_aside(findings, {(1, 1), (2, 2), (3, 3), (4, 4)})

    assert moved == 3
    assert (findings.missing, findings.extra, findings.differing) == (
        {(9, 9): 99},
        {(8, 8): 88},
        {(7, 7): True},
    )
    flight = findings.in_flight
    assert (flight.missing, flight.extra, flight.differing) == (
        {(1, 1): 11},
        {(2, 2): 22},
        {(3, 3): False},
    )
    assert findings.in_flight_count == 3 and findings.missing_count == 1


keys = st.tuples(st.integers(0, 6), st.integers(0, 6))


@given(
    st.dictionaries(keys, st.integers()),
    st.dictionaries(keys, st.integers()),
    st.dictionaries(keys, st.booleans()),
    st.sets(keys),
)
def test_set_aside_moves_exactly_the_changed_keys_and_loses_none(
    missing: dict[Key, int], extra: dict[Key, int], differing: dict[Key, bool], changed: set[Key]
) -> None:
    findings = Findings(missing=dict(missing), extra=dict(extra), differing=dict(differing))

    set_aside(findings, changed)

    flight = findings.in_flight
    for before, kept, moved in (
        (missing, findings.missing, flight.missing),
        (extra, findings.extra, flight.extra),
        (differing, findings.differing, flight.differing),
    ):
        assert {**kept, **moved} == before
        assert set(moved) == set(before) & changed
        assert not set(kept) & changed


def test_a_whole_range_is_in_flight_only_when_every_listed_key_changed() -> None:
    everything = Segment(None, None)
    first, second, third = Segment(None, (10,)), Segment((10,), (20,)), Segment((20,), None)
    findings = Findings(
        missing_ranges=[(first, 3), (second, 2)], extra_ranges=[(third, 2), (everything, 50)]
    )
    changed = {(1,), (2,), (3,), (11,), (21,), (22,)}

    rows = set_aside_ranges(
        findings,
        [ListedRange(first, 3, ((1,), (2,), (3,))), ListedRange(second, 2, ((11,), (12,)))],
        [ListedRange(third, 2, ((21,), (22,))), ListedRange(everything, 50, None)],
        changed,
    )

    assert rows == 5
    assert findings.missing_ranges == [(second, 2)]  # (12,) never changed: a difference
    assert findings.extra_ranges == [(everything, 50)]  # too large to list: a difference
    assert findings.in_flight.missing_ranges == [(first, 3)]
    assert findings.in_flight.extra_ranges == [(third, 2)]
    assert findings.in_flight_count == 5


def test_a_missing_range_holding_a_recorded_reject_stays_a_difference() -> None:
    segment = Segment(None, None)
    findings = Findings(missing_ranges=[(segment, 2)], rejected_known={(5,)})

    set_aside_ranges(findings, [ListedRange(segment, 2, ((1,), (2,)))], [], {(1,), (2,)})

    assert findings.missing_ranges == [(segment, 2)] and findings.in_flight_count == 0


# -- foreign-key actions ------------------------------------------------------------------------

FILM = _stream("film", ("film_id", "title"), ("film_id",))
INVENTORY = _stream(
    "inventory",
    ("inventory_id", "film_id"),
    ("inventory_id",),
    [Reference("film", ("film_id",), on_delete="cascade", on_update="cascade")],
)
RENTAL = _stream(
    "rental",
    ("rental_id", "inventory_id"),
    ("rental_id",),
    [Reference("inventory", ("inventory_id",), on_delete="set null")],
)
FILM_ACTOR = _stream(
    "film_actor",
    ("actor_id", "film_id"),
    ("actor_id", "film_id"),
    [Reference("film", ("film_id",), on_update="cascade")],
)
NOTE = _stream("note", ("note_id", "film_id"), ("note_id",), [Reference("film", ("film_id",))])
SAKILA = (FILM, INVENTORY, RENTAL, FILM_ACTOR, NOTE)


class _Rows:
    """A database's rows as {stream: {key: {column: value}}}, answering lookups by value."""

    def __init__(self, rows: dict[str, dict[Key, dict[str, Any]]]) -> None:
        self.rows = rows
        self.asked: list[tuple[str, tuple[str, ...]]] = []

    def __call__(self, stream: Stream, columns: tuple[str, ...], values: list[Key]) -> list[Key]:
        self.asked.append((stream.name, columns))
        wanted = set(values)
        return [
            key
            for key, row in self.rows.get(stream.name, {}).items()
            if tuple(row[c] for c in columns) in wanted
        ]


def _changes(direct: dict[str, Changed]) -> Any:
    return lambda name: direct.get(name) or Changed()


def test_a_cascading_delete_reaches_children_and_grandchildren_through_the_sink() -> None:
    sink = _Rows(
        {
            "inventory": {(10,): {"film_id": 1}, (11,): {"film_id": 2}},
            "rental": {(100,): {"inventory_id": 10}, (101,): {"inventory_id": 11}},
            "note": {(7,): {"film_id": 1}},
        }
    )
    source = _Rows({})
    deleted = Changed(keys={(1,)}, deleted=[(1,)])

    def found(name: str) -> set[Key]:
        return with_foreign_key_actions(
            SAKILA, _changes({"film": deleted}), sink, source, name
        ).keys

    assert found("inventory") == {(10,)}  # ON DELETE CASCADE
    assert found("rental") == {(100,)}  # SET NULL, through the deleted inventory row
    assert found("note") == set()  # no action: the source keeps it (an orphan)
    assert found("film_actor") == set()  # only ON UPDATE CASCADE


def test_a_cascading_key_change_finds_old_rows_in_the_sink_and_new_ones_in_the_source() -> None:
    sink = _Rows({"film_actor": {(5, 1): {"film_id": 1}, (6, 3): {"film_id": 3}}})
    source = _Rows({"film_actor": {(5, 2): {"film_id": 2}, (6, 3): {"film_id": 3}}})
    moved = Changed(keys={(1,), (2,)}, moved_from=[(1,)], moved_to=[(2,)])

    changed = with_foreign_key_actions(
        SAKILA, _changes({"film": moved}), sink, source, "film_actor"
    )

    assert changed.keys == {(5, 1), (5, 2)}
    assert changed.moved_from == [(5, 1)] and changed.moved_to == [(5, 2)]


def test_no_lookup_without_a_change_that_an_action_follows() -> None:
    sink, source = _Rows({}), _Rows({})
    updated = Changed(keys={(1,)})  # a film's title changed: no key moved, nothing deleted

    for stream in SAKILA:
        with_foreign_key_actions(SAKILA, _changes({"film": updated}), sink, source, stream.name)

    assert sink.asked == [] and source.asked == []


# -- the report ---------------------------------------------------------------------------------


def _result(**counts: int) -> TableAudit:
    return TableAudit(
        table="ratings",
        sink="postgres",
        source_rows=10,
        sink_rows=10,
        rows_compared=10,
        segments=1,
        segments_compared=1,
        segments_differing=1,
        seconds=0.0,
        **counts,
    )


def test_rows_in_flight_are_lag_not_differences() -> None:
    report = AuditReport(
        started_at=dt.datetime.now(dt.UTC),
        seconds=0.0,
        mode="full",
        tables=["ratings"],
        sinks=["postgres"],
        results=[_result(in_flight=4)],
        summaries=SummariesAudit(status="skipped"),
    )
    assert report.clean and report.differences == 0 and report.in_flight == 4
    dumped = report.model_dump(mode="json")
    assert dumped["in_flight"] == 4 and dumped["results"][0]["in_flight"] == 4

    report.results = [_result(in_flight=4, differing=1)]
    assert not report.clean and report.differences == 1


def test_the_table_and_verdict_show_rows_in_flight_as_lag() -> None:
    from chariot.cli.audit import render_audit
    from chariot.cli.common import console

    report = AuditReport(
        started_at=dt.datetime.now(dt.UTC),
        seconds=0.0,
        mode="full",
        tables=["ratings"],
        sinks=["postgres"],
        results=[_result(in_flight=4)],
        summaries=SummariesAudit(status="skipped"),
        notes=["ratings in postgres: 4 rows still in flight: the sink is behind the log"],
    )
    with console.capture() as captured:
        render_audit(report)
    text = captured.get()
    assert "in flight" in text and "4 rows still in flight: lag" in text
    assert "Result: clean" in text
