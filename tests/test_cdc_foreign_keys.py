"""Foreign-key actions the binary log lacks: the children they changed are found and refreshed
from the real source, down to grandchildren, so a sink ends equal to the source.

The sink here is a test sink over a Python dict (``DictSink``: the ``ChangeSink`` contract
with nothing behind it but a dict); the source is a real MariaDB database whose foreign
keys really cascade. Its project is written by ``chariot init`` (reflection of the rules).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from chariot.batch import Batch, Key, WriteResult
from chariot.cdc.changes import ChangeBatch, TableChanges
from chariot.cdc.foreign_keys import foreign_key_changes
from chariot.cdc.position import LogPosition
from chariot.config import MySQLSettings, Settings
from chariot.project.init import reflect_project
from chariot.project.streams import project_streams
from chariot.sinks.base import ChangeSink
from chariot.sources.sql import SqlSource
from chariot.streams import Stream
from tests.sakila import load_sakila
from tests.sync_support import mysql_execute

pytestmark = pytest.mark.integration


class DictSink(ChangeSink):
    """Rows and rejects per table in dicts: what a sink stores, without a database."""

    name = "dict"

    def __init__(self) -> None:
        super().__init__(Settings())
        self.rows: dict[str, dict[Key, tuple[Any, ...]]] = {}
        self.rejects: dict[str, dict[Key, str]] = {}

    def _table(self, stream: Stream) -> dict[Key, tuple[Any, ...]]:
        return self.rows.setdefault(stream.name, {})

    def _key(self, stream: Stream, row: tuple[Any, ...]) -> Key:
        return tuple(row[p] for p in stream.key_positions)

    def prepare(self, stream: Stream, *, full_refresh: bool = False) -> None:
        self._table(stream)

    def checkpoint(self, stream: Stream) -> Key | None:
        return None

    def write(self, batch: Batch) -> WriteResult:
        self.upsert_rows(batch.stream, batch.rows)
        for reject in batch.rejects:
            self.rejects.setdefault(batch.stream.name, {})[reject.key] = reject.reason
        return WriteResult(len(batch.rows), list(batch.rejects))

    def upsert_rows(self, stream: Stream, rows: list[tuple[Any, ...]]) -> int:
        table = self._table(stream)
        for row in rows:
            table[self._key(stream, row)] = row
            self.rejects.get(stream.name, {}).pop(self._key(stream, row), None)
        return len(rows)

    def delete_keys(self, stream: Stream, keys: list[Key]) -> int:
        table = self._table(stream)
        return sum(table.pop(key, None) is not None for key in keys)

    def log_positions(self) -> dict[str, LogPosition]:
        return {}

    def start_log(self, stream: Stream, position: LogPosition) -> None:
        pass

    def forget_log(self, stream: Stream) -> None:
        pass

    def apply(self, batch: ChangeBatch) -> None:
        for changes in reversed(batch.tables):
            self.delete_keys(changes.stream, changes.deletes)
        for changes in batch.tables:
            self.upsert_rows(changes.stream, changes.upserts)
            for reject in changes.rejects:
                self.delete_keys(changes.stream, [reject.key])
                self.rejects.setdefault(changes.stream.name, {})[reject.key] = reject.reason
            for key in changes.deletes:
                self.rejects.get(changes.stream.name, {}).pop(key, None)

    def keys_referencing(
        self, stream: Stream, columns: tuple[str, ...], values: list[Key]
    ) -> list[Key]:
        at = [stream.source_columns.index(name) for name in columns]
        wanted = set(values)
        return [
            key for key, row in self._table(stream).items() if tuple(row[p] for p in at) in wanted
        ]


SCHEMA = (
    "CREATE TABLE p (id int PRIMARY KEY, name varchar(10) NOT NULL)",
    "CREATE TABLE c (id int PRIMARY KEY, pid int NOT NULL,"
    " FOREIGN KEY (pid) REFERENCES p (id) ON DELETE CASCADE ON UPDATE CASCADE)",
    "CREATE TABLE n (id int PRIMARY KEY, pid int NULL,"
    " FOREIGN KEY (pid) REFERENCES p (id) ON DELETE SET NULL ON UPDATE SET NULL)",
    "CREATE TABLE link (pid int, tag varchar(10), PRIMARY KEY (pid, tag),"
    " FOREIGN KEY (pid) REFERENCES p (id) ON DELETE CASCADE ON UPDATE CASCADE)",
    "CREATE TABLE note (id int PRIMARY KEY, ltag varchar(10) NOT NULL, lpid int NOT NULL,"
    " body varchar(10), FOREIGN KEY (lpid, ltag) REFERENCES link (pid, tag)"
    " ON DELETE CASCADE ON UPDATE CASCADE)",
    "CREATE TABLE r (id int PRIMARY KEY, pid int NOT NULL, FOREIGN KEY (pid) REFERENCES p (id))",
    "INSERT INTO p VALUES (1, 'one'), (2, 'two'), (3, 'three')",
    "INSERT INTO c VALUES (10, 1), (11, 2), (12, 3)",
    "INSERT INTO n VALUES (20, 1), (21, 2), (22, 3)",
    "INSERT INTO link VALUES (1, 'a'), (1, 'b'), (2, 'a'), (3, 'a')",
    "INSERT INTO note VALUES (30, 'a', 1, 'x'), (31, 'a', 2, 'y'), (32, 'a', 3, 'z')",
    "INSERT INTO r VALUES (40, 3)",
)


@pytest.fixture
def family(mysql_settings: MySQLSettings) -> Iterator[tuple[dict[str, Stream], SqlSource]]:
    mysql_execute(mysql_settings, *SCHEMA)
    settings = Settings(mysql=mysql_settings)
    project = reflect_project(settings, graph=False)
    # A SET NULL the project refuses: n.pid must not be NULL in the sinks (a reject).
    project.tables["n"].columns["pid"].nullable = False
    streams = {stream.name: stream for stream in project_streams(project)}
    source = SqlSource(settings)
    try:
        yield streams, source
    finally:
        source.close()


def _copy(streams: dict[str, Stream], source: SqlSource) -> DictSink:
    """What a first copy leaves in a sink."""
    sink = DictSink()
    for stream in streams.values():
        sink.prepare(stream)
        for batch in source.read(stream, after=None, batch_size=100):
            sink.write(batch)
    return sink


def _apply(sink: DictSink, *tables: TableChanges) -> None:
    sink.apply(ChangeBatch(list(tables), LogPosition("binlog.000001", 4), ()))


def _by_key(changes: list[TableChanges]) -> dict[str, dict[str, Any]]:
    return {
        c.stream.name: {
            "deletes": sorted(c.deletes),
            "upserts": sorted(c.upserts),
            "rejects": sorted((r.key, r.reason) for r in c.rejects),
            "moved": sorted(c.moved),
        }
        for c in changes
    }


def test_reflected_rules_reach_the_streams(
    family: tuple[dict[str, Stream], SqlSource],
) -> None:
    streams, _ = family
    rules = {
        (name, r.table): (r.columns, r.on_delete, r.on_update)
        for name, stream in streams.items()
        for r in stream.references
    }
    assert rules == {
        ("c", "p"): (("pid",), "cascade", "cascade"),
        ("n", "p"): (("pid",), "set null", "set null"),
        ("link", "p"): (("pid",), "cascade", "cascade"),
        ("note", "link"): (("lpid", "ltag"), "cascade", "cascade"),  # in link's key order
        ("r", "p"): (("pid",), "no action", "no action"),
    }


def test_a_moved_and_a_deleted_parent_reach_children_and_grandchildren(
    family: tuple[dict[str, Stream], SqlSource], mysql_settings: MySQLSettings
) -> None:
    streams, source = family
    sink = _copy(streams, source)
    mysql_execute(
        mysql_settings,
        "UPDATE p SET id = 5 WHERE id = 1",
        "DELETE FROM p WHERE id = 2",
    )
    # What the log says (only p's rows), folded as the change writer folds it.
    logged = TableChanges(
        streams["p"], deletes=[(1,), (2,)], upserts=[(5, "one")], moved=[((1,), (5,))]
    )
    actions = foreign_key_changes([logged], list(streams.values()), sink, source)
    assert _by_key(actions) == {
        "c": {"deletes": [(11,)], "upserts": [(10, 5)], "rejects": [], "moved": []},
        "n": {
            "deletes": [],
            "upserts": [],
            "rejects": [((20,), "NULL pid"), ((21,), "NULL pid")],
            "moved": [],
        },
        "link": {
            "deletes": [(1, "a"), (1, "b"), (2, "a")],
            "upserts": [(5, "a"), (5, "b")],
            "rejects": [],
            "moved": [((1, "a"), (5, "a")), ((1, "b"), (5, "b"))],
        },
        # 30 follows its link's moved key (ON UPDATE of a grandchild, composite reference);
        # 31 goes with its deleted link (ON DELETE of a grandchild).
        "note": {"deletes": [(31,)], "upserts": [(30, "a", 5, "x")], "rejects": [], "moved": []},
    }
    _apply(sink, logged)
    _apply(sink, *actions)
    assert sink.rows == _copy(streams, source).rows
    assert sink.rejects == {"n": {(20,): "NULL pid", (21,): "NULL pid"}}


def test_a_child_inserted_in_the_same_batch_is_found_too(
    family: tuple[dict[str, Stream], SqlSource], mysql_settings: MySQLSettings
) -> None:
    """The sink has not seen the child yet: the batch's own upserts are searched as well."""
    streams, source = family
    sink = _copy(streams, source)
    mysql_execute(
        mysql_settings,
        "INSERT INTO p VALUES (4, 'four')",
        "INSERT INTO c VALUES (13, 4)",
        "DELETE FROM p WHERE id = 4",
    )
    logged = [
        TableChanges(streams["p"], deletes=[(4,)]),
        TableChanges(streams["c"], upserts=[(13, 4)]),
    ]
    actions = foreign_key_changes(logged, list(streams.values()), sink, source)
    assert _by_key(actions) == {
        "c": {"deletes": [(13,)], "upserts": [], "rejects": [], "moved": []}
    }
    _apply(sink, *logged)
    _apply(sink, *actions)
    assert sink.rows == _copy(streams, source).rows


