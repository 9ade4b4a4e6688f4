"""What `chariot init` proposes for shapes a schema may have (no database needed)."""

from __future__ import annotations

import pytest

from chariot.errors import ConfigError
from chariot.project import parse_project
from chariot.project.column_types import parse_source_type
from chariot.project.propose import propose_project
from chariot.project.reflect import ForeignKey, ReflectedColumn, ReflectedTable, SourceSchema
from chariot.project.writer import render_project


def _table(
    name: str,
    columns: str,
    key: tuple[str, ...],
    *foreign_keys: tuple[tuple[str, ...], str, tuple[str, ...]],
) -> ReflectedTable:
    """``columns``: "name type, name type" (all NOT NULL)."""
    reflected = tuple(
        ReflectedColumn(part.split()[0], parse_source_type(part.split(maxsplit=1)[1]), False)
        for part in columns.split(", ")
    )
    return ReflectedTable(
        name=name,
        columns=reflected,
        primary_key=key,
        unique_keys=(),
        foreign_keys=tuple(ForeignKey(None, c, t, r) for c, t, r in foreign_keys),
    )


def _schema(*tables: ReflectedTable) -> SourceSchema:
    return SourceSchema("test", {t.name: t for t in tables})


USERS = _table("users", "id int, name varchar(20)", ("id",))


def test_a_table_name_that_is_no_identifier_keeps_its_source_name() -> None:
    project, _ = propose_project(_schema(_table("order-items", "id int", ("id",))))
    assert project.tables["order_items"].source == "order-items"
    assert list(project.graph.nodes) == ["OrderItems"]
    assert parse_project(render_project(project)) == project


def test_two_source_names_that_clean_up_alike_stay_two_tables() -> None:
    project, _ = propose_project(
        _schema(_table("order items", "id int", ("id",)), _table("order-items", "id int", ("id",)))
    )
    assert {name: t.source for name, t in project.tables.items()} == {
        "order_items": "order items",
        "order_items_2": "order-items",
    }


def test_a_self_referencing_join_table_links_a_label_to_itself() -> None:
    friends = _table(
        "friends",
        "user_a int, user_b int, since date",
        ("user_a", "user_b"),
        (("user_a",), "users", ("id",)),
        (("user_b",), "users", ("id",)),
    )
    project, notes = propose_project(_schema(USERS, friends))
    assert list(project.graph.nodes) == ["Users"]
    (relationship,) = project.graph.relationships
    assert (relationship.type, relationship.from_.key, relationship.to.key) == (
        "FRIENDS",
        ["user_a"],
        ["user_b"],
    )
    assert relationship.properties == {"since": "since"}
    assert "join table friends" in notes.relationships[0]


def test_a_join_table_to_a_table_left_out_is_a_label() -> None:
    memberships = _table(
        "memberships",
        "user_id int, group_id int",
        ("user_id", "group_id"),
        (("user_id",), "users", ("id",)),
        (("group_id",), "groups", ("id",)),
    )
    project, _ = propose_project(_schema(USERS, memberships))  # no "groups" table
    assert set(project.graph.nodes) == {"Users", "Memberships"}
    assert [(r.from_.label, r.type, r.to.label) for r in project.graph.relationships] == [
        ("Memberships", "USER", "Users")
    ]


def test_composite_foreign_keys_follow_the_referred_key_order() -> None:
    lines = _table("lines", "order_id int, line_no int, sku varchar(9)", ("order_id", "line_no"))
    notes_table = _table(
        "line_notes",
        "id int, no int, order_ref int",
        ("id",),
        (("no", "order_ref"), "lines", ("line_no", "order_id")),
    )
    project, _ = propose_project(_schema(lines, notes_table))
    (relationship,) = project.graph.relationships
    assert relationship.type == "LINES"  # named after the table: no single column to name it
    assert relationship.to.key == ["order_ref", "no"]  # in lines' key order
    assert [r.table for r in project.tables["line_notes"].references] == ["lines"]


def test_a_foreign_key_to_a_unique_key_proposes_no_relationship() -> None:
    accounts = _table("accounts", "id int, code varchar(9)", ("id",))
    uses = _table(
        "uses",
        "id int, account_code varchar(9)",
        ("id",),
        (("account_code",), "accounts", ("code",)),
    )
    project, _ = propose_project(_schema(accounts, uses))
    assert project.graph.relationships == []


def test_no_graph_and_unmapped_keys() -> None:
    shapes = _table("shapes", "id geometry, name varchar(9)", ("id",))
    project, notes = propose_project(_schema(USERS, shapes), graph=False)
    assert list(project.tables) == ["users"] and project.graph.nodes == {}
    assert "key column id is geometry" in notes.skipped_tables["shapes"]
    with pytest.raises(ConfigError, match="no table of the source can be synced"):
        propose_project(_schema(shapes))
