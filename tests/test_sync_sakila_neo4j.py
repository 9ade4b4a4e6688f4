"""Sakila and a user's own small shop schema into Neo4j, with nothing but the graph `chariot
init` proposes: every node and relationship equals the source, typed as the VALUE CONTRACT
says; a second sync, a full refresh and a repair delete keep it so."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from chariot.config import Neo4jSettings, Settings
from chariot.connections import mysql_connect, neo4j_session
from chariot.project import Project, load_project
from chariot.project.graph import table_properties
from chariot.project.outputs import key_outputs, table_outputs
from chariot.project.streams import project_streams
from chariot.sinks.neo4j import Neo4jSink
from chariot.streams import Stream
from chariot.sync import sync
from tests.sakila import ROW_COUNTS, load_sakila
from tests.sync_support import mysql_execute

pytestmark = pytest.mark.integration

Row = dict[str, Any]


@pytest.fixture(autouse=True)
def _no_project_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHARIOT_PROJECT", raising=False)


def init(settings: Settings, tmp_path: Path) -> tuple[Project, dict[str, Stream]]:
    from chariot.project.init import init_project

    path = tmp_path / "chariot.toml"
    init_project(settings, path=path)
    project = load_project(path)
    return project, {stream.name: stream for stream in project_streams(project)}


def sync_graph(settings: Settings, streams: dict[str, Stream], **options: Any) -> None:
    result = sync(settings, sinks=["neo4j"], streams=tuple(streams.values()), **options)
    assert not result.failures, result.failures


# -- reading both sides ------------------------------------------------------------------------


def source_table(settings: Settings, table: str) -> list[Row]:
    connection = mysql_connect(settings.mysql)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET time_zone = '+00:00'")
            cursor.execute(f"SELECT * FROM `{table}`")
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        connection.close()


def query(neo4j: Neo4jSettings, cypher: str, **parameters: Any) -> list[dict[str, Any]]:
    with neo4j_session(neo4j) as session:
        return [record.data() for record in session.run(cypher, parameters)]


def scalar(neo4j: Neo4jSettings, cypher: str, **parameters: Any) -> Any:
    return next(iter(query(neo4j, cypher, **parameters)[0].values()))


def native(value: Any) -> Any:
    """A driver value as plain Python (neo4j.time types -> datetime's)."""
    if hasattr(value, "to_native"):
        return value.to_native()
    return value


def as_graph_value(value: Any, neo4j_type: str) -> Any:
    """The value the contract says Neo4j holds for a source value."""
    if value is None:
        return None
    if neo4j_type == "float":
        return float(value)
    if neo4j_type == "boolean":
        return bool(int.from_bytes(value, "big") if isinstance(value, bytes) else value)
    if neo4j_type == "zoned datetime":
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value
    if neo4j_type == "list<string>":
        return value.split(",") if isinstance(value, str) and value else list(value or [])
    if neo4j_type == "string":
        return value if isinstance(value, str) else str(value)
    return value


def snapshot(neo4j: Neo4jSettings, project: Project) -> tuple[list[str], list[str]]:
    """Every node with its properties, and every relationship with its properties and its
    ends' keys (per type: one small query each)."""
    nodes = [
        stable(record)
        for label in project.graph.nodes
        for record in query(neo4j, f"MATCH (n:`{label}`) RETURN properties(n) AS props")
    ]
    relationships = []
    for relationship in project.graph.relationships:
        start = project.graph.nodes[relationship.from_.label]
        end = project.graph.nodes[relationship.to.label]
        cypher = (
            f"MATCH (a:`{relationship.from_.label}`)-[r:`{relationship.type}`]->"
            f"(b:`{relationship.to.label}`) RETURN [k IN $start | a[k]] AS a, "
            "[k IN $end | b[k]] AS b, properties(r) AS props"
        )
        found = query(neo4j, cypher, start=start.key, end=end.key)
        relationships += [relationship.type + stable(record) for record in found]
    return sorted(nodes), sorted(relationships)


def stable(record: dict[str, Any]) -> str:
    """Property maps come back in storage order, which a re-SET may change."""
    return repr(
        sorted(
            (name, sorted(value.items()) if isinstance(value, dict) else value)
            for name, value in record.items()
        )
    )


# -- the graph init proposes -------------------------------------------------------------------


def expected_nodes(project: Project, settings: Settings, label: str) -> dict[tuple[Any, ...], Row]:
    """Key -> properties, for every row of the label's table."""
    node = project.graph.nodes[label]
    assert node.table is not None
    table = project.tables[node.table]
    outputs = {c.name: c for c in table_outputs(table)}
    keys = key_outputs(table)
    properties = {
        **dict(zip(node.key, keys, strict=True)),
        **table_properties(node, list(outputs), keys),
    }
    expected = {}
    for row in source_table(settings, project.source_table(node.table)):
        values = {p: as_graph_value(row[c], outputs[c].neo4j) for p, c in properties.items()}
        expected[tuple(row[k] for k in keys)] = {p: v for p, v in values.items() if v is not None}
    return expected


def graph_nodes(neo4j: Neo4jSettings, label: str, key: list[str]) -> dict[tuple[Any, ...], Row]:
    found = {}
    for record in query(neo4j, f"MATCH (n:`{label}`) RETURN properties(n) AS p"):
        properties = {name: native(value) for name, value in record["p"].items()}
        found[tuple(properties[k] for k in key)] = properties
    return found


def assert_nodes_equal_source(project: Project, settings: Settings) -> None:
    for label, node in project.graph.nodes.items():
        assert node.table is not None
        expected = expected_nodes(project, settings, label)
        found = graph_nodes(settings.neo4j, label, node.key)
        assert len(found) == len(expected), label
        differing = [key for key in expected if found.get(key) != expected[key]]
        assert not differing, (label, differing[:3], [found.get(k) for k in differing[:1]])


# -- Sakila ------------------------------------------------------------------------------------


def test_sakila_lands_in_neo4j_as_init_proposed(settings: Settings, tmp_path: Path) -> None:
    load_sakila(settings.mysql)
    # Sakila leaves original_language_id NULL everywhere: give ten films one, so the second
    # foreign key to language makes relationships too.
    mysql_execute(settings.mysql, "UPDATE film SET original_language_id = 2 WHERE film_id <= 10")
    project, streams = init(settings, tmp_path)
    db = settings.neo4j
    sync_graph(settings, streams)

    # One node per row of every table-backed label (the join tables are relationships).
    for label, node in project.graph.nodes.items():
        assert node.table is not None
        count = scalar(db, f"MATCH (n:`{label}`) RETURN count(n)")
        assert count == ROW_COUNTS[node.table], label
    assert_nodes_equal_source(project, settings)

    # film_actor: one relationship per row, between the right actor and film.
    acted = next(r for r in project.graph.relationships if r.table == "film_actor")
    pairs = query(
        db,
        f"MATCH (a:Actor)-[r:`{acted.type}`]->(f:Film) "
        "RETURN a.actor_id AS a, f.film_id AS f, r.last_update AS at",
    )
    assert len(pairs) == 5_462
    source = {
        (row["actor_id"], row["film_id"]): row["last_update"].replace(tzinfo=dt.UTC)
        for row in source_table(settings, "film_actor")
    }
    assert {(p["a"], p["f"]): native(p["at"]) for p in pairs} == source

    # film's two foreign keys to language: two relationship types.
    kinds = Counter(
        record["type"]
        for record in query(db, "MATCH (:Film)-[r]->(:Language) RETURN type(r) AS type")
    )
    assert kinds == {"LANGUAGE": 1_000, "ORIGINAL_LANGUAGE": 10}
    assert scalar(
        db,
        "MATCH (f:Film)-[:ORIGINAL_LANGUAGE]->(l:Language) RETURN collect(DISTINCT l.language_id)",
    ) == [2]

    # payment rows with a NULL rental_id make no relationship to Rental.
    payments = source_table(settings, "payment")
    without = sorted(p["payment_id"] for p in payments if p["rental_id"] is None)
    assert len(without) == 5
    rental = next(
        r for r in project.graph.relationships if (r.table, r.to.label) == ("payment", "Rental")
    )
    linked = query(
        db,
        f"MATCH (p:Payment)-[:`{rental.type}`]->(r:Rental) "
        "RETURN p.payment_id AS p, r.rental_id AS r",
    )
    assert len(linked) == len(payments) - 5
    assert {x["p"]: x["r"] for x in linked} == {
        p["payment_id"]: p["rental_id"] for p in payments if p["rental_id"] is not None
    }
    assert (
        scalar(
            db,
            "MATCH (p:Payment) WHERE p.payment_id IN $ids RETURN count { (p)-->(:Rental) }",
            ids=without,
        )
        == 0
    )

    # A second sync changes nothing; a full refresh of one table leaves the graph equal.
    before = snapshot(db, project)
    sync_graph(settings, streams)
    assert snapshot(db, project) == before
    sync_graph(settings, streams, tables=["film"], full_refresh=True)
    assert snapshot(db, project) == before
    sync_graph(settings, streams, tables=["film_actor"], full_refresh=True)
    assert snapshot(db, project) == before


def test_sakila_repair_removes_what_a_deleted_row_made(settings: Settings, tmp_path: Path) -> None:
    load_sakila(settings.mysql)
    project, streams = init(settings, tmp_path)
    db = settings.neo4j
    sync_graph(settings, streams, tables=["language", "film", "actor", "film_actor", "payment"])

    mysql_execute(
        settings.mysql,
        "DELETE FROM payment WHERE payment_id = 1",
        "DELETE FROM film_actor WHERE actor_id = 1 AND film_id = 1",
    )
    with Neo4jSink(settings) as sink:
        assert sink.delete_keys(streams["payment"], [(1,), (999_999,)]) == 1
        assert sink.delete_keys(streams["film_actor"], [(1, 1)]) == 1
        # The film's and the actor's own rows remain: their nodes stay.
        assert scalar(db, "MATCH (p:Payment {payment_id: 1}) RETURN count(p)") == 0
        assert (
            scalar(db, "MATCH (:Actor {actor_id: 1})-[r]->(:Film {film_id: 1}) RETURN count(r)")
            == 0
        )
        assert scalar(db, "MATCH (a:Actor {actor_id: 1}) RETURN a.first_name") == "PENELOPE"
        # Payment 1's customer, rental and staff were placeholders (their tables are not
        # synced): only what no other payment still needs goes.
        assert scalar(db, "MATCH (r:Rental {rental_id: 76}) RETURN count(r)") == 0
        assert scalar(db, "MATCH (c:Customer {customer_id: 1}) RETURN count(c)") == 1
        assert scalar(db, "MATCH (s:Staff {staff_id: 1}) RETURN count(s)") == 1

        # A film whose language changed loses its old relationship (and the placeholder
        # nothing else needs), whichever way the row arrives.
        film = source_table(settings, "film")
        first = next(row for row in film if row["film_id"] == 1)
        first["language_id"] = 5
        sink.upsert_rows(streams["film"], [tuple(first.values())])
    languages = query(
        db, "MATCH (:Film {film_id: 1})-[:LANGUAGE]->(l:Language) RETURN l.language_id AS id"
    )
    assert languages == [{"id": 5}]
    assert scalar(db, "MATCH (l:Language {language_id: 1}) RETURN l.name") == "English"


# -- a user's own schema -------------------------------------------------------------------------

SHOP = (
    "CREATE TABLE customers (id INT PRIMARY KEY)",
    "CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT NOT NULL, total DECIMAL(10,2) "
    "NOT NULL, created_at DATETIME NOT NULL, FOREIGN KEY (customer_id) REFERENCES customers(id))",
    "CREATE TABLE order_items (order_id INT NOT NULL, line_no INT NOT NULL, sku VARCHAR(40) "
    "NOT NULL, qty INT NOT NULL, PRIMARY KEY (order_id, line_no), "
    "FOREIGN KEY (order_id) REFERENCES orders(id))",
    "INSERT INTO customers VALUES (1), (2), (3)",
    "INSERT INTO orders VALUES (10, 1, 19.99, '2024-01-02 03:04:05'), "
    "(11, 1, 0.10, '2024-02-29 23:59:59'), (12, 2, 12345678.90, '1999-12-31 00:00:00')",
    "INSERT INTO order_items VALUES (10, 1, 'A-1', 2), (10, 2, 'B-2', 1), (12, 1, 'A-1', 7)",
)


def test_a_users_own_shop_schema(settings: Settings, tmp_path: Path) -> None:
    mysql_execute(settings.mysql, *SHOP)
    project, streams = init(settings, tmp_path)
    assert set(project.graph.nodes) == {"Customers", "Orders", "OrderItems"}
    sync_graph(settings, streams)
    db = settings.neo4j
    assert_nodes_equal_source(project, settings)
    placed = next(r for r in project.graph.relationships if r.table == "orders")
    assert (placed.from_.label, placed.to.label) == ("Orders", "Customers")
    assert query(
        db,
        f"MATCH (o:Orders)-[:`{placed.type}`]->(c:Customers) "
        "RETURN o.id AS o, c.id AS c, o.total AS total ORDER BY o",
    ) == [
        {"o": 10, "c": 1, "total": 19.99},
        {"o": 11, "c": 1, "total": 0.1},
        {"o": 12, "c": 2, "total": 12345678.9},
    ]
    lines = query(
        db,
        "MATCH (i:OrderItems)-->(o:Orders) RETURN o.id AS o, i.line_no AS line, i.sku AS sku "
        "ORDER BY o, line",
    )
    assert lines == [
        {"o": 10, "line": 1, "sku": "A-1"},
        {"o": 10, "line": 2, "sku": "B-2"},
        {"o": 12, "line": 1, "sku": "A-1"},
    ]
    assert scalar(db, "MATCH (o:Orders {id: 10}) RETURN o.created_at") == dt.datetime(
        2024, 1, 2, 3, 4, 5
    )
    # Customer 3 has no order and no property: a node all the same, kept by a second sync
    # and by a full refresh of orders (the orphan sweep cannot mistake it for a placeholder).
    before = snapshot(db, project)
    sync_graph(settings, streams)
    sync_graph(settings, streams, tables=["orders"], full_refresh=True)
    assert snapshot(db, project) == before
    assert scalar(db, "MATCH (c:Customers {id: 3}) RETURN count(c)") == 1
    constraints = {r["name"] for r in query(db, "SHOW CONSTRAINTS YIELD name RETURN name")}
    assert {
        "chariot_customers_id",
        "chariot_orders_id",
        "chariot_order_items_order_id_line_no",
    } <= constraints
    assert Decimal("12345678.90") == Decimal(str(12345678.9))
