"""`chariot init` on a user's own small schema, and the project checked against the source."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chariot.config import Settings
from chariot.errors import ConfigError
from chariot.project import load_project, parse_project
from chariot.project.init import init_project, reflect_project
from chariot.project.source_checks import check_project
from chariot.project.writer import render_project
from tests.conftest import MOVIELENS_PROJECT as MOVIELENS_EXAMPLE
from tests.sync_support import mysql_execute

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _no_project_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CHARIOT_PROJECT of the developer's shell must not redirect what init writes."""
    monkeypatch.delenv("CHARIOT_PROJECT", raising=False)


SHOP = (
    "CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL,"
    " email VARCHAR(200) NOT NULL UNIQUE)",
    "CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT NOT NULL,"
    " total DECIMAL(10,2) NOT NULL, created_at DATETIME NOT NULL,"
    " FOREIGN KEY (customer_id) REFERENCES customers (id))",
    "CREATE TABLE order_items (order_id INT NOT NULL, line_no SMALLINT NOT NULL,"
    " sku VARCHAR(32) NOT NULL, qty INT NOT NULL, PRIMARY KEY (order_id, line_no),"
    " FOREIGN KEY (order_id) REFERENCES orders (id))",
    "CREATE TABLE audit_log (at DATETIME, message TEXT)",
    "CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100",
    "INSERT INTO customers VALUES (1, 'Ada', 'ada@example.org'), (2, 'Bob', 'bob@example.org')",
    "INSERT INTO orders VALUES (10, 1, 99.50, '2024-05-01 10:00:00'),"
    " (11, 2, 120.00, '2024-05-02 11:30:00')",
    "INSERT INTO order_items VALUES (10, 1, 'SKU-1', 2), (10, 2, 'SKU-2', 1), (11, 1, 'SKU-1', 5)",
)


@pytest.fixture
def shop(sql_settings: Settings) -> Settings:
    mysql_execute(sql_settings.mysql, *SHOP)
    return sql_settings


def test_init_proposes_tables_keys_types_and_graph(
    cli: Callable[..., Any], shop: Settings, tmp_path: Path
) -> None:
    result = cli("init", settings=shop)
    assert result.exit_code == 0, result.output
    written = tmp_path / "chariot.toml"
    project = load_project(written)
    assert {name: table.key for name, table in project.tables.items()} == {
        "customers": ["id"],
        "orders": ["id"],
        "order_items": ["order_id", "line_no"],
    }
    orders = project.tables["orders"].columns
    assert (orders["total"].type, orders["total"].postgres) == ("decimal(10,2)", "numeric(10,2)")
    assert (orders["created_at"].postgres, orders["created_at"].neo4j) == (
        "timestamp",
        "local datetime",
    )
    orders = project.tables["orders"]
    assert [(r.table, r.columns) for r in orders.references] == [("customers", ["customer_id"])]
    assert project.graph.nodes["OrderItems"].key == ["order_id", "line_no"]
    shapes = {(r.from_.label, r.type, r.to.label) for r in project.graph.relationships}
    assert shapes == {("Orders", "CUSTOMER", "Customers"), ("OrderItems", "ORDER", "Orders")}
    text = written.read_text(encoding="utf-8")
    assert "#   audit_log: no primary key" in text  # listed with the reason
    assert "big_orders" not in text  # views are not tables
    assert "wrote" in result.stdout and "audit_log" in result.stdout


def test_written_file_reads_back_as_the_reflected_project(shop: Settings, tmp_path: Path) -> None:
    path = tmp_path / "shop.toml"
    init_project(shop, path=path)
    assert load_project(path) == reflect_project(shop)


def test_init_never_overwrites_without_force(
    cli: Callable[..., Any], shop: Settings, tmp_path: Path
) -> None:
    written = tmp_path / "chariot.toml"
    written.write_text("# mine\n", encoding="utf-8")
    refused = cli("init", settings=shop)
    assert refused.exit_code == 2
    assert "exists already" in refused.output and "--force" in refused.output
    assert written.read_text(encoding="utf-8") == "# mine\n"
    forced = cli("init", "--force", settings=shop)
    assert forced.exit_code == 0, forced.output
    assert "[tables.orders]" in written.read_text(encoding="utf-8")


def test_init_json_and_project_path(
    cli: Callable[..., Any], shop: Settings, tmp_path: Path
) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    result = cli("init", "--json", "--project", str(target), settings=shop)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["path"] == str(target / "chariot.toml")
    assert [t["name"] for t in report["tables"]] == ["customers", "order_items", "orders"]
    assert list(report["skipped_tables"]) == ["audit_log"]
    assert "(:Orders)-[:CUSTOMER]->(:Customers)" in report["relationships"]
    assert "chariot-mysql" not in result.stdout  # the password never shows


def test_include_exclude_and_no_graph(
    cli: Callable[..., Any], shop: Settings, tmp_path: Path
) -> None:
    result = cli("init", "--include", "order*", "--no-graph", settings=shop)
    assert result.exit_code == 0, result.output
    project = load_project(tmp_path / "chariot.toml")
    assert list(project.tables) == ["order_items", "orders"]
    assert project.tables["orders"].references == []  # customers is not in the project
    assert project.graph.nodes == {} and project.graph.relationships == []

    result = cli("init", "--force", "--exclude", "customers", settings=shop)
    project = load_project(tmp_path / "chariot.toml")
    assert "customers" not in project.tables
    assert [r.type for r in project.graph.relationships] == ["ORDER"]

    missing = cli("init", "--force", "--include", "invoices", settings=shop)
    assert missing.exit_code == 2
    assert "--include invoices: no such table" in missing.output