def test_a_parent_deleted_and_inserted_again_still_acted_on_its_children(
    family: tuple[dict[str, Stream], SqlSource], mysql_settings: MySQLSettings
) -> None:
    """Folded, the parent is an upsert; its children were deleted or set to NULL all the
    same: ``replaced`` carries the delete the fold hides."""
    streams, source = family
    sink = _copy(streams, source)
    mysql_execute(
        mysql_settings,
        "DELETE FROM p WHERE id = 2",
        "INSERT INTO p VALUES (2, 'again')",
    )
    logged = TableChanges(streams["p"], upserts=[(2, "again")], replaced=[(2,)])
    actions = foreign_key_changes([logged], list(streams.values()), sink, source)
    assert {a.stream.name: sorted(a.deletes) for a in actions} == {
        "c": [(11,)],
        "n": [],
        "link": [(2, "a")],
        "note": [(31,)],
    }
    _apply(sink, logged)
    _apply(sink, *actions)
    assert sink.rows == _copy(streams, source).rows
    assert sink.rejects == {"n": {(21,): "NULL pid"}}


def test_rows_changed_again_later_are_read_as_they_are_now(
    family: tuple[dict[str, Stream], SqlSource], mysql_settings: MySQLSettings
) -> None:
    """The refresh reads the source's current row: a later change of the child (still in
    the log, applied after) is already there, and applying it again changes nothing."""
    streams, source = family
    mysql_execute(mysql_settings, "DELETE FROM r")  # its restrict would refuse the update
    sink = _copy(streams, source)
    mysql_execute(
        mysql_settings,
        "UPDATE p SET id = 6 WHERE id = 3",
        "UPDATE note SET body = 'later' WHERE id = 32",
    )
    logged = TableChanges(
        streams["p"], deletes=[(3,)], upserts=[(6, "three")], moved=[((3,), (6,))]
    )
    actions = foreign_key_changes([logged], list(streams.values()), sink, source)
    assert (32, "a", 6, "later") in next(a for a in actions if a.stream.name == "note").upserts
    later = TableChanges(streams["note"], upserts=[(32, "a", 6, "later")])
    _apply(sink, logged)
    _apply(sink, *actions)
    _apply(sink, later)
    assert sink.rows == _copy(streams, source).rows


