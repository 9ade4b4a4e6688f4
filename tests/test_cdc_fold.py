"""Folding whole transactions into one batch per sink: pure logic, no server."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from chariot.cdc.changes import ChangeBatch
from chariot.cdc.fold import Folder, StreamIndex, chunk_position, pending_changes
from chariot.cdc.position import LogPosition
from chariot.cdc.reader import Change, SourceTransaction
from chariot.streams import Column, Stream

ITEMS = Stream(
    name="items",
    source_table="items",
    columns=(Column("id", "id", "int"), Column("label", "label", "text", nullable=True)),
    key=("id",),
)
STREAMS = StreamIndex([ITEMS])


def _no_reject(stream: Stream, row: dict[str, Any]) -> str | None:
    return "bad label" if row.get("label") == "bad" else None


def _apply(model: dict[int, str | None], batch: ChangeBatch) -> None:
    for table in batch.tables:
        for key in table.deletes:
            model.pop(key[0], None)
        for reject in table.rejects:
            model.pop(reject.key[0], None)
        for row in table.upserts:
            model[row[0]] = row[1]


def _transaction(changes: list[Change], end: int) -> SourceTransaction:
    return SourceTransaction(
        changes, LogPosition("log.000001", end), start=LogPosition("log.000001", end - 10)
    )


def _replay(
    ops: list[Any], source: dict[int, str | None]
) -> tuple[list[Change], set[int], set[int]]:
    """Apply the operations the source allows to ``source``; returns the changes the log
    would hold, the keys deleted or moved away at some point, and those updated in place."""
    changes: list[Change] = []
    lost: set[int] = set()
    in_place: set[int] = set()
    for kind, key, new_key, label in ops:
        if kind == "insert" and key not in source:
            source[key] = label
            changes.append(Change("items", "insert", None, {"id": key, "label": label}))
        elif kind == "update" and key in source and (new_key == key or new_key not in source):
            old = {"id": key, "label": source.pop(key)}
            source[new_key] = label
            (in_place if new_key == key else lost).add(key)
            changes.append(Change("items", "update", old, {"id": new_key, "label": label}))
        elif kind == "delete" and key in source:
            lost.add(key)
            changes.append(Change("items", "delete", {"id": key, "label": source.pop(key)}, None))
    return changes, lost, in_place


operations = st.lists(
    st.tuples(
        st.sampled_from(("insert", "update", "delete")),
        st.integers(1, 6),
        st.integers(1, 6),
        st.sampled_from(("a", "b", "bad", None)),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(operations)
def test_a_folded_batch_ends_where_the_changes_one_by_one_end(ops: list[Any]) -> None:
    """Whatever the sequence, one folded batch leaves the same rows as every change applied
    in order (a rejected row is absent, as a first copy leaves it)."""
    source: dict[int, str | None] = {}
    changes, _, _ = _replay(ops, source)
    folder = Folder(STREAMS, _no_reject)
    transaction = _transaction(changes, 100)
    folder.add(pending_changes(transaction, {"items": LogPosition("log.000001", 4)}, STREAMS))
    batch = folder.batch(transaction.position, ("items",))
    model: dict[int, str | None] = {}
    _apply(model, batch)
    assert model == {key: label for key, label in source.items() if label != "bad"}
    table = batch.tables[0] if batch.tables else None
    if table is not None:
        keys = [tuple(k) for k in table.changed_keys]
        assert len(keys) == len(set(keys))  # disjoint


def test_a_transaction_the_table_already_holds_is_skipped() -> None:
    change = Change("items", "insert", None, {"id": 1, "label": "a"})
    transaction = _transaction([change], 100)
    assert pending_changes(transaction, {"items": LogPosition("log.000001", 100)}, STREAMS) == []
    assert pending_changes(transaction, {"items": LogPosition("log.000002", 4)}, STREAMS) == []
    assert pending_changes(transaction, {}, STREAMS) == []  # not a table of this sink
    assert len(pending_changes(transaction, {"items": LogPosition("log.000001", 90)}, STREAMS)) == 1


def test_a_chunked_transaction_resumes_after_the_changes_applied() -> None:
    changes = [Change("items", "insert", None, {"id": i, "label": "a"}) for i in range(5)]
    transaction = SourceTransaction(
        changes, LogPosition("log.000001", 500), gtid="0-1-7", start=LogPosition("log.000001", 300)
    )
    middle = chunk_position(transaction, 3)
    assert middle == LogPosition("log.000001", 300, "0-1-7", within=3)
    assert LogPosition.parse(middle.render()) == middle
    pending = pending_changes(transaction, {"items": middle}, STREAMS)
    assert [index for index, _ in pending] == [3, 4]
    assert chunk_position(transaction, 5) == transaction.position
    assert transaction.position.reached(middle) and not middle.reached(transaction.position)


def test_a_key_deleted_and_inserted_again_is_replaced_and_moves_are_kept() -> None:
    changes = [
        Change("items", "delete", {"id": 1, "label": "a"}, None),
        Change("items", "insert", None, {"id": 1, "label": "b"}),
        Change("items", "update", {"id": 2, "label": "a"}, {"id": 3, "label": "a"}),
    ]
    folder = Folder(STREAMS, _no_reject)
    folder.add(list(enumerate(changes)))
    (table,) = folder.batch(LogPosition("log.000001", 9), ("items",)).tables
    assert table.replaced == [(1,)]
    assert table.moved == [((2,), (3,))]
    assert table.deletes == [(2,)]
    assert sorted(table.upserts) == [(1, "b"), (3, "a")]


@settings(max_examples=200, deadline=None)
@given(operations)
def test_updated_names_only_rows_the_source_held_throughout(ops: list[Any]) -> None:
    """``updated`` (the sink's hint to look a row up before inserting it) names only keys
    the source held before the run and never lost within it, and every such key the run
    last updated in place."""
    source: dict[int, str | None] = {1: "a", 2: "b", 3: None}
    before = set(source)
    changes, lost, touched_in_place = _replay(ops, source)
    folder = Folder(STREAMS, _no_reject)
    folder.add(list(enumerate(changes)))
    batch = folder.batch(LogPosition("log.000001", 9), ("items",))
    updated = {key[0] for table in batch.tables for key in table.updated}
    upserted = {row[0] for table in batch.tables for row in table.upserts}
    assert updated <= before - lost
    assert updated <= upserted
    # A key held throughout can only have been first touched by an in-place update (a key
    # that arrived by a move and was then updated in place was not held before the run).
    assert updated == touched_in_place & (before - lost) & upserted