def test_tinyint1_json_and_unmapped_columns(sql_settings: Settings, tmp_path: Path) -> None:
    mysql_execute(
        sql_settings.mysql,
        "CREATE TABLE places (id BIGINT UNSIGNED PRIMARY KEY, open TINYINT(1) NOT NULL,"
        " stars TINYINT(1) NULL, doc JSON NULL, location GEOMETRY NULL, opened TIME NULL,"
        " tags SET('a','b') NULL)",
        "INSERT INTO places VALUES (1, 1, 0, '{\"a\": 1}', NULL, '-12:00:00', 'a,b'),"
        " (2, 0, 5, NULL, POINT(1, 2), NULL, '')",
    )
    path = tmp_path / "chariot.toml"
    result = init_project(sql_settings, path=path)
    columns = load_project(path).tables["places"].columns
    assert (columns["id"].postgres, columns["id"].neo4j) == ("numeric(20)", "string")
    assert (columns["open"].postgres, columns["open"].neo4j) == ("boolean", "boolean")
    assert (columns["stars"].postgres, columns["stars"].neo4j) == ("smallint", "integer")
    assert (columns["doc"].type, columns["doc"].postgres) == ("json", "jsonb")
    assert (columns["opened"].postgres, columns["opened"].neo4j) == ("interval", "duration")
    assert (columns["tags"].postgres, columns["tags"].neo4j) == ("text[]", "list<string>")
    assert "location" not in columns
    text = path.read_text(encoding="utf-8")
    assert "# skipped: location (geometry): no PostgreSQL/Neo4j mapping" in text
    assert "only 0 and 1 in the source: boolean" in text
    assert "values besides 0 and 1 in the source: smallint" in text
    assert result.skipped_columns == [
        "places: skipped: location (geometry): no PostgreSQL/Neo4j mapping"
    ]


def test_a_source_without_keys_is_a_usage_error(
    cli: Callable[..., Any], sql_settings: Settings, tmp_path: Path
) -> None:
    mysql_execute(sql_settings.mysql, "CREATE TABLE events (at DATETIME, what TEXT)")
    result = cli("init", settings=sql_settings)
    assert result.exit_code == 2
    assert "no table of the source can be synced" in result.output
    assert not (tmp_path / "chariot.toml").exists()


# -- the project against the live source -------------------------------------------------


def test_the_proposed_project_matches_its_source(shop: Settings) -> None:
    assert check_project(reflect_project(shop), shop) == []


def _edited(project_text: str, old: str, new: str) -> str:
    assert old in project_text
    return project_text.replace(old, new, 1)


@pytest.mark.parametrize(
    ("old", "new", "path", "words"),
    [
        (
            "[tables.customers.columns]\n",
            '[tables.customers.columns]\nghost = { type = "int" }\n',
            "tables.customers.columns.ghost",
            "the source table customers has no column 'ghost'",
        ),
        (
            '[tables.orders]\nkey = ["id"]',
            '[tables.orders]\nkey = ["customer_id"]',
            "tables.orders.key",
            "(customer_id) is not unique in the source table orders",
        ),
        (
            "[tables.orders]\n",
            '[tables.orders]\nsource = "orders_2023"\n',
            "tables.orders.source",
            "the source has no table 'orders_2023'",
        ),
        (
            'total = { type = "decimal(10,2)"',
            'total = { type = "decimal(12,2)"',
            "tables.orders.columns.total.type",
            "the source's column is decimal(10,2), not decimal(12,2)",
        ),
    ],
)
def test_each_mismatch_with_the_source_is_one_clear_problem(
    shop: Settings, old: str, new: str, path: str, words: str
) -> None:
    text = _edited(render_project(reflect_project(shop)), old, new)
    problems = check_project(parse_project(text), shop)
    assert [(p.path, words in p.message) for p in problems] == [(path, True)], problems


def test_a_unique_index_of_not_null_columns_makes_a_key(shop: Settings) -> None:
    text = _edited(
        render_project(reflect_project(shop)),
        '[tables.customers]\nkey = ["id"]',
        '[tables.customers]\nkey = ["email"]',
    )
    assert check_project(parse_project(text), shop) == []


def test_a_relationship_to_an_undefined_label_fails_loading(shop: Settings) -> None:
    text = _edited(render_project(reflect_project(shop)), 'label = "Customers"', 'label = "Client"')
    with pytest.raises(ConfigError) as caught:
        parse_project(text)
    assert "to.label: no label 'Client' in graph.nodes" in str(caught.value)


def test_init_example_writes_the_movielens_project(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from chariot.cli.app import app
    from chariot.project.loading import load_project
    from chariot.project.streams import project_streams

    target = tmp_path / "chariot.toml"
    done = CliRunner().invoke(app, ["init", "--example", "movielens", "--project", str(target)])
    assert done.exit_code == 0, done.output
    assert target.read_text(encoding="utf-8") == MOVIELENS_EXAMPLE.read_text(encoding="utf-8")
    assert [s.name for s in project_streams(load_project(target))] == [
        "movies",
        "links",
        "ratings",
        "tags",
    ]
    again = CliRunner().invoke(app, ["init", "--example", "movielens", "--project", str(target)])
    assert again.exit_code == 2 and "exists already" in again.output
    unknown = CliRunner().invoke(
        app, ["init", "--example", "nope", "--project", str(tmp_path / "x.toml")]
    )
    assert unknown.exit_code == 2 and "unknown example 'nope'" in unknown.output