def test_nothing_acts_without_an_acting_rule(
    family: tuple[dict[str, Stream], SqlSource],
) -> None:
    streams, source = family
    sink = _copy(streams, source)
    only_r = [streams["p"], streams["r"]]
    logged = TableChanges(streams["p"], deletes=[(3,)])
    assert foreign_key_changes([logged], only_r, sink, source) == []


def test_sakila_cascades_a_moved_key_and_sets_a_deleted_rental_to_null(
    mysql_settings: MySQLSettings,
) -> None:
    """Every Sakila foreign key is ON UPDATE CASCADE; payment.rental_id is ON DELETE SET
    NULL. A moved actor moves its film_actor keys, a moved language updates 1000 films, a
    deleted rental leaves its payments without a rental: the sink ends equal to the source."""
    load_sakila(mysql_settings)
    settings = Settings(mysql=mysql_settings)
    streams = {stream.name: stream for stream in project_streams(reflect_project(settings))}
    source = SqlSource(settings)
    try:
        sink = _copy(streams, source)
        mysql_execute(
            mysql_settings,
            "UPDATE actor SET actor_id = 500 WHERE actor_id = 1",
            "UPDATE language SET language_id = 9 WHERE language_id = 1",
            "DELETE FROM rental WHERE rental_id = 1",
        )

        def moved(table: str, old: int, new: int) -> TableChanges:
            rows, _ = source.rows_with_keys(streams[table], [(new,)])
            return TableChanges(
                streams[table], deletes=[(old,)], upserts=rows, moved=[((old,), (new,))]
            )

        logged = [
            moved("actor", 1, 500),
            moved("language", 1, 9),
            TableChanges(streams["rental"], deletes=[(1,)]),
        ]
        actions = foreign_key_changes(logged, list(streams.values()), sink, source)
        found = {a.stream.name: a for a in actions}
        assert set(found) == {"film_actor", "film", "payment"}
        assert len(found["film"].upserts) == 1000  # every film's language_id was 1
        assert all(old[0] == 1 and new == (500, old[1]) for old, new in found["film_actor"].moved)
        assert len(found["film_actor"].moved) == 19  # actor 1's films
        rental_id = streams["payment"].source_columns.index("rental_id")
        assert [row[rental_id] for row in found["payment"].upserts] == [None]
        _apply(sink, *logged)
        _apply(sink, *actions)
        assert sink.rows == _copy(streams, source).rows
    finally:
        source.close()
